"""The base of every domain error, so interfaces can translate them in one place."""


class ReservemailError(Exception):
    """A domain error with a user-facing message and a machine-readable code.

    ``field`` names the input field the message belongs to, when there is one, so a form can
    show it next to that field and the API can return it in DRF's field-error shape.
    """

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __str__(self) -> str:
        return str(self.message)

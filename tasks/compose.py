"""The compose side of the mail form (shared by the page and the admin): recipients from a CSV upload,
the review of that file against the chosen template, and the preview of one recipient's copy.

Interface code only: it reads what the form cleaned, calls tasks.csv_import (pure) and the preview
service, and shapes what the templates display. Nothing here writes or queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import QueryDict
from django.utils.translation import gettext as _

from reservemail.exceptions import ReservemailError
from tasks import services
from tasks.csv_import import CsvImport, FieldMapping, field_mapping, parse_csv
from tasks.mail import MailSpec, template_variables
from tasks.services import Preview

REVIEW_ROWS = 10
FORGET_CSV = "forget_csv"  # the action of the review's "Remove this file" button
NOT_INPUT = frozenset({"csrfmiddlewaretoken", "action", "recipients_csv", "recipients_file"})


def without_csv(posted: QueryDict) -> dict[str, str]:
    """What was typed, as the initial values of a fresh form, without the kept file ("Remove this file")."""
    return {name: str(posted.get(name, "")) for name in posted if name not in NOT_INPUT}


def max_csv_bytes() -> int:
    """The largest file accepted: its text comes back in a form field on the next submit, where Django
    refuses a request whose fields pass DATA_UPLOAD_MAX_MEMORY_SIZE (so three quarters of it, as UTF-8)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return 5 * 2**20 if limit is None else limit * 3 // 4


def read_csv(upload: UploadedFile | None, kept_text: str) -> CsvImport | None:
    """The recipients file of this submission: a new upload, else the text kept from an earlier one, else None."""
    if upload is not None:
        data = upload.read(max_csv_bytes() + 1)
        result = parse_csv(data, max_recipients=settings.TASK_MAX_RECIPIENTS)
        text_size = len(data) if result.errors else len(data.decode(result.encoding).encode())
        if text_size > max_csv_bytes():
            result = CsvImport()
            limit = {"kb": max_csv_bytes() // 1024}
            result.errors.append((None, _("The file is too large: at most %(kb)d KB as UTF-8 text.") % limit))
        return result
    if kept_text.strip():
        return parse_csv(kept_text, max_recipients=settings.TASK_MAX_RECIPIENTS)
    return None


def kept_text_of(upload_import: CsvImport, upload: UploadedFile) -> str:
    """The decoded text of an accepted upload, to be sent back in the hidden field (no second upload)."""
    upload.seek(0)
    data = upload.read()
    return data.decode(upload_import.encoding if upload_import.encoding != "utf-8-sig" else "utf-8-sig")


@dataclass(frozen=True)
class CsvReview:
    """What the page shows of a recipients file before anything is sent."""

    encoding: str
    count: int
    duplicates: int
    columns: list[str]
    rows: list[list[str]]
    mapping: FieldMapping


def review_of(result: CsvImport, *, template: str, shared: dict[str, Any]) -> CsvReview:
    """The first REVIEW_ROWS rows and the column-to-field mapping for ``template``."""
    columns = result.field_columns
    rows = [[row.address, *(row.fields.get(c, "") for c in columns)] for row in result.rows[:REVIEW_ROWS]]
    variables = template_variables(template) if template else ()
    return CsvReview(
        encoding={"utf-8-sig": "UTF-8 (BOM)", "utf-8": "UTF-8", "cp949": "CP949 / EUC-KR"}.get(
            result.encoding, result.encoding
        ),
        count=len(result.rows),
        duplicates=result.duplicates,
        columns=["email", *columns],
        rows=rows,
        mapping=field_mapping(columns, variables, [k for k, v in shared.items() if v not in ("", None)]),
    )


def preview_of(form: forms.Form) -> Preview | None:
    """Render the chosen recipient's copy of a valid form's mail; a refusal becomes a form error, as on submit."""
    data = form.cleaned_data
    mail = MailSpec(template=data["template"], recipients=data["recipients"], context=data["context"])
    try:
        return services.preview_mail(mail=mail, recipient=data.get("preview_recipient") or None)
    except ReservemailError as exc:
        form.add_error(field_of(form, exc), exc.message)
        return None


def field_of(form: forms.Form, exc: ReservemailError) -> str | None:
    """The form field a service's error belongs to (the services' ``recipient`` is the form's ``preview_recipient``)."""
    field = "preview_recipient" if exc.field == "recipient" else exc.field
    return field if field in form.fields else None

"""The sign-in forms of the pages, the browsable API and the admin: Django's, with the username's length checked.

Why: Django's AuthenticationForm sets the field's ``max_length`` after the field is built, so the
length is drawn in the page but never checked, and a longer name went on to ``authenticate()``.
django-axes then stored the failure under that name, and PostgreSQL refused it (varchar(255)):
a 500 for a pasted 3,000-character name. A name longer than any account's is now a form error
and no sign-in attempt, as on the API (reservemail.api.TokenLoginInputSerializer).
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator


def _check_username_length(form: AuthenticationForm) -> None:
    limit = form.username_field.max_length or 254  # as AuthenticationForm draws it
    form.fields["username"].validators.append(MaxLengthValidator(limit))


class LoginForm(AuthenticationForm):
    """The pages' sign-in form (/accounts/login/, and the browsable API's /api/auth/login/)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_username_length(self)


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's sign-in form (/admin/login/)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_username_length(self)

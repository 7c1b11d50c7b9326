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


class UsernameLengthChecked(AuthenticationForm):
    """Checks the drawn ``max_length`` of the username, which AuthenticationForm only draws."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.username_field.max_length or 254  # as AuthenticationForm draws it
        self.fields["username"].validators.append(MaxLengthValidator(limit))


class LoginForm(UsernameLengthChecked):
    """The pages' sign-in form (/accounts/login/, and the browsable API's /api/auth/login/)."""


class AdminLoginForm(UsernameLengthChecked, AdminAuthenticationForm):
    """The admin's sign-in form (/admin/login/)."""

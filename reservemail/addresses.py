"""E-mail addresses as every app stores and checks them: ASCII, or UTF-8 before the @ when the relay takes it.

An address with non-ASCII characters before the @ (``김철수@example.com``) can only be sent with the
SMTPUTF8 extension (RFC 6531); its headers are then UTF-8 (RFC 6532). EMAIL_SMTPUTF8 says the relay
supports it. Django's EmailValidator knows only ASCII local parts, so the fields and checks here
accept UTF-8 ones while that setting is on, and refuse them (as Django does) while it is off.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import models
from django.utils.deconstruct import deconstructible
from django.utils.regex_helper import _lazy_re_compile

# RFC 6531 3.3: atext and qtextSMTP also take UTF8-non-ascii. Letters, marks, digits, symbols and
# punctuation only: separators (spaces), controls, format characters (zero-width ones), surrogates,
# private-use and unassigned code points are refused, below, by their Unicode category.
_UTF8_LOCAL = _lazy_re_compile(
    r"(^[-!#$%&'*+/=?^_`{}|~0-9A-Z\u00a0-\U0010ffff]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z\u00a0-\U0010ffff]+)*\Z"
    r'|^"([\001-\010\013\014\016-\037!#-\[\]-\177\u00a0-\U0010ffff]|\\[\001-\011\013\014\016-\177])*"\Z)',
    re.IGNORECASE,
)


def local_part(address: str) -> str:
    """What comes before the last @ of a bare address (the whole text when there is none)."""
    return address.rpartition("@")[0] if "@" in address else address


def needs_smtputf8(address: str) -> bool:
    """Whether the bare ``address`` has non-ASCII characters before the @ (sendable only with SMTPUTF8)."""
    return not local_part(address).isascii()


def _printable(text: str) -> bool:
    return all(char.isascii() or unicodedata.category(char)[0] not in "CZ" for char in text)


@deconstructible
class AddressValidator(EmailValidator):
    """Django's EmailValidator, plus UTF-8 local parts while EMAIL_SMTPUTF8 is on (read at each call).

    ``utf8=True`` takes them whatever the setting says (an unsubscribe of an address mailed earlier).
    """

    def __init__(self, *args: Any, utf8: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.utf8 = utf8

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and self.utf8 == getattr(other, "utf8", None)

    def __call__(self, value: Any) -> None:
        if not isinstance(value, str) or "@" not in value or not needs_smtputf8(value):
            super().__call__(value)
            return
        user, _at, domain = value.rpartition("@")
        if not (
            (settings.EMAIL_SMTPUTF8 if self.utf8 is None else self.utf8)
            and len(value) <= 320
            and _UTF8_LOCAL.match(user)
            and _printable(user)
            and (domain in self.domain_allowlist or self.validate_domain_part(domain))
        ):
            raise ValidationError(self.message, code=self.code, params={"value": value})


validate_address = AddressValidator()
validate_any_address = AddressValidator(utf8=True)  # also UTF-8 before the @ while EMAIL_SMTPUTF8 is off


class AddressFormField(forms.EmailField):
    """A form's e-mail field that takes what validate_address takes."""

    default_validators = [validate_address]


class AddressField(models.EmailField):
    """A stored e-mail address (max 254 characters); UTF-8 before the @ is valid while EMAIL_SMTPUTF8 is on."""

    default_validators = [validate_address]

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        return super().formfield(
            form_class=form_class or AddressFormField, choices_form_class=choices_form_class, **kwargs
        )

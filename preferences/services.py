"""Changes to user preferences."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext as _

from preferences.models import UserPreference
from preferences.selectors import available_time_zones
from reservemail.exceptions import ReservemailError


class PreferenceError(ReservemailError):
    """A preference value is not one we offer (HTTP 400)."""

    code = "invalid"


def set_time_zone(*, user: AbstractBaseUser, time_zone: str) -> UserPreference:
    """Store ``time_zone`` (an IANA name, or "" for the site default) as the user's zone.

    Raises PreferenceError for a name this machine does not know; nothing is saved then.
    """
    name = (time_zone or "").strip()
    if name and name not in available_time_zones():
        raise PreferenceError(_("Unknown time zone “%(name)s”.") % {"name": name[:64]}, field="time_zone")
    preference, _created = UserPreference.objects.update_or_create(user_id=user.pk, defaults={"time_zone": name})
    return preference

"""The project's ModelAdmin: stock Django's, with the selection of an action POST checked first.

Why: Django filters by the posted ``_selected_action`` values as they come, so a forged or stale
POST with a value that is not a key of the model (``"abc"`` for an integer id) raised ValueError
deep in the query and answered 500. Here it is an error message on the list, and nothing runs.
A change, delete or history page for such a value is the admin's "does not exist" answer.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext as _


class ModelAdmin(admin.ModelAdmin):
    """Refuse an action whose selection names something that cannot be a key of this model; such a page is missing."""

    def fits_key(self, value: str) -> bool:
        """Whether ``value`` can be a key of this model: its type, and the database's range (not 40 digits)."""
        key = self.model._meta.pk
        while key is not None and key.is_relation:  # a one-to-one key: the field it points to says what fits
            key = key.target_field
        if key is None:
            return True
        try:
            key.run_validators(key.to_python(value))
        except ValidationError:
            return False
        return True

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """None (the admin's "does not exist" message) for a value that cannot be a key.

        Why: a lookup through a one-to-one key skips the range check, and SQLite raised OverflowError
        (a 500) for an id of 40 digits.
        """
        if from_field is None and not self.fits_key(object_id):
            return None
        return super().get_object(request, object_id, from_field)

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            if not self.fits_key(value):
                self.message_user(
                    request,
                    _("Nothing was changed: “%(value)s” is not the id of a %(model)s.")
                    % {"value": value[:40], "model": self.model._meta.verbose_name},
                    messages.ERROR,
                )
                return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

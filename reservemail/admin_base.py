"""The project's ModelAdmin: stock Django's, with the selection of an action POST checked first.

Why: Django filters by the posted ``_selected_action`` values as they come, so a forged or stale
POST with a value that is not a key of the model (``"abc"`` for an integer id) raised ValueError
deep in the query and answered 500. Here it is an error message on the list, and nothing runs.
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
    """Refuse an action whose selection names something that cannot be a key of this model."""

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        key = self.model._meta.pk
        while key is not None and key.is_relation:  # a one-to-one key: the field it points to says what fits
            key = key.target_field
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if key is not None else ():
            try:
                key.run_validators(key.to_python(value))  # the type, and the database's range (an id of 40 digits)
            except ValidationError:
                self.message_user(
                    request,
                    _("Nothing was changed: “%(value)s” is not the id of a %(model)s.")
                    % {"value": value[:40], "model": self.model._meta.verbose_name},
                    messages.ERROR,
                )
                return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

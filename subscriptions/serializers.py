"""API shapes of the suppression list."""

from __future__ import annotations

from typing import Any

from django.core.validators import EmailValidator
from rest_framework import serializers

from reservemail.addresses import validate_address
from subscriptions.models import Suppression


class AddressSerializerField(serializers.EmailField):
    """DRF's EmailField checked by validate_address (UTF-8 before the @ with EMAIL_SMTPUTF8) instead of
    Django's validator, which knows only ASCII there."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, EmailValidator)] + [validate_address]


class SuppressionOutputSerializer(serializers.ModelSerializer):
    all_bulk = serializers.SerializerMethodField(help_text="True when the suppression covers every bulk list.")

    class Meta:
        model = Suppression
        fields = ("id", "address", "list_name", "all_bulk", "how", "created_at")
        read_only_fields = fields

    def get_all_bulk(self, obj: Suppression) -> bool:
        return not obj.list_name


class SuppressionCreateInputSerializer(serializers.Serializer):
    address = AddressSerializerField(max_length=254)
    list_name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", help_text="Empty or left out: all bulk mail."
    )

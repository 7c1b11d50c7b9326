"""API shapes of the suppression list."""

from __future__ import annotations

from rest_framework import serializers

from subscriptions.models import Suppression


class SuppressionOutputSerializer(serializers.ModelSerializer):
    all_bulk = serializers.SerializerMethodField(help_text="True when the suppression covers every bulk list.")

    class Meta:
        model = Suppression
        fields = ("id", "address", "list_name", "all_bulk", "how", "created_at")
        read_only_fields = fields

    def get_all_bulk(self, obj: Suppression) -> bool:
        return not obj.list_name


class SuppressionCreateInputSerializer(serializers.Serializer):
    address = serializers.EmailField(max_length=254)
    list_name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", help_text="Empty or left out: all bulk mail."
    )

"""Filters for showing stored task data on pages: recipients as ``Name <address>``, the context as a preview."""

from __future__ import annotations

from django import template

from tasks.display import log_in_zone, preview_json
from tasks.recipients import StoredRecipient, label_of, parse_stored

register = template.Library()


@register.filter
def recipient_label(entry: object) -> str:
    """A stored recipient (address, or object with a name) as ``Name <address>``."""
    return label_of(entry)


@register.filter
def recipient_data(entry: StoredRecipient) -> list[tuple[str, object]]:
    """A stored recipient's own merge data as (name, value) pairs, none for a bare address: its delivery's to be."""
    return list(parse_stored(entry).context.items())


@register.filter
def context_preview(text: str | None) -> str:
    """A task's stored context text (selectors annotate it as ``context_text``), bounded and never recursing."""
    return preview_json(text)


@register.filter
def local_log(text: str | None) -> str:
    """A task's or series' log with its time stamps in the active zone (escaped by the template as usual)."""
    return log_in_zone(text or "")

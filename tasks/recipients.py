"""One recipient of a send as ``Task.recipients`` stores it: an address, or an object with a name and merge data.

Stored shapes (JSON): a plain address string ``"bob@example.com"`` when there is nothing else to
keep, otherwise ``{"address": "bob@example.com", "name": "Bob", "context": {...}}`` (``name`` and
``context`` optional). Every reader goes through ``parse_stored``, so older rows (plain strings)
and newer ones read alike. Validation lives in tasks.validation; this module only converts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formataddr
from typing import Any

StoredRecipient = str | dict[str, Any]


@dataclass(frozen=True)
class Recipient:
    """The bare address (what goes in the envelope and in Delivery.address), its display name and own context."""

    address: str
    name: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)

    def as_stored(self) -> StoredRecipient:
        """The JSON value kept in Task.recipients: a string when there is no name and no own context."""
        if not self.name and not self.context:
            return self.address
        stored: dict[str, Any] = {"address": self.address}
        if self.name:
            stored["name"] = self.name
        if self.context:
            stored["context"] = dict(self.context)
        return stored

    def header(self) -> str:
        """The ``To:`` value: ``Name <address>`` (quoted as RFC 5322 needs; Django encodes non-ASCII) or the address."""
        return formataddr((self.name, self.address)) if self.name else self.address

    def merged_context(self, shared: Mapping[str, Any]) -> dict[str, Any]:
        """The context this recipient's mail is rendered with: its own values over the shared ones."""
        return {**shared, **self.context}


def parse_stored(entry: StoredRecipient) -> Recipient:
    """Read one stored entry (either shape). Raises ValueError for anything else (never stored by validation)."""
    if isinstance(entry, str):
        return Recipient(address=entry)
    if isinstance(entry, dict) and isinstance(entry.get("address"), str):
        context = entry.get("context") or {}
        if not isinstance(context, dict):
            raise ValueError("recipient context must be an object")
        return Recipient(address=entry["address"], name=str(entry.get("name") or ""), context=context)
    raise ValueError(f"not a stored recipient: {type(entry).__name__}")


def parse_all(entries: Iterable[StoredRecipient]) -> list[Recipient]:
    return [parse_stored(entry) for entry in entries]


def addresses_of(entries: Iterable[StoredRecipient]) -> list[str]:
    """The bare addresses of stored entries, in order."""
    return [parse_stored(entry).address for entry in entries]

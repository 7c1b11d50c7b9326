"""One recipient of a send as ``Task.recipients`` stores it: an address, or an object with a name and merge data.

Stored shapes (JSON): a plain address string ``"bob@example.com"`` when there is nothing else to
keep, otherwise ``{"address": "bob@example.com", "name": "Bob", "context": {...}}`` (``name`` and
``context`` optional). Every reader goes through ``parse_stored``, so older rows (plain strings)
and newer ones read alike. What people type (``Bob <bob@example.com>``, ``"Name, Jr." <a@b.c>``,
lists separated by commas, semicolons or new lines) is split by ``split_list`` and ``split_entry``.
Validation lives in tasks.validation; this module only converts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from email.utils import formataddr, quote
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
        """The ``To:`` value: ``Name <address>`` (quoted as RFC 5322 needs; Django encodes non-ASCII) or the address.

        With UTF-8 before the @ (SMTPUTF8 mail) the value is in RFC 6532 form, the name as it is (tasks.smtp
        writes that header as UTF-8; RFC 2047 cannot encode an address).
        """
        if not self.name:
            return self.address
        # formataddr refuses a non-ASCII address: an IDN domain goes in as punycode, as it goes on the wire.
        local, at, domain = self.address.rpartition("@")
        with suppress(UnicodeError):  # validation refused such a domain; an old row is left to the mail package
            domain = domain.encode("idna").decode("ascii")
        if not local.isascii():
            return Recipient(address=f"{local}{at}{domain}", name=self.name).label()
        return formataddr((self.name, f"{local}{at}{domain}"))

    def label(self) -> str:
        """How pages and the API show it: ``Name <address>``, the name quoted only where RFC 5322 needs it."""
        if not self.name:
            return self.address
        name = self.name if _ATOM_PHRASE.fullmatch(self.name) else f'"{quote(self.name)}"'
        return f"{name} <{self.address}>"

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


def label_of(entry: object) -> str:
    """A stored entry as people read it (``Name <address>``); anything unreadable as a short repr, never an error."""
    try:
        return parse_stored(entry).label()  # type: ignore[arg-type]
    except ValueError:
        return repr(entry)[:200]


# A display name that needs no quotes: words of atext (RFC 5322 3.2.3) and spaces; non-ASCII letters count as text.
_ATOM_PHRASE = re.compile(r"[-\w!#$%&'*+/=?^`{|}~ ]+")
_SEPARATORS = ",;\n\r"
_PLAIN_SPLIT = re.compile(r"[,;\n\r]")


def split_list(text: str) -> list[str]:
    """Split a typed list on commas, semicolons and line breaks outside quotes and ``<...>``.

    ``"Name, Jr." <a@example.com>, bob@example.com`` is two entries. Empty entries are dropped.
    """
    if '"' not in text and "<" not in text:  # the common case: plain addresses, no character loop
        return [entry.strip() for entry in _PLAIN_SPLIT.split(text) if entry.strip()]
    entries: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = 0
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            angle += 1
        elif not quoted and char == ">" and angle:
            angle -= 1
        elif not quoted and not angle and char in _SEPARATORS:
            entries.append("".join(current))
            current = []
            continue
        current.append(char)
    entries.append("".join(current))
    return [entry.strip() for entry in entries if entry.strip()]


_NAMED = re.compile(r"(?P<name>[^<>]*)<(?P<address>[^<>]*)>", re.S)


def split_entry(text: str) -> tuple[str, str]:
    """``(display name, address)`` of one typed entry: ``Name <a@b.c>``, ``"Name, Jr." <a@b.c>`` or ``a@b.c``.

    A quoted name loses its quotes and backslash escapes. No check of the address (tasks.validation does that).
    """
    text = text.strip()
    match = _NAMED.fullmatch(text)
    if match is None:
        return "", text
    name = match.group("name").strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        name = re.sub(r"\\(.)", r"\1", name[1:-1], flags=re.S)
    return name.strip(), match.group("address").strip()

"""Messages rendered and encoded ahead of their send, while a job waits for its reservation's due time.

Why: a burst is bound by CPU (the workers and the relay share the cores), and rendering and
encoding is about a quarter of a worker's CPU per mail. A job is released before its due time
(JOB_RELEASE_LEAD) and waits for the instant; it spends the wait preparing the recipients of the
reservations due by then, and the send loop takes each one's bytes instead of rendering. Whether it
does is tasks.delivery.policy.prepare_wanted (where the workers share the cores).

Entries are keyed by everything a message is made of (template, subject prefix, the task's stored
context text, the recipient's address, display name and merge data), never by the task alone: an
edit that commits after the preparing changes the key, and the send loop renders what its claim
read, as before. The Message-ID (fixed by the claim) and the Date are written in when the entry is
taken (tasks.smtp.encoding.restamp), and an entry is taken once. Entries live for one job.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from django.conf import settings
from django.utils import timezone

from tasks.display import read_stored
from tasks.mail import render_for
from tasks.models import Task
from tasks.recipients import Recipient, parse_stored
from tasks.selectors import with_context_text
from tasks.smtp import Envelope, session
from tasks.smtp.encoding import restamp

logger = logging.getLogger(__name__)

Key = tuple[str, str, str, str, str, str]

_entries: dict[Key, tuple[Envelope, str]] = {}


def key_of(task: Task, recipient: Recipient) -> Key | None:
    """What the message of ``recipient`` in ``task`` is made of; None if the task's stored context text is unknown."""
    text = getattr(task, "context_text", None)
    if text is None:
        return None
    own = json.dumps(dict(recipient.context), sort_keys=True, default=str) if recipient.context else ""
    return (task.template, task.subject_prefix, text, recipient.address, recipient.name, own)


def take(key: Key | None, *, message_id: str) -> Envelope | None:
    """The prepared envelope for ``key`` carrying ``message_id`` and today's Date, once; None if there is none."""
    if key is None or not _entries:
        return None
    entry = _entries.pop(key, None)
    if entry is None:
        return None
    envelope, placeholder = entry
    return restamp(envelope, old_id=placeholder, message_id=message_id)


def clear() -> None:
    """Forget every entry (the end of a job: what it did not send, others did or will render)."""
    _entries.clear()


def size() -> int:
    return len(_entries)


def fill(*, until: datetime, deadline: float) -> int:
    """Prepare the recipients of reservations due by ``until``, soonest first, until ``deadline`` (monotonic).

    At most DELIVERY_PREPARE_MAX entries are held, and at most DELIVERY_SLICE_MAX of one task (what
    a claim takes: a big task's later recipients would hold memory long for a small share of its
    sending; measured: a worker's peak 127 MB at 100,000 recipients with 2,000 of them prepared).
    Returns how many this call added. Only for SMTP (other backends take the message itself). A
    recipient that cannot be rendered is left to the send loop, which fails its task with the error.
    """
    room = int(settings.DELIVERY_PREPARE_MAX) - len(_entries)
    if room <= 0 or time.monotonic() >= deadline or not session.encodes():
        return 0
    tasks = with_context_text(
        Task.objects.filter(status=Task.Status.RESERVED, reserved_at__gte=timezone.now(), reserved_at__lte=until)
        .order_by("reserved_at", "pk")
        .only("pk", "template", "subject_prefix", "recipients")
    )
    started, added = time.monotonic(), 0
    for task, context, entry in _recipients_of(tasks[:room].iterator()):
        if added >= room or time.monotonic() >= deadline:
            break
        if _prepare(task, context, entry):
            added += 1
    if added:
        logger.info("prepared %s messages due by %s in %.3fs", added, until.isoformat(), time.monotonic() - started)
    return added


def _recipients_of(tasks: Iterable[Task]) -> Iterator[tuple[Task, dict[str, Any], Any]]:
    """``(task, its context, a stored recipient)``, at most DELIVERY_SLICE_MAX per task; unreadable contexts skipped."""
    per_task = int(settings.DELIVERY_SLICE_MAX)
    for task in tasks:
        context = read_stored(getattr(task, "context_text", None))
        if isinstance(context, dict):
            yield from ((task, context, entry) for entry in islice(task.recipients, per_task))


def _prepare(task: Task, context: dict[str, Any], entry: Any) -> bool:
    try:
        recipient = parse_stored(entry)
    except ValueError:
        return False
    key = key_of(task, recipient)
    if key is None or key in _entries:
        return False
    placeholder = f"<{secrets.token_hex(8)}@prepared.invalid>"
    try:
        message = render_for(
            recipient,
            template=task.template,
            context=context,
            message_id=placeholder,
            subject_prefix=task.subject_prefix,
        )
    except Exception:  # noqa: BLE001 - the send loop renders it again and fails the task with the error
        return False
    envelope = session.encode(message)
    if not isinstance(envelope, Envelope):
        return False  # not encodable: the send loop encodes it again and reports the error
    _entries[key] = (envelope, placeholder)
    return True

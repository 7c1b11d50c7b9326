"""A user's tasks as CSV: one row per task, with its delivery counts. Presentation only."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import Protocol

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.utils import timezone

from tasks.display import read_stored
from tasks.models import Delivery
from tasks.recipients import addresses_of
from tasks.selectors import list_tasks_of, with_context_text

COLUMNS = (
    "id", "description", "template", "status", "failed", "recipients", "sent", "failed_recipients",
    "reserved_at", "created_at", "started_at", "ended_at", "attempts", "context", "log",
)  # fmt: skip
NUMBERS = {"id", "sent", "failed_recipients", "attempts"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Writable(Protocol):
    def write(self, text: str, /) -> object: ...


def _cell(value: object) -> str:
    """Text for a cell; times in ISO 8601 with offset; text that a spreadsheet would run as a formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"'{text}" if text.startswith(FORMULA_START) else text


def write_tasks_csv(*, owner: AbstractBaseUser, out: Writable) -> int:
    """Write the owner's tasks (newest first) as CSV to ``out``; return how many rows were written."""
    # The context as stored text: a row from before the input limits may be too deep to decode (tasks.display).
    tasks = with_context_text(list_tasks_of(owner)).annotate(
        sent=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.SENT)),
        failed_recipients=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.FAILED)),
    )
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    rows = 0
    for task in tasks.iterator(chunk_size=500):
        values = {name: getattr(task, name) for name in COLUMNS if name != "context"}
        decoded = read_stored(task.context_text)  # type: ignore[attr-defined]  # the selector's annotation
        values["context"] = task.context_text if decoded is None else decoded  # type: ignore[attr-defined]
        values.update(recipients=";".join(addresses_of(task.recipients)), failed="yes" if task.failed else "no")
        writer.writerow([values[name] if name in NUMBERS else _cell(values[name]) for name in COLUMNS])
        rows += 1
    return rows

"""A JSON log formatter (LOG_FORMAT=json): one object per line, with the task's fields as keys.

Fields come from ``extra={...}`` on the log call; for the many ``%``-style messages that already
say ``task_id=12 owner=3`` in their text, the same ``key=value`` pairs are read from the message,
so every line about a task can be filtered by ``task_id`` in a log store.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

FIELDS = ("task_id", "job_id", "owner", "queue", "transition", "status")
INT_FIELDS = {"task_id", "owner"}
_PAIR = re.compile(r"\b(" + "|".join(FIELDS) + r")=([^\s,;]+)")


def _coerce(name: str, value: Any) -> Any:
    if name in INT_FIELDS and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time (UTC, ISO 8601), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        parsed = dict(_PAIR.findall(message))
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = parsed.get(name)
            if value is not None:
                entry[name] = _coerce(name, value)
        entry["process"] = record.process
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)

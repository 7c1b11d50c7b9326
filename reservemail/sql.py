"""Quoted table and column names of models, for the few hot statements written in plain SQL.

The delivery's lease and per-recipient writes (tasks.delivery) and the notification merges
(notifications.services) run once per mail or reservation; the ORM spent more time building
them than the database spent running them. They quote every name through these helpers.
"""

from __future__ import annotations

from typing import cast

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model


def table(model: type[Model], conn: BaseDatabaseWrapper | None = None) -> str:
    """The quoted table of ``model`` on ``conn`` (the default database if not given)."""
    return (conn or connection).ops.quote_name(model._meta.db_table)


def columns(
    model: type[Model], *names: str, qualified: bool = False, conn: BaseDatabaseWrapper | None = None
) -> list[str]:
    """The quoted columns of fields ``names``; ``qualified`` prefixes each with its table."""
    quote = (conn or connection).ops.quote_name
    prefix = f"{table(model, conn)}." if qualified else ""
    return [prefix + quote(cast(Field, model._meta.get_field(name)).column) for name in names]


def marks(count: int) -> str:
    """``count`` placeholders for an IN list."""
    return ", ".join(["%s"] * count)

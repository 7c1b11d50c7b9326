"""Quoted table and column names of models, for the few delivery statements written in plain SQL."""

from __future__ import annotations

from typing import cast

from django.db import connection
from django.db.models import Field, Model


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def columns(model: type[Model], *names: str, qualified: bool = False) -> list[str]:
    """The quoted columns of fields ``names``; ``qualified`` prefixes each with its table."""
    quote = connection.ops.quote_name
    prefix = f"{table(model)}." if qualified else ""
    return [prefix + quote(cast(Field, model._meta.get_field(name)).column) for name in names]


def marks(count: int) -> str:
    """``count`` placeholders for an IN list."""
    return ", ".join(["%s"] * count)

"""Repair JSON stored before the input checks refused lone surrogates and U+0000 (tasks.validation).

SQLite kept them as JSON escapes (``"\\ud800"``); read back, such a string cannot be encoded to UTF-8,
so every page of its owner answered 500 and a worker failed the task's deliveries on every retry
(the reconciler sent it round again). Each such character becomes U+FFFD, the replacement character:
the rest of the text is kept, and the spot where the client sent something broken stays visible.
PostgreSQL refused these values when they were written, so there the rows are never found.
"""

import re

from django.db import migrations

# The JSON escapes of a surrogate (\ud800-\udfff) or of U+0000, as SQLite's GLOB patterns.
_PATTERNS = ("*\\u[dD][89abcdefABCDEF]*", "*\\u0000*")
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")
_FIELDS = [
    ("tasks", "Task", ("recipients", "context")),
    ("tasks", "Delivery", ("context",)),
    ("tasks", "IdempotencyKey", ("response_body",)),
    ("series", "Series", ("recipients", "context")),
]


def _clean(value):
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


def repair(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    quote = connection.ops.quote_name
    for app_label, model_name, field_names in _FIELDS:
        model = apps.get_model(app_label, model_name)
        columns = [model._meta.get_field(name).column for name in field_names]
        where = " OR ".join(f"{quote(column)} GLOB %s" for column in columns for _ in _PATTERNS)
        sql = f"SELECT {quote(model._meta.pk.column)} FROM {quote(model._meta.db_table)} WHERE {where}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [pattern for _ in columns for pattern in _PATTERNS])
            ids = [row[0] for row in cursor.fetchall()]
        for row in model.objects.filter(pk__in=ids).only("pk", *field_names).iterator(chunk_size=500):
            model.objects.filter(pk=row.pk).update(**{name: _clean(getattr(row, name)) for name in field_names})


class Migration(migrations.Migration):
    dependencies = [
        ("series", "0001_series"),
        ("tasks", "0009_verbose_names"),
    ]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop, elidable=True)]

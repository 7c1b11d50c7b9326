"""Writes to notifications; the only code that changes Notification rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from notifications.models import Notification
from notifications.payload import (
    LIST_KINDS,
    Entry,
    drop_ended,
    is_list_kind,
    merge_entries,
    prune_entries,
    stamp_ended,
    validate_payload,
)


def grace_seconds() -> float:
    """How long an ended task's entry stays in its list so a polling page can see the end."""
    return float(getattr(settings, "NOTIFICATION_GRACE_SECONDS", 60))


def _locked_row(owner_id: int, name: str) -> Notification:
    """Return the (owner, name) row locked for this transaction, creating it if needed.

    PostgreSQL: SELECT ... FOR UPDATE; a concurrent first insert loses on the unique constraint
    and then locks the winner's row. SQLite: the IMMEDIATE transaction already holds the write lock.
    """
    row = Notification.objects.select_for_update().filter(owner_id=owner_id, name=name).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return Notification.objects.create(owner_id=owner_id, name=name)
    except IntegrityError:
        # Another writer created it first; lock theirs.
        return Notification.objects.select_for_update().get(owner_id=owner_id, name=name)


def _apply(row: Notification, name: str, data: Any, now_ts: float) -> None:
    """Merge ``data`` into ``row`` in memory and bump its timestamp; PayloadError leaves it unchanged."""
    if is_list_kind(name):
        incoming: list[Entry] = [data] if isinstance(data, dict) else list(data)
        validate_payload(name, {"data": incoming})
        merged = merge_entries(list(row.payload.get("data") or []), stamp_ended(incoming, now_ts=now_ts))
        payload: dict[str, Any] = {"data": prune_entries(merged, now_ts=now_ts, grace_seconds=grace_seconds())}
    else:
        payload = {"data": data}
    _set(row, payload, now_ts)


def _set(row: Notification, payload: dict[str, Any], now_ts: float) -> None:
    validate_payload(row.name, payload)
    row.payload = payload
    # Strictly increasing, so a reader polling with since=<last timestamp> never misses a change.
    row.timestamp = max(now_ts, row.timestamp + 1e-6)


def _save(row: Notification, payload: dict[str, Any], now_ts: float) -> None:
    _set(row, payload, now_ts)
    row.save(update_fields=["payload", "timestamp"])


@transaction.atomic
def merge_notification(*, owner_id: int, name: str, data: Any) -> Notification:
    """Merge ``data`` into the (owner, name) row under a lock and bump its timestamp.

    List kinds merge entries by task_id (replace or append) and prune ended ones after a grace
    period; other kinds replace the value. Raises PayloadError for a bad shape; nothing is saved.
    """
    row = _locked_row(owner_id, name)
    _apply(row, name, data, timezone.now().timestamp())
    row.save(update_fields=["payload", "timestamp"])
    return row


@transaction.atomic
def dismiss_entries(*, owner_id: int, task_ids: Iterable[int]) -> int:
    """Drop the entries of ended tasks ``task_ids`` from the owner's lists; return how many left.

    Called when the reader has seen a task's final state and closed it, so a list only carries
    what is still of interest. Entries of tasks still pending or running are kept. Rows that do
    not change keep their timestamp.
    """
    wanted = {int(task_id) for task_id in task_ids}
    now_ts = timezone.now().timestamp()
    removed = 0
    rows = Notification.objects.select_for_update().filter(owner_id=owner_id, name__in=sorted(LIST_KINDS))
    for row in rows.order_by("name"):
        current: list[Entry] = list(row.payload.get("data") or [])
        kept = drop_ended(current, wanted)
        if len(kept) != len(current):
            removed += len(current) - len(kept)
            _save(row, {"data": kept}, now_ts)
    return removed


@transaction.atomic
def merge_notifications(*, changes: list[tuple[int, str, Any]]) -> None:
    """Apply many ``(owner_id, name, data)`` merges at once: one locking read, one bulk write.

    Each follows merge_notification's rules. Why: a worker that finishes a batch of tasks of many
    owners would otherwise pay a locked read and a write per owner and list. Raises PayloadError
    if any change is bad; then nothing is saved.
    """
    if not changes:
        return
    now_ts = timezone.now().timestamp()
    keys = {(owner_id, name) for owner_id, name, _ in changes}
    found = Notification.objects.select_for_update().filter(
        owner_id__in={owner_id for owner_id, _ in keys}, name__in={name for _, name in keys}
    )
    rows = {(row.owner_id, row.name): row for row in found.order_by("pk") if (row.owner_id, row.name) in keys}
    for owner_id, name in sorted(keys - rows.keys()):
        rows[(owner_id, name)] = _locked_row(owner_id, name)
    for owner_id, name, data in changes:
        _apply(rows[(owner_id, name)], name, data, now_ts)
    _save_all(list(rows.values()))


def _save_all(rows: list[Notification]) -> None:
    """Write payload and timestamp of the (locked) rows with one executemany.

    bulk_update builds a CASE expression per row and field; for a batch of a hundred owners that
    cost ~90 ms of Python per call (measured), against a few ms for the plain statements.
    """
    meta = Notification._meta
    payload_field = meta.get_field("payload")
    quote = connection.ops.quote_name
    table, payload, stamp, pk = (
        quote(name)
        for name in (meta.db_table, payload_field.column, meta.get_field("timestamp").column, meta.pk.column)
    )
    sql = f"UPDATE {table} SET {payload} = %s, {stamp} = %s WHERE {pk} = %s"  # noqa: S608 - model names, bound values
    params = [(payload_field.get_db_prep_save(row.payload, connection), row.timestamp, row.pk) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)

"""Writes to notifications; the only code that changes Notification rows."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import JSONField
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
from reservemail.sql import columns, marks, table

_PAYLOAD: JSONField = Notification._meta.get_field("payload")  # type: ignore[assignment]


def grace_seconds() -> float:
    """How long an ended task's entry stays in its list so a polling page can see the end."""
    return float(getattr(settings, "NOTIFICATION_GRACE_SECONDS", 60))


def _locked_row(owner_id: int, name: str) -> Notification:
    """Return the (owner, name) row locked for this transaction, creating it if needed.

    PostgreSQL: SELECT ... FOR UPDATE; a concurrent first insert loses on the unique constraint
    and then locks the winner's row. SQLite: the IMMEDIATE transaction already holds the write lock.
    """
    key = (owner_id, name)
    found = _locked_rows({key})
    if key in found:
        return found[key]
    try:
        with transaction.atomic():
            return Notification.objects.create(owner_id=owner_id, name=name)
    except IntegrityError:
        # Another writer created it first; lock theirs.
        return _locked_rows({key})[key]


@dataclass(frozen=True)
class _Sql:
    """The quoted table and column names of Notification for one database, and its lock clause."""

    table: str
    pk: str
    owner: str
    name: str
    payload: str
    timestamp: str
    for_update: str

    def lock(self, owners: int, names: int) -> str:
        """Lock the rows of ``owners`` x ``names`` (placeholders), reading keys and timestamps only."""
        where = f"{self.owner} IN ({marks(owners)}) AND {self.name} IN ({marks(names)})"
        columns = f"{self.pk}, {self.owner}, {self.name}, {self.timestamp}"
        return f"SELECT {columns} FROM {self.table} WHERE {where} ORDER BY {self.pk}{self.for_update}"  # noqa: S608 - model names, bound values

    def payloads(self, count: int) -> str:
        return f"SELECT {self.pk}, {self.payload} FROM {self.table} WHERE {self.pk} IN ({marks(count)})"  # noqa: S608 - model names, bound values

    def update(self) -> str:
        return f"UPDATE {self.table} SET {self.payload} = %s, {self.timestamp} = %s WHERE {self.pk} = %s"  # noqa: S608 - model names, bound values


@lru_cache(maxsize=4)
def _sql(alias: str) -> _Sql:
    """Notification's statements in plain SQL for database ``alias``.

    Why: every reservation merges into its owner's list, and the ORM spent more time building
    these statements than the database spent running them (measured).
    """
    conn = connections[alias]
    pk, owner, name, payload, timestamp = columns(
        Notification, "id", "owner", "name", "payload", "timestamp", conn=conn
    )
    lock = " FOR UPDATE" if conn.features.has_select_for_update else ""
    return _Sql(table(Notification, conn), pk, owner, name, payload, timestamp, lock)


def _checked(name: str, data: Any) -> Any:
    """Return ``data`` as merge input (a list of entries for list kinds); PayloadError if its shape is bad."""
    if not is_list_kind(name):
        validate_payload(name, {"data": data})
        return data
    incoming: list[Entry] = [cast(Entry, data)] if isinstance(data, dict) else list(data)
    validate_payload(name, {"data": incoming})
    return incoming


def _apply(row: Notification, name: str, incoming: Any, now_ts: float) -> None:
    """Merge checked ``incoming`` into ``row`` in memory and bump its timestamp.

    The merged list is not validated again: the stored list was checked when it was written,
    incoming entries were checked by _checked, and merging by task_id keeps task ids unique.
    Why: validating the whole list on each merge cost O(list) per reservation.
    """
    if is_list_kind(name):
        merged = merge_entries(row.payload.get("data") or [], stamp_ended(incoming, now_ts=now_ts))
        row.payload = {"data": prune_entries(merged, now_ts=now_ts, grace_seconds=grace_seconds())}
    else:
        row.payload = {"data": incoming}
    _bump(row, now_ts)


def _set(row: Notification, payload: dict[str, Any], now_ts: float) -> None:
    validate_payload(row.name, payload)
    row.payload = payload
    _bump(row, now_ts)


def _bump(row: Notification, now_ts: float) -> None:
    # Strictly increasing, so a reader polling with since=<last timestamp> never misses a change.
    row.timestamp = max(now_ts, row.timestamp + 1e-6)


def _save(row: Notification, payload: dict[str, Any], now_ts: float) -> None:
    _set(row, payload, now_ts)
    row.save(update_fields=["payload", "timestamp"])
    _keep_when_committed([row])


def merge_notification(*, owner_id: int, name: str, data: Any) -> Notification:
    """Merge ``data`` into the (owner, name) row under a lock and bump its timestamp.

    List kinds merge entries by task_id (replace or append) and prune ended ones after a grace
    period; other kinds replace the value. Raises PayloadError for a bad shape; nothing is saved.
    Inside a caller's transaction (reserve_task writes the task row in the same one) no savepoint
    is opened: the shape is checked before any query, so there is nothing partial to undo, and a
    database error fails the caller's transaction as a whole. The row lock lasts until it commits.
    """
    incoming = _checked(name, data)
    with transaction.atomic(savepoint=False):
        row = _locked_row(owner_id, name)
        _apply(row, name, incoming, timezone.now().timestamp())
        _save_all([row])
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
    rows = _locked_rows({(owner_id, name) for name in LIST_KINDS})
    for row in rows.values():
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
    checked = [(owner_id, name, _checked(name, data)) for owner_id, name, data in changes]
    now_ts = timezone.now().timestamp()
    keys = {(owner_id, name) for owner_id, name, _ in changes}
    rows = _locked_rows(keys)
    missing = sorted(keys - rows.keys())
    if missing:  # first notices of these owners: one INSERT for all, then lock them (a concurrent creator's too)
        Notification.objects.bulk_create(
            [Notification(owner_id=owner_id, name=name) for owner_id, name in missing], ignore_conflicts=True
        )
        rows.update(_locked_rows(set(missing)))
    for owner_id, name, incoming in checked:
        _apply(rows[(owner_id, name)], name, incoming, now_ts)
    _save_all(list(rows.values()))


def _locked_rows(keys: set[tuple[int, str]]) -> dict[tuple[int, str], Notification]:
    """The existing rows of ``keys`` ((owner_id, name) pairs), locked for this transaction, in pk order.

    The locked read of the merges (one row or many) and of dismiss_entries. A row's payload is
    read from the database only if this process did not write it last (see _WrittenPayloads):
    the lock is taken by reading the keys and timestamps alone. ``created_at`` is left deferred.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    sql = _sql(conn.alias)
    owners = sorted({owner_id for owner_id, _ in keys})
    names = sorted({name for _, name in keys})
    with conn.cursor() as cursor:
        cursor.execute(sql.lock(len(owners), len(names)), [*owners, *names])
        found = [row for row in cursor.fetchall() if (row[1], row[2]) in keys]
        payloads = {pk: _written.get(pk, timestamp) for pk, _, _, timestamp in found}
        unknown = [pk for pk, payload in payloads.items() if payload is None]
        if unknown:
            cursor.execute(sql.payloads(len(unknown)), unknown)
            payloads.update((pk, _PAYLOAD.from_db_value(raw, None, conn)) for pk, raw in cursor.fetchall())  # type: ignore[arg-type]
    fields = ["id", "owner_id", "name", "payload", "timestamp"]
    return {
        (owner_id, name): Notification.from_db(conn.alias, fields, [pk, owner_id, name, payloads[pk], timestamp])
        for pk, owner_id, name, timestamp in found
    }


class _WrittenPayloads:
    """The payloads this process wrote and committed last, by row, each with the timestamp it was written under.

    Why: a worker merges the entries of every task it finishes into its owners' lists, and decoding
    those lists again from the database was most of the merge's cost (a tenth of a worker's CPU
    per mail in a burst, measured with py-spy). Only this module writes these rows, each write
    under the row's lock and to a timestamp later than the row's last (_bump). So a committed
    (row, timestamp) pair names one payload for good, and a row that still carries the timestamp
    this process committed still holds the payload it wrote. Only committed writes are kept
    (_keep_when_committed): a rolled-back write's timestamp may be written later by another
    process with another payload (both computed "last + 1e-6" when the stored stamp was ahead of
    their clocks). Kept payloads are never mutated (the merge builds new lists and entries).
    Bounded by the number of entries kept, so a few long lists cannot grow a worker.
    """

    MAX_ENTRIES = 10_000  # a few MB of entries at most; a burst of 100 owners keeps about 2,000

    def __init__(self) -> None:
        self._rows: OrderedDict[int, tuple[float, dict[str, Any]]] = OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()  # the web server merges from several threads

    def get(self, pk: int, timestamp: float) -> dict[str, Any] | None:
        with self._lock:
            kept = self._rows.get(pk)
            if kept is None or kept[0] != timestamp:
                return None
            self._rows.move_to_end(pk)
            return kept[1]

    def put_many(self, written: list[tuple[int, float, dict[str, Any]]]) -> None:
        for pk, timestamp, payload in written:
            self.put(pk, timestamp, payload)

    def put(self, pk: int, timestamp: float, payload: dict[str, Any]) -> None:
        with self._lock:
            previous = self._rows.pop(pk, None)
            if previous is not None:
                self._entries -= self._size(previous[1])
            self._rows[pk] = (timestamp, payload)
            self._entries += self._size(payload)
            while self._entries > self.MAX_ENTRIES and len(self._rows) > 1:
                _, (_, oldest) = self._rows.popitem(last=False)
                self._entries -= self._size(oldest)

    @staticmethod
    def _size(payload: dict[str, Any]) -> int:
        data = payload.get("data")
        return 1 + (len(data) if isinstance(data, list) else 0)


_written = _WrittenPayloads()


def _save_all(rows: list[Notification]) -> None:
    """Write payload and timestamp of the (locked) rows with one executemany.

    bulk_update builds a CASE expression per row and field; for a batch of a hundred owners that
    cost ~90 ms of Python per call (measured), against a few ms for the plain statements.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    sql = _sql(conn.alias).update()
    params = [(_PAYLOAD.get_db_prep_save(row.payload, conn), row.timestamp, row.pk) for row in rows]
    with conn.cursor() as cursor:
        if len(params) == 1:  # one merge: a plain execute (also what query logs show as an UPDATE)
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)
    _keep_when_committed(rows)


def _keep_when_committed(rows: list[Notification]) -> None:
    """Keep the rows' new payloads once their transaction commits (see _WrittenPayloads)."""
    written = [(row.pk, row.timestamp, row.payload) for row in rows]
    transaction.on_commit(lambda: _written.put_many(written), using=DEFAULT_DB_ALIAS)

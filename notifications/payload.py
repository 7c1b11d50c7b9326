"""Pure functions over notification payloads: merge, prune, validate. No ORM, no mutation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

from reservemail.exceptions import ReservemailError

LIST_KINDS = frozenset({"task_progress", "task_reserve"})
ENDED_STATUSES = frozenset({"finished", "canceled"})
MAX_ENTRIES = 1000


class PayloadError(ReservemailError):
    """A payload does not have the shape its name requires."""

    code = "invalid_payload"


class Entry(TypedDict):
    task_id: int
    status: str
    description: NotRequired[str]
    progress: NotRequired[int]
    failed: NotRequired[bool]
    reserved_at: NotRequired[str | None]
    repeats: NotRequired[str]  # the frequency of the task's series, if it is an occurrence of one
    ended_ts: NotRequired[float | None]


def is_list_kind(name: str) -> bool:
    return name in LIST_KINDS


def merge_entries(current: list[Entry], incoming: list[Entry]) -> list[Entry]:
    """Replace entries with the same task_id in place and append new ones, in order.

    Unchanged entries are shared with ``current``, not copied: neither is mutated, and copying
    every entry of a long list cost more than the merge itself.
    """
    merged = list(current)
    index = {entry["task_id"]: i for i, entry in enumerate(merged)}
    for entry in incoming:
        position = index.get(entry["task_id"])
        if position is None:
            index[entry["task_id"]] = len(merged)
            merged.append(entry.copy())
        else:
            merged[position] = {**merged[position], **entry}
    return merged


def stamp_ended(entries: list[Entry], *, now_ts: float) -> list[Entry]:
    """Give entries of ended tasks the time they ended (``ended_ts``), unless they carry one."""
    return [
        {**entry, "ended_ts": now_ts} if entry.get("status") in ENDED_STATUSES and not entry.get("ended_ts") else entry
        for entry in entries
    ]  # type: ignore[misc]


def drop_ended(entries: list[Entry], task_ids: set[int]) -> list[Entry]:
    """Remove the entries of ``task_ids`` whose task has ended (the reader has seen the end)."""
    return [e for e in entries if not (e["task_id"] in task_ids and e.get("status") in ENDED_STATUSES)]


def prune_entries(entries: list[Entry], *, now_ts: float, grace_seconds: float) -> list[Entry]:
    """Drop entries of tasks that ended more than ``grace_seconds`` ago; keep at most MAX_ENTRIES.

    The grace period lets a polling page see the final state before the entry leaves the list.
    Past the cap, what the page needs least leaves first: ended entries (earliest ended first),
    then reservations due furthest ahead, then the oldest of the rest; the kept ones keep their
    order. Why: dropping by age dropped the reservations made first, often the ones due soonest,
    whose countdown the page is there to show.
    """
    kept = [
        entry
        for entry in entries
        if entry.get("status") not in ENDED_STATUSES or now_ts - float(entry.get("ended_ts") or now_ts) <= grace_seconds
    ]
    excess = len(kept) - MAX_ENTRIES
    if excess <= 0:
        return kept
    drop = {id(entry) for entry in _least_needed_first(kept)[:excess]}
    return [entry for entry in kept if id(entry) not in drop]


def _least_needed_first(entries: list[Entry]) -> list[Entry]:
    ended = sorted(
        (e for e in entries if e.get("status") in ENDED_STATUSES), key=lambda e: float(e.get("ended_ts") or 0.0)
    )
    due = {id(e): at for e in entries if e.get("status") == "reserved" and (at := _due_at(e)) is not None}
    reserved = sorted((e for e in entries if id(e) in due), key=lambda e: due[id(e)], reverse=True)
    listed = {id(e) for e in ended} | due.keys()
    return ended + reserved + [e for e in entries if id(e) not in listed]


def _due_at(entry: Entry) -> datetime | None:
    """The entry's ``reserved_at`` as an aware datetime, or None if it has none that reads as one."""
    raw = entry.get("reserved_at")
    try:
        at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None


def validate_payload(name: str, payload: Any) -> None:
    """Raise PayloadError unless ``payload`` is ``{"data": ...}`` with the shape ``name`` needs."""
    if not isinstance(payload, dict) or set(payload) != {"data"}:
        raise PayloadError(f"payload of {name!r} must be an object with exactly the key 'data'")
    if not is_list_kind(name):
        return
    data = payload["data"]
    if not isinstance(data, list):
        raise PayloadError(f"data of {name!r} must be a list")
    seen: set[int] = set()
    for entry in data:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("task_id"), int)
            or isinstance(entry["task_id"], bool)
        ):
            raise PayloadError(f"every entry of {name!r} needs an integer task_id")
        if entry["task_id"] in seen:
            raise PayloadError(f"task_id {entry['task_id']} appears twice in {name!r}")
        seen.add(entry["task_id"])

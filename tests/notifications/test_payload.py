"""The pure payload functions: merge by task_id, stamp and prune ended entries, validate shapes."""

import copy

import pytest

from notifications.payload import (
    MAX_ENTRIES,
    PayloadError,
    drop_ended,
    merge_entries,
    prune_entries,
    stamp_ended,
    validate_payload,
)


def e(task_id, status="running", **kw):
    return {"task_id": task_id, "status": status, **kw}


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        pytest.param([], [], [], id="empty"),
        pytest.param([], [e(1)], [e(1)], id="append-to-empty"),
        pytest.param([e(1, progress=10)], [e(1, progress=50)], [e(1, progress=50)], id="replace-same-task"),
        pytest.param([e(1), e(2)], [e(3)], [e(1), e(2), e(3)], id="append-new-task"),
        pytest.param(
            [e(1, progress=0), e(2), e(3)],
            [e(2, "finished", progress=100)],
            [e(1, progress=0), e(2, "finished", progress=100), e(3)],
            id="replace-keeps-position",
        ),
        pytest.param(
            [e(1, description="x", progress=5)],
            [e(1, progress=9)],
            [e(1, description="x", progress=9)],
            id="replace-keeps-unsent-keys",
        ),
        pytest.param([], [e(5), e(4)], [e(5), e(4)], id="incoming-order-kept"),
        pytest.param([e(1)], [e(1, progress=1), e(2)], [e(1, progress=1), e(2)], id="replace-and-append"),
    ],
)
def test_merge_entries_replaces_by_task_id_and_appends(current, incoming, expected):
    before = copy.deepcopy((current, incoming))
    assert merge_entries(current, incoming) == expected
    assert (current, incoming) == before, "inputs must not be mutated"


@pytest.mark.parametrize(
    ("entries", "now_ts", "grace", "kept_ids"),
    [
        pytest.param([], 100.0, 60, [], id="empty"),
        pytest.param([e(1), e(2, "reserved")], 100.0, 60, [1, 2], id="live-entries-stay"),
        pytest.param([e(1, "finished", ended_ts=90.0)], 100.0, 60, [1], id="ended-within-grace-stays"),
        pytest.param([e(1, "finished", ended_ts=30.0)], 100.0, 60, [], id="ended-past-grace-leaves"),
        pytest.param(
            [e(1, "canceled", ended_ts=30.0), e(2, "running")], 100.0, 60, [2], id="canceled-past-grace-leaves"
        ),
        pytest.param([e(1, "finished", ended_ts=100.0)], 100.0, 0, [1], id="zero-grace-same-instant"),
        pytest.param([e(1, "finished")], 100.0, 60, [1], id="ended-without-stamp-counts-as-now"),
    ],
)
def test_prune_entries_drops_ended_after_grace(entries, now_ts, grace, kept_ids):
    assert [x["task_id"] for x in prune_entries(entries, now_ts=now_ts, grace_seconds=grace)] == kept_ids


def test_prune_entries_caps_the_list_dropping_ended_first():
    live = [e(i) for i in range(MAX_ENTRIES - 10)]
    ended = [e(10_000 + i, "finished", ended_ts=99.0) for i in range(50)]
    kept = prune_entries(ended + live, now_ts=100.0, grace_seconds=60)
    assert len(kept) == MAX_ENTRIES
    assert [x["task_id"] for x in kept if x["status"] == "running"] == [x["task_id"] for x in live]


def test_prune_entries_past_the_cap_drops_reservations_due_furthest_ahead_before_the_rest():
    def due(task_id, minutes, **kw):
        at = f"2026-12-07T{9 + minutes // 60:02d}:{minutes % 60:02d}:00+00:00"
        return e(task_id, "reserved", reserved_at=at, **kw)

    soonest = [due(i, i % 600) for i in range(MAX_ENTRIES - 10)]  # made first, due within ten hours
    running = [e(5_000 + i) for i in range(10)]
    later = [due(8_000 + i, 700 + i) for i in range(30)]  # made last, due after all of the above
    odd = [e(9_000, "reserved", reserved_at="not a time"), e(9_001, "reserved", reserved_at="2026-12-07T09:00:00")]
    ended = [e(9_500, "canceled", ended_ts=99.0)]
    entries = soonest + running + ended + later + odd
    kept = prune_entries(entries, now_ts=100.0, grace_seconds=60)

    ids = [x["task_id"] for x in kept]
    assert ids == [x["task_id"] for x in entries if x["task_id"] in set(ids)], "the kept ones keep their order"
    # 1,033 entries, 33 too many: the ended one, the 30 due last, then the two due latest of the others
    dropped = {x["task_id"] for x in entries} - set(ids)
    assert dropped == {9_500, 599, 598} | {x["task_id"] for x in later}
    assert len(kept) == MAX_ENTRIES


def test_prune_entries_past_the_cap_without_reservations_drops_the_oldest():
    entries = [e(i) for i in range(MAX_ENTRIES + 5)]
    assert [x["task_id"] for x in prune_entries(entries, now_ts=100.0, grace_seconds=60)] == list(
        range(5, MAX_ENTRIES + 5)
    )


def test_stamp_ended_marks_only_ended_entries_without_a_stamp():
    entries = [e(1), e(2, "finished"), e(3, "canceled", ended_ts=5.0)]
    stamped = stamp_ended(entries, now_ts=42.0)
    assert stamped == [e(1), e(2, "finished", ended_ts=42.0), e(3, "canceled", ended_ts=5.0)]
    assert entries[1] == e(2, "finished")


def test_drop_ended_removes_only_ended_entries_of_the_given_tasks():
    entries = [e(1, "finished"), e(2, "running"), e(3, "canceled"), e(4, "finished")]
    assert drop_ended(entries, {1, 2, 3}) == [e(2, "running"), e(4, "finished")]


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        pytest.param("task_progress", [], "exactly the key 'data'", id="not-an-object"),
        pytest.param("task_progress", {"data": [], "x": 1}, "exactly the key 'data'", id="extra-key"),
        pytest.param("task_progress", {}, "exactly the key 'data'", id="no-data"),
        pytest.param("task_progress", {"data": {}}, "must be a list", id="data-not-list"),
        pytest.param("task_reserve", {"data": [{"status": "x"}]}, "integer task_id", id="missing-task-id"),
        pytest.param("task_reserve", {"data": [{"task_id": "1"}]}, "integer task_id", id="string-task-id"),
        pytest.param("task_reserve", {"data": [{"task_id": True}]}, "integer task_id", id="bool-task-id"),
        pytest.param("task_reserve", {"data": ["x"]}, "integer task_id", id="entry-not-object"),
        pytest.param("task_reserve", {"data": [{"task_id": 1}, {"task_id": 1}]}, "appears twice", id="duplicate"),
    ],
)
def test_validate_payload_rejects_bad_shapes(name, payload, message):
    with pytest.raises(PayloadError, match=message):
        validate_payload(name, payload)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("task_progress", {"data": []}),
        ("task_reserve", {"data": [{"task_id": 1}, {"task_id": 2, "status": "reserved"}]}),
        ("unread_message_count", {"data": 3}),
        ("banner", {"data": {"text": "hi"}}),
    ],
)
def test_validate_payload_accepts_good_shapes(name, payload):
    validate_payload(name, payload)

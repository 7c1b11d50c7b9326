"""The slice sizer: what a claim takes of a due backlog, slice after slice, as one or two workers drain it."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tasks.delivery.policy import SliceSizer


def drain(backlog: int, workers: int, *, rate: float = 400.0) -> list[list[int]]:
    """Slice sizes per worker as ``workers`` workers take turns claiming from ``backlog``."""
    sizers = [SliceSizer() for _ in range(workers)]
    for sizer in sizers:
        sizer.rate = rate
    taken: list[list[int]] = [[] for _ in range(workers)]
    for turn in range(10_000):
        if backlog <= 0:
            break
        worker = turn % workers
        size = min(backlog, sizers[worker].size(backlog))
        taken[worker].append(size)
        backlog -= size
    return taken


@override_settings(DELIVERY_SLICE_SECONDS=0.5, DELIVERY_SLICE_MIN=4, DELIVERY_SLICE_MAX=250)
@pytest.mark.parametrize("burst", [200, 1000, 5000])
@pytest.mark.parametrize("workers", [1, 2])
def test_no_slice_exceeds_a_tenth_of_the_burst(burst, workers):
    """What a frozen worker can hold: one slice, never more than a tenth of the burst it froze in."""
    taken = drain(burst, workers)
    assert sum(map(sum, taken)) == burst
    assert max(max(sizes) for sizes in taken if sizes) <= max(4, burst // 10)


@override_settings(DELIVERY_SLICE_SECONDS=0.5, DELIVERY_SLICE_MIN=4, DELIVERY_SLICE_MAX=250)
def test_a_draining_burst_keeps_its_slice_size_until_the_tail():
    """A burst of 1000 is claimed in about fifteen slices, not the ~45 of a tenth of what is left each time."""
    taken = drain(1000, 1)
    sizes = taken[0]
    assert sizes[:8] == [100] * 8
    assert len(sizes) <= 16, sizes


@override_settings(DELIVERY_SLICE_SECONDS=0.5, DELIVERY_SLICE_MIN=4, DELIVERY_SLICE_MAX=250)
def test_two_workers_share_the_tail():
    """At the end of a burst each claim takes at most half of what is left, so the other worker gets some."""
    first, second = drain(1000, 2)
    assert abs(sum(first) - sum(second)) <= 100
    assert len(second) >= len(first) - 1


@override_settings(DELIVERY_SLICE_SECONDS=0.5, DELIVERY_SLICE_MIN=4, DELIVERY_SLICE_MAX=250)
def test_the_largest_backlog_is_forgotten_when_work_runs_out():
    """After an idle claim, a later small burst is sliced by its own size, not the earlier burst's."""
    sizer = SliceSizer()
    sizer.rate = 400.0
    assert sizer.size(1000) == 100
    assert sizer.size(0) == 4
    assert sizer.size(200) == 20


@override_settings(DELIVERY_SLICE_SECONDS=0.5, DELIVERY_SLICE_MIN=4, DELIVERY_SLICE_MAX=250)
def test_the_rate_caps_a_slice():
    """A slow worker takes what it sends in DELIVERY_SLICE_SECONDS, whatever the backlog."""
    sizer = SliceSizer()
    sizer.rate = 40.0
    assert sizer.size(2000) == 20

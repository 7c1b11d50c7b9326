"""The rules a worker follows: when a job may start, how many attempts a task gets, how big a slice is."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from django.conf import settings

MAX_EARLY_WAIT = 5.0  # seconds a released job may wait for its due time before giving it back
JOB_SECONDS = 300.0  # a job claims new slices this long, then leaves the rest to a continuation job
IDLE_PAUSE = 0.005  # seconds between claims while due work is held by other workers' slices
PREPARE_MARGIN = 0.002  # seconds before the next due time that preparing messages stops (one takes ~0.4 ms)
PREPARE_MIN_WAIT = 0.05  # a shorter wait prepares nothing: its query alone could make the next send late
HELP_THRESHOLD = 200  # unleased recipients of a just-claimed task from which idle workers are asked to help


def is_missed(due: datetime, *, now: datetime) -> bool:
    """True if a reservation due at ``due`` is later than MISSED_GRACE_MINUTES and must not be sent."""
    return due < now - timedelta(minutes=settings.MISSED_GRACE_MINUTES)


def max_attempts() -> int:
    """How many times a task may be claimed: the first try plus one per retry interval."""
    return len(settings.TASK_RETRY_INTERVALS) + 1


def retries_after(attempt: int) -> tuple[int, float]:
    """After attempt ``attempt`` failed transiently: how many retries are left, and the delay before the next."""
    intervals = list(settings.TASK_RETRY_INTERVALS)
    left = max(0, max_attempts() - attempt)
    delay = float(intervals[attempt - 1]) if 0 < attempt <= len(intervals) else 0.0
    return left, delay


def relay_retry_delay(attempt: int) -> float:
    """Delay before retrying a task the relay refused (TLS, login): the retry intervals, then the last one again.

    Such a task is never given up (it waits for the relay to be set up right), so the back-off is bounded.
    """
    intervals = [float(x) for x in settings.TASK_RETRY_INTERVALS] or [60.0]
    return intervals[min(max(attempt, 1), len(intervals)) - 1]


def backlog_cap() -> int:
    """How far due work is counted: a slice is at most a tenth of the backlog and DELIVERY_SLICE_MAX."""
    return 10 * int(settings.DELIVERY_SLICE_MAX) + 1


def prepare_wanted(*, workers_here: int) -> bool:
    """Whether a waiting job prepares the messages due by its time (DELIVERY_PREPARE: on, off or auto).

    auto: when this host runs at least as many workers as it has cores. Then the workers share the
    cores, and each render taken out of the drain frees a core for the others (measured: a burst
    with two workers on two cores about 29% faster). A worker with a core of its own renders while
    the relay answers at no cost, and measured about 12% slower with its messages prepared
    (docs/performance.md, 2026-12-07, evening).
    """
    mode = str(settings.DELIVERY_PREPARE).strip().lower()
    if mode == "off" or int(settings.DELIVERY_PREPARE_MAX) <= 0:
        return False
    return mode == "on" or workers_here >= (os.cpu_count() or 1)


def lease_seconds() -> float:
    """How long a slice stays a worker's without renewal: as long as a RUNNING task may stay silent.

    The sender renews it every TASK_PROGRESS_INTERVAL; a frozen or dead worker loses it after this.
    """
    return float(settings.HEARTBEAT_TIMEOUT)


class SliceSizer:
    """How many recipients the next claim takes: at most what this worker sends in
    DELIVERY_SLICE_SECONDS (its measured rate) and a tenth of the largest due backlog this job has
    seen in the current run of work, at most half of what is left, at least a tenth of it; within
    DELIVERY_SLICE_MIN..DELIVERY_SLICE_MAX.

    A tenth of the backlog lets every worker take part in a burst and bounds what a frozen worker
    holds to about a tenth of it; keeping that size while the burst drains (a tenth of the largest
    backlog, not of what is left) saves the many small slices of a tail that shrinks by a tenth per
    claim, each paying a claim and a finish (measured: about 45 slices for a burst of 1000, now
    about 15); half of what is left still shares the tail between workers. The rate cap keeps a
    slice short in time, so its lease and its progress stay fresh. The rate is an exponential
    average of recipients per second over past slices.
    """

    def __init__(self) -> None:
        self.rate = 200.0  # a modest first guess; the first slices measure the real one
        self.seen = 0  # the largest backlog since work was last found wanting
        self._started = 0.0

    def size(self, backlog: int) -> int:
        self.seen = max(self.seen, backlog) if backlog > 0 else 0
        by_rate = int(self.rate * float(settings.DELIVERY_SLICE_SECONDS))
        share = max(backlog // 10, min(self.seen // 10, backlog // 2))
        wanted = min(by_rate, share)
        return max(int(settings.DELIVERY_SLICE_MIN), min(int(settings.DELIVERY_SLICE_MAX), wanted))

    def start(self) -> None:
        self._started = time.monotonic()

    def done(self, sent: int) -> None:
        """Account for a slice of ``sent`` recipients that took the time since start()."""
        took = time.monotonic() - self._started
        if sent <= 0 or took <= 0:
            return
        self.rate = 0.5 * self.rate + 0.5 * (sent / took)

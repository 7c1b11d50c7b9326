"""Turn sink arrivals into the figures of one table row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.procs import Arrival


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class MailRow:
    scenario: str
    n: int
    drain: float | None = None  # mails/s while draining
    ratio: float | None = None  # drain / ceiling drain of the same run
    late_min: float | None = None
    late_p50: float | None = None
    late_p95: float | None = None
    late_p99: float | None = None
    late_max: float | None = None
    early: int = 0
    early_max: float = 0.0
    lost: int = 0
    duplicates: int = 0
    rss_mb: float | None = None
    cpu_ms: dict[str, float] | None = None  # per mail: "senders" (workers, or the ceiling's process), "sink", "redis"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(scenario: str, arrivals: list[Arrival], due_of: dict[str, float], *, drain: bool = True) -> MailRow:
    """Lateness = arrival - due per recipient (first arrival); early, lost and duplicates counted."""
    first: dict[str, float] = {}
    copies = 0
    for arrival in arrivals:
        for rcpt in arrival.rcpts:
            if rcpt not in due_of:
                continue
            copies += 1
            first[rcpt] = min(arrival.at, first.get(rcpt, arrival.at))
    row = MailRow(scenario=scenario, n=len(due_of), lost=len(due_of) - len(first), duplicates=copies - len(first))
    if not first:
        row.notes.append("nothing arrived")
        return row
    lateness = [at - due_of[rcpt] for rcpt, at in first.items()]
    row.late_min, row.late_max = min(lateness), max(lateness)
    row.late_p50, row.late_p95, row.late_p99 = (percentile(lateness, p) for p in (50, 95, 99))
    early = [x for x in lateness if x < 0]
    row.early, row.early_max = len(early), -min(early) if early else 0.0
    times = sorted(first.values())
    if drain and len(times) > 1 and times[-1] > times[0]:
        row.drain = (len(times) - 1) / (times[-1] - times[0])
    return row

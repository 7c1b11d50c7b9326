"""Prometheus metrics, computed at scrape time from the database (the truth) and Redis (the queues).

Nothing is counted in process memory: gunicorn and the workers are many processes on many hosts,
and every scrape of any web process gives the same answer. Read-only, like a selector.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Coalesce

from tasks import scheduler
from tasks.models import Delivery, Task

LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)  # seconds


@dataclass
class Metric:
    """One metric family: name, type, help, and (labels, value) samples."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _task_metrics(now: datetime) -> list[Metric]:
    by_status = Metric("reservemail_tasks", "gauge", "Tasks by status.")
    counts = dict(Task.objects.values_list("status").annotate(n=Count("pk")).order_by())
    for status in Task.Status.values:
        by_status.samples.append(({"status": status}, counts.get(status, 0)))
    failed = Metric("reservemail_tasks_failed", "gauge", "Ended tasks with the failed flag (a recipient failed).")
    failed.samples.append(({}, Task.objects.filter(failed=True).count()))
    due = Metric("reservemail_reservations_due_next_hour", "gauge", "Reserved tasks due within the next hour.")
    due.samples.append(
        (
            {},
            Task.objects.filter(
                status=Task.Status.RESERVED, reserved_at__gte=now, reserved_at__lt=now + timedelta(hours=1)
            ).count(),
        )
    )
    grace = now - timedelta(seconds=settings.METRICS_OVERDUE_GRACE)
    overdue = Metric(
        "reservemail_tasks_overdue",
        "gauge",
        f"Tasks still waiting more than {settings.METRICS_OVERDUE_GRACE}s past due (queued: since created).",
    )
    overdue.samples.append(
        ({"status": "reserved"}, Task.objects.filter(status=Task.Status.RESERVED, reserved_at__lt=grace).count())
    )
    overdue.samples.append(
        ({"status": "queued"}, Task.objects.filter(status=Task.Status.QUEUED, created_at__lt=grace).count())
    )
    return [by_status, failed, due, overdue]


def _latency_histogram(now: datetime) -> Metric:
    """Seconds from due time (reserved_at, else created_at) to each recipient's send, over the window."""
    window = settings.METRICS_WINDOW
    latency = ExpressionWrapper(
        F("sent_at") - Coalesce(F("task__reserved_at"), F("task__created_at")), output_field=DurationField()
    )
    rows = Delivery.objects.filter(status=Delivery.Status.SENT, sent_at__gte=now - timedelta(seconds=window))
    buckets = {
        f"le_{i}": Count("pk", filter=Q(latency__lte=timedelta(seconds=b))) for i, b in enumerate(LATENCY_BUCKETS)
    }
    agg = rows.annotate(latency=latency).aggregate(count=Count("pk"), total=Sum("latency"), **buckets)
    metric = Metric(
        "reservemail_send_latency_seconds",
        "histogram",
        f"Seconds from a task's due time to each recipient's send, over the last {window}s (no rate() needed).",
    )
    for i, bound in enumerate(LATENCY_BUCKETS):
        metric.samples.append(({"le": _number(bound)}, agg[f"le_{i}"]))
    metric.samples.append(({"le": "+Inf"}, agg["count"]))
    total = agg["total"]
    metric.samples.append(({"__suffix__": "_sum"}, total.total_seconds() if total else 0.0))
    metric.samples.append(({"__suffix__": "_count"}, agg["count"]))
    return metric


def _smtp_metrics(now: datetime) -> list[Metric]:
    since = now - timedelta(seconds=settings.METRICS_WINDOW)
    errors = Metric(
        "reservemail_smtp_errors",
        "gauge",
        f"Recipients refused permanently (5xx) in tasks ended over the last {settings.METRICS_WINDOW}s, and "
        "recipients waiting for a retry after a transient SMTP error (4xx, broken connection).",
    )
    permanent = Delivery.objects.filter(status=Delivery.Status.FAILED, task__ended_at__gte=since).count()
    transient = Delivery.objects.filter(status=Delivery.Status.PENDING).exclude(error="").count()
    errors.samples += [({"kind": "permanent"}, permanent), ({"kind": "transient"}, transient)]
    return [errors]


def _suppressed_metric(now: datetime) -> Metric:
    """Recipients the send loop skipped for the suppression list: their delivery is ``suppressed``, its
    ``sent_at`` the time it was skipped, so the window is read as the latency histogram reads it."""
    window = settings.METRICS_WINDOW
    suppressed = Metric(
        "reservemail_recipients_suppressed",
        "gauge",
        f"Recipients skipped, not sent, because their address is on the suppression list, over the last {window}s.",
    )
    since = now - timedelta(seconds=window)
    suppressed.samples.append(
        ({}, Delivery.objects.filter(status=Delivery.Status.SUPPRESSED, sent_at__gte=since).count())
    )
    return suppressed


def _queue_metrics() -> list[Metric]:
    up = Metric("reservemail_redis_up", "gauge", "1 if Redis answered this scrape.")
    jobs = Metric("reservemail_queue_jobs", "gauge", "RQ jobs per queue and state.")
    lock = Metric("reservemail_scheduler_active", "gauge", "1 if a scheduler holds the queue's lock.")
    workers = Metric("reservemail_workers", "gauge", "Registered RQ workers.")
    refused = Metric(
        "reservemail_relay_refused", "gauge", "1 while the mail relay refuses the workers (certificate, TLS or login)."
    )
    try:
        stats = scheduler.queue_stats()
        worker_count = scheduler.worker_count()
        refusal = scheduler.relay_refusal()
    except scheduler.QueueError:
        up.samples.append(({}, 0))
        return [up]
    up.samples.append(({}, 1))
    for queue, values in stats.items():
        for state in ("queued", "scheduled", "started", "failed"):
            jobs.samples.append(({"queue": queue, "state": state}, values[state]))
        lock.samples.append(({"queue": queue}, values["scheduler"]))
    workers.samples.append(({}, worker_count))
    refused.samples.append(({}, 1 if refusal else 0))
    return [up, jobs, lock, workers, refused]


def collect_metrics(*, now: datetime) -> list[Metric]:
    """Return every metric family; Redis being down gives reservemail_redis_up 0, not an error."""
    return [
        *_task_metrics(now),
        _latency_histogram(now),
        *_smtp_metrics(now),
        _suppressed_metric(now),
        *_queue_metrics(),
    ]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_prometheus(metrics: Iterable[Metric]) -> str:
    """Render metric families in the Prometheus text exposition format 0.0.4."""
    lines = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {metric.help.replace(chr(92), chr(92) * 2)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            labels = dict(labels)
            suffix = labels.pop("__suffix__", "_bucket" if "le" in labels else "")
            text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            lines.append(
                f"{metric.name}{suffix}{{{text}}} {_number(value)}"
                if text
                else f"{metric.name}{suffix} {_number(value)}"
            )
    return "\n".join(lines) + "\n"

"""manage.py reconcile_tasks: make Redis agree with the task rows once (workers also do it periodically)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from series.upkeep import reconcile_series
from tasks.services import reconcile_tasks


class Command(BaseCommand):
    help = "Re-schedule or re-queue pending tasks whose job is missing, recover tasks whose worker died."

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile_tasks()
        self.stdout.write(report.summary())
        repaired = reconcile_series()
        self.stdout.write(f"series repaired={len(repaired)}{repaired[:20] if repaired else ''}")
        if not report.redis_ok:
            raise SystemExit(1)

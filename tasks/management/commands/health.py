"""manage.py health: print the health report as JSON; exit 1 if anything needs attention."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from tasks.health import health_report


class Command(BaseCommand):
    help = "Report database, Redis, workers per queue, scheduler and overdue reservations as JSON."

    def handle(self, *args: Any, **options: Any) -> None:
        report = health_report()
        self.stdout.write(json.dumps(report, indent=2))
        if not report["ok"]:
            raise SystemExit(1)

"""manage.py health: print the health report as JSON; exit 1 if anything needs attention.

``--liveness`` checks only that the database and Redis answer: container healthchecks use it, so
a web container is not marked unhealthy (and restarted) because no worker is running yet.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

from tasks import scheduler
from tasks.health import health_report


class Command(BaseCommand):
    help = "Report database, Redis, workers per queue, scheduler and overdue reservations as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--liveness", action="store_true", help="only check that the database and Redis answer")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["liveness"]:
            self._liveness()
            return
        report = health_report()
        self.stdout.write(json.dumps(report, indent=2))
        if not report["ok"]:
            raise SystemExit(1)

    def _liveness(self) -> None:
        problems = []
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as exc:
            problems.append(f"database: {exc}")
        if not scheduler.ping():
            problems.append("redis: no answer")
        if problems:
            raise CommandError("unhealthy: " + "; ".join(problems))
        self.stdout.write("ok: database and redis answer")

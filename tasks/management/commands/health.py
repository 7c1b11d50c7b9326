"""Minimal health check for container healthchecks: the database and Redis answer, or exit 1.

MINIMAL VERSION (issue 7, production): docker-compose.yml's healthchecks call
`python manage.py health`. Issue 5 writes the fuller command and /healthz; when both branches
meet, keep that one and make sure it still exits non-zero when the database or Redis is down.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from tasks import scheduler


class Command(BaseCommand):
    help = "Exit 0 if the database and Redis answer, else print what failed and exit 1."

    def handle(self, *args: Any, **options: Any) -> None:
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

"""Delete finished and canceled tasks (and their deliveries) older than N days, and expired idempotency keys."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tasks.services.idempotency import purge_expired_keys
from tasks.services.purge import purge_finished_tasks, purgeable_tasks


class Command(BaseCommand):
    help = (
        "Delete FINISHED and CANCELED tasks, with their deliveries, that ended more than --days days ago "
        "(default TASK_RETENTION_DAYS). Queued, reserved and running tasks are never deleted. Also deletes the "
        "stored answers of Idempotency-Keys (and of mail-form sends) older than IDEMPOTENCY_KEY_TTL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="age in days (default: TASK_RETENTION_DAYS)")
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options["days"] is not None else settings.TASK_RETENTION_DAYS
        if days < 1:
            raise CommandError(f"--days must be at least 1 (got {days})")
        now = timezone.now()
        if options["dry_run"]:
            count = purgeable_tasks(older_than_days=days, now=now).count()
            self.stdout.write(f"Would delete {count} task(s) that ended more than {days} day(s) ago.")
            return
        tasks, deliveries = purge_finished_tasks(older_than_days=days, now=now)
        self.stdout.write(f"Deleted {tasks} task(s) and {deliveries} delivery row(s) older than {days} day(s).")
        keys = purge_expired_keys(now=now)
        if keys:
            self.stdout.write(f"Deleted {keys} expired idempotency key(s).")

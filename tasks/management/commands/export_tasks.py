"""Export one user's tasks as CSV (to standard output, or to --output)."""

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks.export import write_tasks_csv


class Command(BaseCommand):
    help = "Write USERNAME's tasks as CSV (one row per task) to standard output or --output FILE."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            owner = get_user_model().objects.get(username=options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {options['username']!r}") from None
        if options["output"] is None:
            rows = write_tasks_csv(owner=owner, out=self.stdout)
            self.stderr.write(f"Exported {rows} task(s) of {owner.get_username()}.")
            return
        with options["output"].open("w", newline="", encoding="utf-8") as out:
            rows = write_tasks_csv(owner=owner, out=out)
        self.stderr.write(f"Exported {rows} task(s) of {owner.get_username()} to {options['output']}.")

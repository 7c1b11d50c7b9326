"""Create the demo account when there is no user yet, and say how to sign in."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-pass-1234"  # noqa: S105 - a local demo account, printed to the operator


class Command(BaseCommand):
    help = "Create a demo superuser (demo / demo-pass-1234) if no user exists."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        if users.exists():
            self.stdout.write("demo: users exist; sign in with your account")
            return
        users.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
        self.stdout.write(f"demo: created user {DEMO_USERNAME!r} with password {DEMO_PASSWORD!r} (also admin)")

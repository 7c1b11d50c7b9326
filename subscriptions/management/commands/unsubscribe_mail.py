"""manage.py unsubscribe_mail: read one message on standard input and unsubscribe the token in it.

For the mailbox of UNSUBSCRIBE_MAILTO: a mail server's pipe alias (``leave: "|<this command>"``) or
``fetchmail --mda "<this command>"`` hands each message to it, run with the app's settings (README,
Unsubscribing). Exit codes follow sysexits, which mail servers read: 0 when the message
is done with (unsubscribed, already so, or not an unsubscribe request: no bounce, since the sender
of such a message is often forged), 75 (EX_TEMPFAIL) when it could not be done (the database is
down, or anything else went wrong), so the mail server keeps the message and tries again: an
unsubscribe request is never dropped for a passing fault.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand

from subscriptions.inbound import MAX_MESSAGE_BYTES, Outcome, unsubscribe_by_mail

EX_TEMPFAIL = 75
DRAIN_MAX_BYTES = 64_000_000  # of an oversized message read and dropped, so the mail server's write ends cleanly

logger = logging.getLogger("subscriptions.inbound")


class Command(BaseCommand):
    help = "Unsubscribe the token in the message on standard input (mail sent to UNSUBSCRIBE_MAILTO)."
    # Run once per arriving message: no system checks (`manage.py check` is the deploy's), and a
    # failing one would end the command with a status the mail server reads as "bounce".
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        raw = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)  # one byte more tells an oversized message
        if len(raw) > MAX_MESSAGE_BYTES:
            _drain(sys.stdin.buffer)
        try:
            outcome = unsubscribe_by_mail(raw)
        except Exception as exc:  # the database is down, or a fault of ours: keep the message, not bounce it
            logger.exception("unsubscribe by mail failed, the mail server will retry")
            self.stderr.write(f"temporary failure: {exc!r}")
            raise SystemExit(EX_TEMPFAIL) from exc
        self._log(outcome)
        self.stdout.write(outcome.summary())

    @staticmethod
    def _log(outcome: Outcome) -> None:
        if outcome.target is None:
            logger.warning("unsubscribe by mail ignored: %s", outcome.problem)
        else:
            logger.info("unsubscribe by mail list=%s created=%s", outcome.target.list_name or "*", outcome.created)


def _drain(stream: BinaryIO) -> None:
    """Read and drop the rest of ``stream``, at most DRAIN_MAX_BYTES."""
    left = DRAIN_MAX_BYTES
    while left > 0 and (chunk := stream.read(min(left, 1 << 20))):
        left -= len(chunk)

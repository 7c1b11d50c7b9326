"""One mail connection per worker process, reused across jobs and reopened after errors or idling."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import EmailMessage

logger = logging.getLogger(__name__)

IDLE_SECONDS = 10.0  # servers drop idle clients; reopen rather than risk a stale socket


class MailSession:
    """A mail backend kept open between jobs of one worker (only for SMTP; others per job)."""

    def __init__(self) -> None:
        self._backend: BaseEmailBackend | None = None
        self._used_at = 0.0

    def _open(self) -> BaseEmailBackend:
        backend = get_connection(fail_silently=False)
        backend.open()
        self._backend = backend
        return backend

    def backend(self) -> BaseEmailBackend:
        if self._backend is not None and time.monotonic() - self._used_at > IDLE_SECONDS:
            self.close()
        return self._backend or self._open()

    def send(self, message: EmailMessage) -> None:
        """Send one message; raise what the backend raises (after closing a broken connection)."""
        backend = self.backend()
        try:
            sent = backend.send_messages([message])
        except Exception:
            self.close()
            raise
        self._used_at = time.monotonic()
        if not sent:
            raise RuntimeError("the mail backend accepted nothing")

    def end_job(self) -> None:
        """Keep an SMTP connection for the next job; close anything else (files, memory)."""
        if not isinstance(self._backend, SmtpBackend):
            self.close()

    def close(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            try:
                backend.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken socket must not mask the real error
                logger.debug("closing mail connection failed: %s", exc)

    def __enter__(self) -> MailSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end_job()


session = MailSession()

"""The relay: Django's SMTP backend with a private CA, and what counts as the relay refusing us.

A refusal (the relay's certificate fails verification, the TLS handshake fails, the login is
refused) is a misconfiguration, not a bad recipient nor a passing hiccup: the mail is kept
pending and retried, bounded and backing off, and the reason is recorded in Redis (through
tasks.scheduler) so /healthz, ``manage.py health``, the metrics and the admin banner say
"relay refused: <reason>" until a send succeeds.
"""

from __future__ import annotations

import smtplib
import ssl
from functools import cached_property

from django.conf import settings
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend


class RelayBackend(SmtpBackend):
    """Django's SMTP backend, trusting EMAIL_SSL_CAFILE besides the system's CAs.

    Why: Django builds its context from EMAIL_SSL_CERTFILE/KEYFILE only, and with a client
    certificate it starts from a bare context that trusts no CA at all. Here the context always
    verifies the relay's certificate and host name, against the system's CAs plus the bundle.
    """

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        cafile = getattr(settings, "EMAIL_SSL_CAFILE", "")
        if cafile:
            context.load_verify_locations(cafile=cafile)
        if self.ssl_certfile:  # the key may be in the same file (ssl_keyfile None)
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context


def is_relay_refused(exc: BaseException) -> bool:
    """True when the relay refuses us as a whole: TLS verification or handshake failed, or the login (535).

    A TLS session that merely ends (EOF, close_notify) is a dropped connection: transient, as any other.
    """
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return False
    return isinstance(exc, ssl.SSLError | smtplib.SMTPAuthenticationError)

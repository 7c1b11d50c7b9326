"""The worker's mail: one SMTP session per worker process, the encoder, and the Outbox.

The modules: connection (MailSession, the ``session`` singleton and the connection's life:
idling, NOOP, relay refusals), encoding (DATA and envelopes, SMTPUTF8 and 8BITMIME), transaction
(one mail transaction, pipelined where the relay announces it), outbox (one write per mail, and
the next message prepared meanwhile). Callers import from ``tasks.smtp``.
"""

from tasks.smtp.connection import REFUSAL_HOLD_OFF, MailSession, session
from tasks.smtp.encoding import EIGHT_BIT, SMTPUTF8, Envelope, encode
from tasks.smtp.encoding import _sanitize as _sanitize  # for the encoder tests
from tasks.smtp.outbox import NotReleased, Outbox, Settle

__all__ = [
    "EIGHT_BIT",
    "REFUSAL_HOLD_OFF",
    "SMTPUTF8",
    "Envelope",
    "MailSession",
    "NotReleased",
    "Outbox",
    "Settle",
    "encode",
    "session",
]

"""Replay the first response to an API POST repeated with the same ``Idempotency-Key``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.exceptions import IdempotencyKeyError, InvalidIdempotencyKeyError, QueueUnavailableError
from tasks.models import IdempotencyKey

logger = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as Stripe and the IETF draft allow


@dataclass(frozen=True)
class Outcome:
    """A handler's stored answer (HTTP status and body) and whether it was replayed rather than run."""

    status: int
    body: Any
    replayed: bool


def ensure_idempotency_key(key: str) -> str:
    """Return ``key`` if it is 1-255 visible ASCII characters, else raise InvalidIdempotencyKeyError."""
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidIdempotencyKeyError(_("The Idempotency-Key header must be 1 to 255 visible ASCII characters."))
    return key


def _expired_before(now: datetime) -> datetime:
    """Stored answers created before this moment are past IDEMPOTENCY_KEY_TTL: never replayed."""
    return now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL)


def _stored(*, user: AbstractBaseUser, key: str, fingerprint: str) -> Outcome | None:
    row = IdempotencyKey.objects.filter(user_id=user.pk, key=key).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyError(
            _("This Idempotency-Key was already used for a different request; use a new key for a new request.")
        )
    return Outcome(status=row.response_status, body=row.response_body, replayed=True)


def run_idempotent(
    *, user: AbstractBaseUser, key: str, fingerprint: str, handler: Callable[[], tuple[int, Any]]
) -> Outcome:
    """Run ``handler`` once per (user, key) within IDEMPOTENCY_KEY_TTL and store its response.

    The key row is written in the same transaction as the handler's changes: a handler that
    raises leaves no key (errors are not stored; the same request may be retried), and a second
    request with the same key and fingerprint gets the stored status and body back without
    running the handler. A concurrent twin waits on the unique (user, key) row, then replays.
    The same key with a different fingerprint raises IdempotencyKeyError (422).
    """
    ensure_idempotency_key(key)
    now = timezone.now()
    IdempotencyKey.objects.filter(user_id=user.pk, key=key, created_at__lt=_expired_before(now)).delete()
    try:
        with transaction.atomic():
            stored = _stored(user=user, key=key, fingerprint=fingerprint)
            if stored is not None:
                return stored
            status, body = handler()
            IdempotencyKey.objects.create(
                user_id=user.pk,
                key=key,
                fingerprint=fingerprint,
                response_status=status,
                response_body=body,
                created_at=now,
            )
    except IntegrityError:
        # A concurrent request with this key committed first; answer as it did.
        stored = _stored(user=user, key=key, fingerprint=fingerprint)
        if stored is None:
            raise
        logger.info("idempotent replay after race user=%s key=%s", user.pk, key)
        return stored
    except QueueUnavailableError:
        # Raised after commit: the send was refused, so the stored answer must not be replayed.
        IdempotencyKey.objects.filter(user_id=user.pk, key=key, fingerprint=fingerprint).delete()
        raise
    return Outcome(status=status, body=body, replayed=False)


def purge_expired_keys(*, now: datetime) -> int:
    """Delete the stored answers older than IDEMPOTENCY_KEY_TTL (they are never replayed); returns how many.

    Why: run_idempotent only drops an expired row when its own key comes again, and every API
    create with a key and every send of the mail form stores one, so without this the table grows
    for good. purge_tasks runs it.
    """
    deleted = IdempotencyKey.objects.filter(created_at__lt=_expired_before(now)).delete()[0]
    logger.info("purged expired idempotency keys=%s", deleted)
    return deleted

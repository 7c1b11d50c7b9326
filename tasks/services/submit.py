"""The API's way to create a send: the per-user daily quota, then enqueue_task or reserve_task."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone
from django.utils.translation import ngettext

from tasks.exceptions import QuotaExceededError
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.services.create import enqueue_task, reserve_task

logger = logging.getLogger(__name__)

QUOTA_WINDOW = timedelta(hours=24)


def ensure_send_quota(*, owner: AbstractBaseUser, now: datetime) -> None:
    """Raise QuotaExceededError if ``owner`` created API_DAILY_SEND_QUOTA tasks in the last 24 hours.

    The window is rolling (the last 24 hours, not since local midnight), so it means the same for
    every time zone. Every task of the owner counts, whatever door created it and whatever became
    of it: canceling does not give a send back. A quota of 0 turns the check off.
    """
    quota = settings.API_DAILY_SEND_QUOTA
    if quota <= 0:
        return
    window = Task.objects.filter(owner_id=owner.pk, created_at__gt=now - QUOTA_WINDOW)
    stats = window.aggregate(used=Count("pk"), oldest=Min("created_at"))
    used = stats["used"]
    if used < quota:
        return
    oldest = stats["oldest"] or now
    retry_after = max(1, math.ceil((oldest + QUOTA_WINDOW - now).total_seconds()))
    logger.info("daily quota reached owner=%s used=%s quota=%s", owner.pk, used, quota)
    raise QuotaExceededError(
        ngettext(
            "Daily send limit reached: %(quota)d send per 24 hours. Try again in %(minutes)d minutes.",
            "Daily send limit reached: %(quota)d sends per 24 hours. Try again in %(minutes)d minutes.",
            quota,
        )
        % {"quota": quota, "minutes": math.ceil(retry_after / 60)},
        retry_after=retry_after,
    )


def submit_send(
    *, owner: AbstractBaseUser, mail: MailSpec, description: str, scheduled_at: datetime | None = None
) -> Task:
    """Create a send within the owner's daily quota: QUEUED now, or RESERVED at ``scheduled_at``.

    The owner's user row is locked while counting, so two concurrent requests cannot both take
    the last send of the quota. Raises QuotaExceededError, then whatever enqueue_task or
    reserve_task raise (ReservationError, QueueUnavailableError after commit).
    """
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True).first()
        ensure_send_quota(owner=owner, now=timezone.now())
        if scheduled_at is None:
            return enqueue_task(owner=owner, mail=mail, description=description)
        return reserve_task(owner=owner, scheduled_at=scheduled_at, mail=mail, description=description)

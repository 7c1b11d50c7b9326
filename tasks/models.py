"""The Task row (the source of truth for every send) and its per-recipient Delivery rows."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from reservemail.addresses import AddressField
from tasks.exceptions import TaskStateError

SEND_MAIL_JOB = "tasks.jobs.send_task"


# The covering index the per-recipient ownership check names (tasks.delivery.records): (id, status, attempts).
RUN_FENCE_INDEX = "task_run_fence"


class Task(models.Model):
    """One send: now (queued) or at ``reserved_at`` (reserved), of one template to its recipients."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RESERVED = "reserved", _("Reserved")
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        CANCELED = "canceled", _("Canceled")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks", verbose_name=_("owner")
    )
    name = models.CharField(_("job"), max_length=200, default=SEND_MAIL_JOB)
    description = models.CharField(_("description"), max_length=200)
    template = models.CharField(_("template"), max_length=100)
    recipients = models.JSONField(_("recipients"), default=list)
    context = models.JSONField(_("context"), default=dict, blank=True)
    queue = models.CharField(_("queue"), max_length=50, default="default")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, db_index=True)
    failed = models.BooleanField(_("failed"), default=False)
    log = models.TextField(_("log"), blank=True, default="")
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    reserved_at = models.DateTimeField(_("reserved at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat at"), null=True, blank=True)
    # A "send a test to me" task (tasks.services.test_send): its one recipient is the owner, and every
    # copy's Subject starts with subject_prefix (the marker, in the language of the person who asked).
    is_test = models.BooleanField(_("test"), default=False)
    subject_prefix = models.CharField(_("subject prefix"), max_length=40, blank=True, default="")
    # The series this task is an occurrence of (series.Series); a string reference, so no import.
    series = models.ForeignKey(
        "series.Series",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="occurrences",
        verbose_name=_("series"),
    )

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["owner", "status", "reserved_at"], name="task_owner_status_due"),
            models.Index(fields=["status", "reserved_at"], name="task_status_due"),
            # The per-recipient ownership check reads (status, attempts) from here, not from the row:
            # in SQLite a row's later columns lie behind its recipients' overflow pages, and a task of
            # 100,000 recipients made each check walk them (0.47 against 0.10 ms, measured).
            # tasks.delivery.records names it (INDEXED BY).
            models.Index(fields=["id", "status", "attempts"], name=RUN_FENCE_INDEX),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="task_progress_lte_100"),
            models.CheckConstraint(
                condition=~Q(status="reserved") | Q(reserved_at__isnull=False),
                name="task_reserved_has_time",
            ),
            # A series has at most one reservation waiting: its next occurrence.
            models.UniqueConstraint(
                fields=["series"], condition=Q(status="reserved"), name="task_one_reserved_per_series"
            ),
        ]
        permissions = [("cancel_task", "Can cancel or stop tasks")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.description}"

    def status_in_sentence(self) -> str:
        """The status as a word inside a sentence ("Mail #21 is reserved."); get_status_display is a label."""
        return str(STATUS_IN_SENTENCE[self.status])

    @property
    def is_cancellable(self) -> bool:
        return self.status in CANCELLABLE

    @property
    def is_ended(self) -> bool:
        return self.status in ENDED

    def check_transition(self, new_status: str) -> None:
        """Raise TaskStateError unless TRANSITIONS allows moving from the current status."""
        if new_status not in TRANSITIONS[self.status]:
            raise TaskStateError(
                _("Task #%(id)s is %(status)s and cannot become %(new)s.")
                % {"id": self.pk, "status": self.status_in_sentence(), "new": STATUS_IN_SENTENCE[new_status]},
                code="invalid_state",
            )


S = Task.Status
STATUS_IN_SENTENCE: dict[str, Promise] = {
    S.QUEUED: pgettext_lazy("status in a sentence", "queued"),
    S.RESERVED: pgettext_lazy("status in a sentence", "reserved"),
    S.RUNNING: pgettext_lazy("status in a sentence", "running"),
    S.FINISHED: pgettext_lazy("status in a sentence", "finished"),
    S.CANCELED: pgettext_lazy("status in a sentence", "canceled"),
}
# The allowed moves. RUNNING -> QUEUED is a transient failure handed back for a retry.
TRANSITIONS: dict[str, set[str]] = {
    S.QUEUED: {S.RUNNING, S.CANCELED},
    S.RESERVED: {S.RESERVED, S.QUEUED, S.RUNNING, S.CANCELED},
    S.RUNNING: {S.FINISHED, S.CANCELED, S.QUEUED},
    S.FINISHED: set(),
    S.CANCELED: set(),
}
PENDING = (S.QUEUED, S.RESERVED)
CANCELLABLE = (S.QUEUED, S.RESERVED, S.RUNNING)
ENDED = (S.FINISHED, S.CANCELED)


class Delivery(models.Model):
    """One recipient of one task; its Message-ID is fixed before the first attempt to send.

    ``lease_token``/``lease_until`` say which worker's slice holds it (tasks.delivery.claim);
    ``sending`` is written by that worker's ownership check right before the SMTP transaction, so a
    cancel or takeover that commits first wins and one that commits after sees it going out.
    ``name`` and ``context`` are the recipient's own data it is rendered with (over the task's context).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        CANCELED = "canceled", _("Not sent (stopped)")
        SUPPRESSED = "suppressed", _("Suppressed (unsubscribed)")

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("task"))
    address = AddressField(_("address"), max_length=254)
    name = models.CharField(_("name"), max_length=200, blank=True, default="")
    context = models.JSONField(_("recipient context"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    message_id = models.CharField(_("message id"), max_length=255)
    error = models.TextField(_("error"), blank=True, default="")
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    lease_token = models.CharField(_("lease"), max_length=32, blank=True, default="")
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["task", "address"], name="delivery_one_per_address")]
        # Full indexes, not partial ones: SQLite uses a partial index only when it can prove the
        # query implies the index's condition at prepare time, and the ORM binds the values
        # (``status IN (?, ?)``, ``lease_token = ?``), so partial ones were never used there: finishing,
        # progress and each lease renewal scanned a task's settled rows or the whole table (measured).
        indexes = [
            # "Which recipients of this task are still open (and free)": the claim, progress, finishing.
            models.Index(fields=["task", "status", "lease_until"], name="delivery_task_status"),
            # A slice's rows by its lease token: load, renew, release.
            models.Index(fields=["lease_token"], name="delivery_lease_token"),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.status})"


OPEN_DELIVERY = (Delivery.Status.PENDING, Delivery.Status.SENDING)
SETTLED_DELIVERY = (Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.SUPPRESSED)


class IdempotencyKey(models.Model):
    """The first successful response to an API POST sent with an ``Idempotency-Key`` header.

    The row is written in the same transaction as the change it answers for, so a key is either
    unused or tied to a committed result; (user, key) is unique, so a concurrent second request
    with the same key waits for the first and then replays it. Rows expire after
    IDEMPOTENCY_KEY_TTL seconds.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    key = models.CharField(_("key"), max_length=255)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response_body = models.JSONField(_("response body"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_index=True)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_one_per_user_key")]

    def __str__(self) -> str:
        return f"{self.key} of {self.user_id}"

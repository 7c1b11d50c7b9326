"""Edit a reservation until it leaves: its recipients, template, context, description and time.

The checks are the create checks (tasks.validation), run on the task as it would be after the
edit, inside the transaction that holds the row, so two edits cannot combine into an unchecked
mail. The write is one transition (tasks.transitions.edit_reserved), ordered in the database
against the worker's claim: an accepted edit is what goes out; once claimed, the edit is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks import transitions
from tasks.exceptions import ReservationError, unreadable_context
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.selectors import get_task_of, stored_context_of, with_context_text
from tasks.services.change import move_job, raise_state, who_of
from tasks.validation import clean_mail, ensure_description, ensure_reservable


@dataclass(frozen=True)
class ReservationChanges:
    """What an edit changes; None leaves a part as it is. ``recipients`` as a door sends them (tasks.validation)."""

    recipients: Sequence[object] | str | None = None
    template: str | None = None
    context: dict[str, Any] | None = None
    description: str | None = None
    scheduled_at: datetime | None = None

    def given(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


def _content(task: Task, context: dict[str, Any] | None, changes: ReservationChanges) -> dict[str, object]:
    """The changed mail parts, checked as a whole with the parts that stay (clean_mail), as Task fields.

    ``context`` is the stored one (None: unreadable, from before the input limits): a change of
    recipients or template must then come with a new context (unreadable_context, 400).
    """
    if changes.recipients is None and changes.template is None and changes.context is None:
        return {}
    shared = changes.context if changes.context is not None else context
    if shared is None:
        raise unreadable_context(task.pk)
    raw = changes.recipients if changes.recipients is not None else task.recipients
    recipients: Any = raw if isinstance(raw, str) else tuple(raw)  # typed text is split by clean_mail
    mail = clean_mail(
        MailSpec(
            template=changes.template if changes.template is not None else task.template,
            recipients=recipients,
            context=shared,
        )
    )
    out: dict[str, object] = {}
    if changes.recipients is not None:
        out["recipients"] = list(mail.recipients)
    if changes.template is not None:
        out["template"] = mail.template
    if changes.context is not None:
        out["context"] = mail.context
    return out


@transaction.atomic
def edit_reservation(*, owner: AbstractBaseUser | None, task_id: int, changes: ReservationChanges) -> Task:
    """Change a RESERVED task's content, description and/or time (RESERVED -> RESERVED); its job moves if the time did.

    ``owner=None`` is staff (admin). Raises ReservationError (400) when nothing is given or a part is
    invalid (as reserve_task would), TaskStateError (409) once the task is running or ended (the
    claim won), TaskNotFoundError for another user's task. Nothing changes when it raises. A time
    equal to the current one is no change (not checked against the minimum lead).
    """
    if not changes.given():
        raise ReservationError(_("Give at least one part of the reservation to change."), code="no_changes")
    get_task_of(owner, task_id)
    # Lock the row first (SQLite: the IMMEDIATE transaction already holds the write lock), so the
    # checks below see the row the update writes.
    task = with_context_text(Task.objects.select_for_update()).get(pk=task_id)
    if task.status != Task.Status.RESERVED:
        raise_state(task, "edit")
    context = stored_context_of(task)
    updates = _content(task, context, changes)
    if changes.description is not None:
        updates["description"] = ensure_description(changes.description)
    due = changes.scheduled_at
    moved = due is not None and due != task.reserved_at
    if due is not None and moved:
        ensure_reservable(due, now=timezone.now())
        updates["reserved_at"] = due
    current = {**{name: getattr(task, name) for name in updates if name != "context"}, "context": context}
    updates = {name: value for name, value in updates.items() if value != current[name]}  # the log names these
    edited = transitions.edit_reserved(task_id=task.pk, changes=updates, who=who_of(owner))
    if edited is None:  # cannot happen under the lock
        raise_state(get_task_of(None, task_id), "edit")
    if moved and due is not None:
        transaction.on_commit(partial(move_job, edited.pk, due, edited.queue))
    return edited

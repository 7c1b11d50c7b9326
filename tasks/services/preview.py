"""Preview a send: the subject, text and HTML one recipient would get, rendered as the worker renders them.

Nothing is written and nothing is queued: the mail is checked as a create checks it (tasks.validation),
then one recipient's copy is rendered by tasks.mail.render_for (that recipient's merge data over the
shared context): the same call the worker's send loop makes. A bulk template's unsubscribe link is
a sample: the recipient's own is not the sender's to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.utils.translation import gettext as _

from tasks.exceptions import ReservationError
from tasks.mail import MailSpec, new_message_id, render_for
from tasks.models import Delivery, Task
from tasks.recipients import Recipient, parse_stored, split_entry
from tasks.validation import clean_mail


@dataclass(frozen=True)
class Preview:
    """One recipient's rendered copy. ``html`` is None for a template without an HTML part."""

    recipient: str
    subject: str
    text: str
    html: str | None


def choose_recipient(mail: MailSpec, chosen: str | None) -> Recipient:
    """The recipient of a cleaned ``mail`` whose address is ``chosen`` (``Name <a@b.c>`` or ``a@b.c``,
    any case), or the first one when ``chosen`` is empty.

    Raises ReservationError (field ``recipient``) when ``chosen`` is not one of the recipients.
    """
    recipients = [parse_stored(entry) for entry in mail.recipients]
    wanted = split_entry(chosen or "")[1].lower()
    if not wanted:
        return recipients[0]
    for recipient in recipients:
        if recipient.address.lower() == wanted:
            return recipient
    raise ReservationError(
        _("“%(address)s” is not one of the recipients.") % {"address": wanted[:254]}, field="recipient"
    )


def render_copy(mail: MailSpec, recipient: Recipient, *, subject_prefix: str = "") -> Preview:
    """Render ``recipient``'s copy of a cleaned ``mail`` as tasks.delivery.send does, for the sender to see.

    Only the unsubscribe link differs: a sample that unsubscribes nobody, since the real one is the
    recipient's credential (subscriptions.tokens.sample_links).
    """
    message = render_for(
        recipient,
        template=mail.template,
        context=mail.context,
        message_id=new_message_id(),
        subject_prefix=subject_prefix,
        sample_links=True,
    )
    html = next((_plain(content) for content, mimetype in message.alternatives if mimetype == "text/html"), None)
    return Preview(recipient=recipient.label(), subject=_plain(message.subject), text=_plain(message.body), html=html)


def _plain(value: object) -> str:
    """A plain ``str``: the template engine returns SafeString, which a page would then show unescaped."""
    return "".join([str(value)])


def preview_mail(*, mail: MailSpec, recipient: str | None = None) -> Preview:
    """Check ``mail`` as a create would and render the copy of ``recipient`` (default: the first).

    No side effects: no Task, no Delivery, no queue call. Raises ReservationError for invalid input,
    with the field it belongs to, as enqueue_task would.
    """
    cleaned = clean_mail(mail)
    return render_copy(cleaned, choose_recipient(cleaned, recipient))


def render_delivery(*, task: Task, delivery: Delivery, context: dict[str, Any]) -> Preview:
    """Render the copy ``delivery`` got (or will get): ``task``'s template, its shared ``context`` (decoded by
    the caller) and marker, with the name and values the delivery keeps, the same a retry renders.

    No side effects. Raises ReservationError when the template can no longer be rendered.
    """
    recipient = Recipient(address=delivery.address, name=delivery.name, context=delivery.context or {})
    mail = MailSpec(template=task.template, recipients=(), context=context)
    try:
        return render_copy(mail, recipient, subject_prefix=task.subject_prefix)
    except (TemplateDoesNotExist, TemplateSyntaxError, ValueError, TypeError) as exc:
        raise ReservationError(_("This copy cannot be rendered now: %(error)s") % {"error": exc}) from None

"""Mail templates (the allow-list under templates/email/), rendering, and SMTP error classes."""

from __future__ import annotations

import json
import re
import smtplib
import socket
from dataclasses import dataclass
from email.utils import make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives
from django.template import Context, Engine

from subscriptions.tokens import Links, sample_links, unsubscribe_links
from tasks.recipients import Recipient, StoredRecipient
from tasks.relay import is_relay_refused

EMAIL_TEMPLATE_DIR = Path(settings.BASE_DIR) / "templates" / "email"


@dataclass(frozen=True)
class MailSpec:
    """What to send: an allow-listed template, its recipients (as tasks.recipients stores them), the shared context."""

    template: str
    recipients: tuple[StoredRecipient, ...]
    context: dict[str, Any]


@lru_cache(maxsize=1)
def available_templates() -> tuple[str, ...]:
    """Return the names of templates that have both a .subject and a .txt part."""
    names = {p.stem for p in EMAIL_TEMPLATE_DIR.glob("*.subject")}
    return tuple(sorted(n for n in names if (EMAIL_TEMPLATE_DIR / f"{n}.txt").exists()))


@dataclass(frozen=True)
class TemplateMeta:
    """What a template declares about itself in ``<name>.meta.json`` next to its parts.

    ``{"kind": "bulk", "list": "newsletter"}``: bulk mail (a mailing people subscribe to); each recipient's copy
    carries List-Unsubscribe headers and ``unsubscribe_url``, and suppressed addresses are skipped. The list
    defaults to the template's name. ``{"kind": "transactional"}`` (or no meta file): mail a person gets because
    of something they did or booked (welcome, reminder); never suppressed, no unsubscribe link.
    """

    bulk: bool = False
    list_name: str = ""


@lru_cache(maxsize=64)
def template_meta(template: str) -> TemplateMeta:
    """Read ``template``'s meta file; raise ImproperlyConfigured for one that is not valid."""
    path = EMAIL_TEMPLATE_DIR / f"{template}.meta.json"
    if not path.exists():
        return TemplateMeta()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{path.name}: {exc}") from exc
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "transactional":
        return TemplateMeta()
    list_name = data.get("list", template) if kind == "bulk" else None
    if not isinstance(list_name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", list_name):
        raise ImproperlyConfigured(f'{path.name}: needs "kind": "bulk" or "transactional" (and a valid "list")')
    return TemplateMeta(bulk=True, list_name=list_name)


# Names a template reads: {{ name }}, {{ name|filter }}, {% if name %}. "recipient" is set per recipient.
_VARIABLE = re.compile(r"{{\s*([A-Za-z_]\w*)|{%\s*(?:if|elif)\s+(?:not\s+)?([A-Za-z_]\w*)")
# "unsubscribe_url" is set per recipient of a bulk template.
_BUILTIN_NAMES = frozenset({"recipient", "unsubscribe_url", "not", "True", "False", "None"})


@lru_cache(maxsize=64)
def template_variables(template: str) -> tuple[str, ...]:
    """Return the context names ``template`` uses, in order of first use, for the form's fields."""
    names: list[str] = []
    for part in ("subject", "txt", "html"):
        path = EMAIL_TEMPLATE_DIR / f"{template}.{part}"
        if not path.exists():
            continue
        for match in _VARIABLE.finditer(path.read_text(encoding="utf-8")):
            name = match.group(1) or match.group(2)
            if name not in _BUILTIN_NAMES and name not in names:
                names.append(name)
    return tuple(names)


def _render(path: str, context: dict[str, Any], *, autoescape: bool) -> str:
    """Render one part. The subject and the text part are plain text: HTML escaping would show
    ``Tom &amp; Jerry`` to the reader, so only the .html part is autoescaped."""
    return Engine.get_default().get_template(path).render(Context(context, autoescape=autoescape))


@lru_cache(maxsize=64)
def _has_html(template: str) -> bool:
    return (EMAIL_TEMPLATE_DIR / f"{template}.html").exists()


def _render_parts(
    template: str, context: dict[str, Any], recipient: str, unsubscribe_url: str | None = None
) -> tuple[str, str, str | None]:
    """The subject (one line), text body and HTML body (None without a .html part) for ``recipient``."""
    ctx = {**context, "recipient": recipient}
    if unsubscribe_url is not None:
        ctx["unsubscribe_url"] = unsubscribe_url
    subject = " ".join(_render(f"email/{template}.subject", ctx, autoescape=False).split())
    body = _render(f"email/{template}.txt", ctx, autoescape=False)
    html = _render(f"email/{template}.html", ctx, autoescape=True) if _has_html(template) else None
    return subject, body, html


def _bulk_links(template: str, recipient: str, *, sample: bool = False) -> Links | None:
    """The recipient's unsubscribe links for a bulk template (or ``sample`` ones); None for a transactional one."""
    meta = template_meta(template)
    if not meta.bulk:
        return None
    return sample_links() if sample else unsubscribe_links(address=recipient, list_name=meta.list_name)


def render_message(
    *,
    template: str,
    context: dict[str, Any],
    recipient: str,
    message_id: str,
    to: str | None = None,
    subject_prefix: str = "",
    sample_links: bool = False,
) -> EmailMultiAlternatives:
    """Render the template for one recipient into a message carrying the fixed Message-ID.

    ``recipient`` is the bare address the template sees; ``to`` the ``To:`` value (with a display
    name, tasks.recipients.Recipient.header), the address itself when not given. A bulk template's
    copy gets ``unsubscribe_url`` in its context and the RFC 2369/8058 headers List-Unsubscribe
    (that link, and a mailto: where UNSUBSCRIBE_MAILTO is set) and List-Unsubscribe-Post.
    ``sample_links``: links that unsubscribe nobody, for a copy the sender sees (subscriptions.tokens.sample_links).
    """
    headers = {"Message-ID": message_id}
    links = _bulk_links(template, recipient, sample=sample_links)
    if links is not None:
        headers["List-Unsubscribe"] = links.header()
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    subject, body, html = _render_parts(template, context, recipient, links.url if links else None)
    message = EmailMultiAlternatives(subject=subject_prefix + subject, body=body, to=[to or recipient], headers=headers)
    if html is not None:
        message.attach_alternative(html, "text/html")
    return message


def render_for(
    recipient: Recipient,
    *,
    template: str,
    context: dict[str, Any],
    message_id: str,
    subject_prefix: str = "",
    sample_links: bool = False,
) -> EmailMultiAlternatives:
    """``recipient``'s copy: their merge data over the shared ``context``, to their address with its display name.

    The one call of the send loop, of preparing ahead (tasks.delivery.prepared) and of the preview,
    so that what is prepared or previewed is what the send renders.
    """
    return render_message(
        template=template,
        context=recipient.merged_context(context),
        recipient=recipient.address,
        message_id=message_id,
        to=recipient.header(),
        subject_prefix=subject_prefix,
        sample_links=sample_links,
    )


def check_renders(*, template: str, context: dict[str, Any], recipient: str = "check@example.com") -> str:
    """Render every part once for ``recipient`` so template errors surface before anything is queued.

    Returns the subject, for the caller's header checks (tasks.validation).
    """
    links = _bulk_links(template, recipient)
    subject, _body, _html = _render_parts(template, context, recipient, links.url if links else None)
    return subject


def new_message_id() -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >") or "localhost"
    return make_msgid(domain=domain)


class SmtpUtf8Unsupported(smtplib.SMTPNotSupportedError):
    """An address needs SMTPUTF8 (RFC 6531) and the relay does not announce it: that recipient fails for good.

    Raised before anything goes on the wire; retrying cannot help until the relay changes.
    """

    def __init__(self, address: str) -> None:
        super().__init__(f"relay does not support SMTPUTF8, which {address} needs")
        self.address = address


def is_permanent(exc: BaseException) -> bool:
    """True for SMTP 5xx answers (do not retry); False for 4xx and connection trouble.

    A relay refusing us as a whole (TLS, or a 535 to the login) is not the recipient's fault:
    False, so the mail stays pending until the relay is set up right (tasks.relay).
    """
    if is_relay_refused(exc):
        return False
    if isinstance(exc, SmtpUtf8Unsupported):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return False


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, socket.error, TimeoutError)


def describe(exc: BaseException) -> str:
    if is_relay_refused(exc):
        return f"relay refused: {_describe(exc)}"
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SmtpUtf8Unsupported):
        return str(exc)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{code} {msg.decode(errors='replace')}" for code, msg in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        message = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{exc.smtp_code} {message}"
    return f"{type(exc).__name__}: {exc}"

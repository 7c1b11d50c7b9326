"""End to end: a real worker subprocess sends over SMTP to the aiosmtpd sink; the unsubscribe link from a delivered
header is POSTed (one-click, RFC 8058: no cookie, no CSRF token) to a live server, or its mailto: is answered by a
message piped into `manage.py unsubscribe_mail`; the next newsletter skips the address."""

import re
import urllib.request
from email.message import EmailMessage, Message
from urllib.parse import unquote

import pytest

from subscriptions.models import Suppression
from tasks import services
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.conftest import database_url
from tests.harness import wait_until

pytestmark = [pytest.mark.e2e]

NEWS = {"title": "June news", "body": "Hello readers"}


def header(message: Message, name: str) -> str | None:
    value = message.get(name)
    return " ".join(str(value).split()) if value is not None else None


def bodies(message: Message) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found[part.get_content_type()] = part.get_payload(decode=True).decode()
    return found


def send(user, template, recipients, context):
    mail = MailSpec(template=template, recipients=tuple(recipients), context=context)
    task = services.enqueue_task(owner=user, mail=mail, description=template)
    done = wait_until(
        lambda: Task.objects.filter(pk=task.pk, status="finished").first(), timeout=20, what=f"{template} finished"
    )
    return done, dict(Delivery.objects.filter(task=task).values_list("address", "message_id"))


def arrived(smtp, message_ids):
    return [r for r in smtp.received if r.message_id in message_ids]


def test_one_click_from_the_delivered_header_suppresses_the_next_newsletter(
    transactional_db, user, live_server, worker_factory, smtp
):
    worker_factory(extra_env={"SITE_URL": live_server.url, "UNSUBSCRIBE_MAILTO": "leave@example.org"})

    news, news_ids = send(user, "newsletter", ["ann@example.com", "bob@example.com"], NEWS)
    welcome, welcome_ids = send(user, "welcome", ["ann@example.com"], {"name": "Ann"})
    assert not news.failed and not welcome.failed
    wait_until(lambda: len(arrived(smtp, {*news_ids.values(), *welcome_ids.values()})) == 3, timeout=5, what="3 mails")

    by_rcpt = {r.rcpt_tos[0]: r.message for r in arrived(smtp, set(news_ids.values()))}
    ann = by_rcpt["ann@example.com"]
    links = header(ann, "List-Unsubscribe")
    match = re.fullmatch(
        rf"<({re.escape(live_server.url)}/u/([^/>]+)/)>, <mailto:leave@example\.org\?subject=unsubscribe%20[^>]+>",
        links or "",
    )
    assert match, links
    url = match.group(1)
    assert header(ann, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    parts = bodies(ann)
    assert url in parts["text/plain"] and f'href="{url}"' in parts["text/html"]
    assert header(by_rcpt["bob@example.com"], "List-Unsubscribe") != links  # per recipient

    (welcome_msg,) = arrived(smtp, set(welcome_ids.values()))
    assert header(welcome_msg.message, "List-Unsubscribe") is None
    assert header(welcome_msg.message, "List-Unsubscribe-Post") is None
    assert "/u/" not in "".join(bodies(welcome_msg.message).values())

    # What a mailbox provider does (RFC 8058): a POST with this body, no cookies, no CSRF token.
    request = urllib.request.Request(  # noqa: S310 - the live server's http URL
        url,
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200
    assert list(Suppression.objects.values_list("address", "list_name", "how")) == [
        ("ann@example.com", "newsletter", "one_click")
    ]

    smtp.reset()
    again, again_ids = send(user, "newsletter", ["ann@example.com", "bob@example.com"], NEWS)
    assert (again.failed, again.progress) == (False, 100)
    assert "sent 1, failed 0, suppressed 1" in again.log
    statuses = dict(Delivery.objects.filter(task=again).values_list("address", "status"))
    assert statuses == {"ann@example.com": "suppressed", "bob@example.com": "sent"}
    wait_until(lambda: arrived(smtp, set(again_ids.values())), timeout=5, what="bob's newsletter")

    later, later_ids = send(user, "reminder", ["ann@example.com"], {"title": "the dentist"})
    assert not later.failed
    wait_until(lambda: arrived(smtp, set(later_ids.values())), timeout=5, what="ann's reminder")
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.com"], ["ann@example.com"]]
    assert smtp.received[1].message["Subject"] == "Reminder: the dentist"
    assert smtp.to("ann@example.com")[0].message_id == later_ids["ann@example.com"]


def test_mail_to_the_mailto_of_the_delivered_header_suppresses_the_next_newsletter(
    transactional_db, user, worker_factory, smtp, unsubscribe_mail
):
    """The other form of List-Unsubscribe: the mail client writes to the mailto: with its subject; the mail
    server pipes that message into `manage.py unsubscribe_mail` (a real subprocess here)."""
    worker_factory(extra_env={"SITE_URL": "https://mail.example.org", "UNSUBSCRIBE_MAILTO": "leave@example.org"})
    news, news_ids = send(user, "newsletter", ["ann@example.com", "bob@example.com"], NEWS)
    assert not news.failed
    wait_until(lambda: len(arrived(smtp, set(news_ids.values()))) == 2, timeout=5, what="2 newsletters")
    ann = next(r.message for r in arrived(smtp, set(news_ids.values())) if r.rcpt_tos == ["ann@example.com"])
    mailto = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>", header(ann, "List-Unsubscribe") or "")
    assert mailto, header(ann, "List-Unsubscribe")

    reply = EmailMessage()  # what the client sends for the link (RFC 6068: the subject decoded)
    reply["From"], reply["To"], reply["Subject"] = "ann@example.com", mailto.group(1), unquote(mailto.group(2))
    reply.set_content("Sent from my phone\n")
    piped = unsubscribe_mail(reply.as_bytes(), database=database_url())
    assert (piped.returncode, piped.stdout.decode().strip()) == (0, "unsubscribed: ann@example.com from newsletter")
    assert list(Suppression.objects.values_list("address", "list_name", "how")) == [
        ("ann@example.com", "newsletter", "mail")
    ]

    smtp.reset()
    again, again_ids = send(user, "newsletter", ["ann@example.com", "bob@example.com"], NEWS)
    assert "sent 1, failed 0, suppressed 1" in again.log
    wait_until(lambda: arrived(smtp, set(again_ids.values())), timeout=5, what="bob's newsletter")
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.com"]]

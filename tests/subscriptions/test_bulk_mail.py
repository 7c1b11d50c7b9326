"""Bulk vs transactional templates: headers and link per recipient of bulk mail only, and the send loop skipping
suppressed addresses (recorded ``suppressed``, never on the wire) while transactional mail still goes out."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from subscriptions import services as subscriptions
from subscriptions.tokens import read_token
from tasks.delivery import records
from tasks.delivery.claim import claim_slice
from tasks.delivery.send import suppressed_deliveries
from tasks.jobs import send_task
from tasks.mail import TemplateMeta, available_templates, render_message, template_meta, template_variables
from tasks.models import Delivery, Task

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^\s<>\"]+/u/([^/\s<>\"]+)/")


def render(template, address="ann@example.com"):
    return render_message(template=template, context={"title": "June"}, recipient=address, message_id="<1@x>")


def test_each_template_declares_its_kind_next_to_its_files():
    assert available_templates() == ("newsletter", "reminder", "welcome")
    assert template_meta("newsletter") == TemplateMeta(bulk=True, list_name="newsletter")
    assert template_meta("welcome") == template_meta("reminder") == TemplateMeta(bulk=False, list_name="")
    assert "unsubscribe_url" not in template_variables("newsletter")  # not a form field: set per recipient


def test_newsletter_carries_headers_and_the_same_link_in_both_bodies(settings):
    settings.SITE_URL = "https://mail.example.org"
    settings.UNSUBSCRIBE_MAILTO = ""
    message = render("newsletter", "Ann@Example.com")
    header = message.extra_headers["List-Unsubscribe"]
    match = re.fullmatch(r"<(https://mail\.example\.org/u/([^/]+)/)>", header)
    assert match, header
    url, token = match.groups()
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    target = read_token(token)
    assert (target.address, target.list_name) == ("ann@example.com", "newsletter")
    assert f"Unsubscribe: {url}\n" in message.body
    html = message.alternatives[0][0]
    assert f'<a href="{url}">Unsubscribe</a>' in html
    mime = message.message()
    assert mime["List-Unsubscribe"] == header and mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_newsletter_links_differ_per_recipient():
    a, b = render("newsletter", "a@example.com"), render("newsletter", "b@example.com")
    assert a.extra_headers["List-Unsubscribe"] != b.extra_headers["List-Unsubscribe"]


def test_mailto_form_when_configured(settings):
    settings.UNSUBSCRIBE_MAILTO = "leave@example.org"
    header = render("newsletter").extra_headers["List-Unsubscribe"]
    assert re.fullmatch(r"<https?://[^>]+/u/[^>]+/>, <mailto:leave@example\.org\?subject=unsubscribe%20[^>]+>", header)


@pytest.mark.parametrize("template", ["welcome", "reminder"])
def test_transactional_mail_carries_neither_headers_nor_link(template):
    message = render(template)
    assert "List-Unsubscribe" not in message.extra_headers
    assert "List-Unsubscribe-Post" not in message.extra_headers
    parts = [message.body, *(content for content, _type in message.alternatives)]
    assert not any("/u/" in part or "nsubscribe" in part for part in parts)
    assert "List-Unsubscribe" not in message.message().as_string()


def make_task(user, template, recipients):
    return Task.objects.create(
        owner=user,
        status="reserved",
        reserved_at=timezone.now() - timedelta(seconds=1),
        queue="high",
        description=template,
        template=template,
        context={"title": "June", "name": "Ann"},
        recipients=list(recipients),
    )


def test_suppressed_recipients_are_recorded_and_never_sent(user, smtp, django_assert_num_queries):
    subscriptions.suppress_address(address="b@example.com", list_name="newsletter", how="one_click")
    subscriptions.suppress_address(address="c@example.com", list_name="", how="admin")  # all bulk mail
    subscriptions.suppress_address(address="d@example.com", list_name="offers", how="page")  # another list
    news = make_task(user, "newsletter", ["a@example.com", "B@example.com", "c@example.com", "d@example.com"])
    welcome = make_task(user, "welcome", ["b@example.com", "c@example.com"])
    chunk = claim_slice(own_task_id=None, now=timezone.now(), limit=100)
    assert sorted(chunk.tasks) == sorted([news.pk, welcome.pk])
    with django_assert_num_queries(1):  # one query for the slice, whatever its size
        skipped = suppressed_deliveries(chunk)
    by_id = {w.delivery_id: (w.task_id, w.address) for w in chunk.work}
    assert sorted(by_id[i] for i in skipped) == [(news.pk, "B@example.com"), (news.pk, "c@example.com")]
    records.release(token=chunk.token)  # send_task (a helper: the tasks are RUNNING) claims them again
    send_task(news.pk)
    rows = dict(Delivery.objects.filter(task=news).values_list("address", "status"))
    assert rows == {
        "a@example.com": "sent",
        "B@example.com": "suppressed",
        "c@example.com": "suppressed",
        "d@example.com": "sent",
    }
    assert Delivery.objects.get(task=news, address="c@example.com").sent_at is not None
    news.refresh_from_db()
    welcome.refresh_from_db()
    assert (news.status, news.failed, news.progress) == ("finished", False, 100)
    assert "attempt 1: sent 2, failed 0, suppressed 2" in news.log
    assert (welcome.status, welcome.failed) == ("finished", False)  # transactional: not affected
    assert set(Delivery.objects.filter(task=welcome).values_list("status", flat=True)) == {"sent"}
    got = sorted((r.rcpt_tos[0], r.message["Subject"]) for r in smtp.received)
    assert got == [
        ("a@example.com", "June"),
        ("b@example.com", "Welcome to reservemail, Ann"),
        ("c@example.com", "Welcome to reservemail, Ann"),
        ("d@example.com", "June"),
    ]


def test_a_slice_of_only_suppressed_recipients_finishes_without_smtp(user, smtp):
    subscriptions.suppress_address(address="a@example.com", list_name="", how="api")
    news = make_task(user, "newsletter", ["a@example.com"])
    send_task(news.pk)
    news.refresh_from_db()
    assert (news.status, news.failed) == ("finished", False)
    assert "sent 0, failed 0, suppressed 1" in news.log
    assert smtp.received == [] and smtp.handler.events == []


def test_task_pages_show_suppressed(user, smtp):
    subscriptions.suppress_address(address="b@example.com", list_name="newsletter", how="page")
    news = make_task(user, "newsletter", ["a@example.com", "b@example.com"])
    send_task(news.pk)
    client = Client()
    client.force_login(user)
    detail = client.get(f"/tasks/{news.pk}/").content.decode()
    assert re.search(
        r"b@example\.com</td><td><span class=\"badge delivery-suppressed\">Suppressed \(unsubscribed\)", detail
    )
    history = client.get("/tasks/").content.decode()
    assert "delivery-suppressed" in history and "1 suppressed" in history

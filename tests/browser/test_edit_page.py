"""Editing a reservation as a person does it: headless Debian chromium, a real worker, real Redis, an SMTP sink.

Screenshot for humans: test-output/edit-page-en.png (the edit form, prefilled, with the new values typed).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tasks import services
from tasks.mail import MailSpec
from tasks.models import Task
from tests.browser import test_mail_page as mail_page
from tests.conftest import OUTPUT_DIR
from tests.harness import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# The mail page test's fixtures and helpers: a headless chromium, the live server's settings, a signed-in page.
chromium = mail_page.chromium
live_settings = mail_page.live_settings
open_page = mail_page.open_page
SEOUL = mail_page.SEOUL


def test_edit_a_reservation_before_it_is_due_sends_only_the_edited_mail_at_the_new_time(
    transactional_db,
    live_server,
    live_settings,
    user,
    worker_factory,
    smtp,
    chromium,
):
    OUTPUT_DIR.mkdir(exist_ok=True)
    worker_factory()
    first_due = timezone.now() + timedelta(seconds=15)
    mail = MailSpec(template="welcome", recipients=("edit@example.com",), context={"name": "Original"})
    task = services.reserve_task(owner=user, scheduled_at=first_due, mail=mail, description="Before")
    errors: list[str] = []
    page = open_page(chromium, live_server.url, locale="en-US", errors=errors)
    watcher = open_page(chromium, live_server.url, locale="ko-KR", errors=errors)  # stays open: its panel polls
    watched = watcher.locator(f'#live-tasks li[data-task-id="{task.pk}"] .entry-title')
    assert watched.inner_text() == f"#{task.pk} Before"

    page.goto(f"{live_server.url}/tasks/{task.pk}/")
    with page.expect_navigation():
        page.click("#edit-link")
    assert page.url == f"{live_server.url}/tasks/{task.pk}/edit/"
    # Prefilled from the task, the time in the user's zone (Seoul), not the browser's (Berlin).
    assert page.input_value("#id_ctx_name") == "Original"
    assert page.input_value("#id_recipients") == "edit@example.com"
    assert page.input_value("#id_scheduled_at") == timezone.localtime(first_due, SEOUL).strftime("%Y-%m-%dT%H:%M")
    assert page.is_visible("#id_scheduled_at") and page.locator("#id_reserve").count() == 0

    new_due = first_due + timedelta(seconds=6)
    page.fill("#id_ctx_name", "Edited")
    page.fill("#id_description", "After")
    page.fill("#id_scheduled_at", timezone.localtime(new_due, SEOUL).strftime("%Y-%m-%dT%H:%M:%S"))
    page.screenshot(path=str(OUTPUT_DIR / "edit-page-en.png"), full_page=True)
    with page.expect_navigation():
        page.click("#mail-form button[type=submit]")
    assert timezone.now() < first_due, "the edit must land before the first due time for this test to mean anything"
    assert page.url == f"{live_server.url}/tasks/{task.pk}/"
    assert f"Mail #{task.pk} saved; it will be sent at" in page.inner_text(".messages")
    task.refresh_from_db()
    assert (task.status, task.context, task.description) == ("reserved", {"name": "Edited"}, "After")
    assert task.reserved_at == new_due.replace(microsecond=0)

    # The live panel and the history show the edited description and time.
    live = page.locator(f'#live-tasks li[data-task-id="{task.pk}"]')
    assert live.locator(".entry-title").inner_text() == f"#{task.pk} After"
    assert datetime.fromisoformat(live.get_attribute("data-reserved-at")) == task.reserved_at
    wait_until(lambda: watched.inner_text() == f"#{task.pk} After", timeout=10, what="the polled panel to update")
    shown_due = watcher.locator(f'#live-tasks li[data-task-id="{task.pk}"]').get_attribute("data-reserved-at")
    assert datetime.fromisoformat(shown_due) == task.reserved_at
    page.goto(f"{live_server.url}/tasks/")
    history = page.inner_text("main")
    assert "After" in history and "Before" not in history

    # Nothing at the first time; at the new time, only the edited mail.
    wait_until(lambda: timezone.now() > first_due + timedelta(seconds=2), timeout=30, what="the first time to pass")
    assert smtp.received == [], "a mail went out at the old time"
    wait_until(lambda: len(smtp.received) >= 1, timeout=30, what="the edited mail")
    time.sleep(1)  # a second copy, if any, would arrive now
    (received,) = smtp.received
    assert received.rcpt_tos == ["edit@example.com"]
    assert received.message["Subject"] == "Welcome to reservemail, Edited"
    assert "Original" not in received.message.as_string()
    assert received.at >= task.reserved_at.timestamp(), "the mail arrived before its new time"
    assert Task.objects.get(pk=task.pk).status in ("running", "finished")
    assert errors == []


def test_preview_on_the_edit_page_shows_the_edited_mail_and_saves_nothing(
    transactional_db, live_server, live_settings, user, chromium
):
    mail = MailSpec(template="welcome", recipients=("edit@example.com",), context={"name": "Original"})
    task = services.reserve_task(
        owner=user, scheduled_at=timezone.now() + timedelta(hours=1), mail=mail, description="Before"
    )
    errors: list[str] = []
    page = open_page(chromium, live_server.url, locale="en-US", errors=errors)
    page.goto(f"{live_server.url}/tasks/{task.pk}/edit/")
    page.fill("#id_ctx_name", "Edited <b>")
    with page.expect_navigation():
        page.click("#preview-button")
    assert page.inner_text("#preview-subject") == "Welcome to reservemail, Edited <b>"
    frame = page.frame_locator("#preview-html")
    assert frame.locator("p").nth(0).inner_text(timeout=5_000) == "Hello Edited <b>,"
    assert page.input_value("#id_ctx_name") == "Edited <b>", "the edit stays in the form, to be saved or not"
    task.refresh_from_db()
    assert (task.context, Task.objects.count()) == ({"name": "Original"}, 1)
    assert errors == []

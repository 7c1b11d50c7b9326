"""The mail page as a person uses it: headless Debian chromium against a live server, a real RQ
worker with its scheduler, real Redis and a real SMTP sink on loopback.

Screenshots for humans go to test-output/: mail-page-en.png and mail-page-ko.png (a mail being
sent while another waits for its time), mail-page-error-en.png (a past time refused).
"""

from __future__ import annotations

import contextlib
import re
import zoneinfo
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from notifications.models import Notification
from tasks.models import Task
from tests.conftest import OUTPUT_DIR
from tests.harness import stop_process, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
PASSWORD = "pw-alice-123"  # the `user` fixture's
SLOW_SMTP = 1.25  # seconds per message: the running phase lasts over two poll intervals

# Records, in the page itself, every phase each panel entry went through and what it offered.
PHASE_RECORDER = """
window.__phases = {}; window.__progress = {}; window.__countdown = {};
new MutationObserver(function () {
  document.querySelectorAll('.live-entry').forEach(function (li) {
    var id = li.dataset.taskId;
    var key = li.dataset.phase + (li.querySelector('.cancel-form') ? '+cancel' : '')
      + (li.querySelector('button.close') ? '+close' : '');
    var seq = window.__phases[id] = window.__phases[id] || [];
    if (seq[seq.length - 1] !== key) seq.push(key);
    var countdown = li.querySelector('.countdown');
    if (countdown) {
      var texts = window.__countdown[id] = window.__countdown[id] || [];
      if (texts[texts.length - 1] !== countdown.textContent) texts.push(countdown.textContent);
    }
    var bar = li.querySelector('.bar');
    if (bar) {
      var values = window.__progress[id] = window.__progress[id] || [];
      var value = parseInt(bar.getAttribute('aria-valuenow'), 10);
      if (values[values.length - 1] !== value) values.push(value);
    }
  });
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


@pytest.fixture
def chromium(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of this test are
    # still plain synchronous calls, so Django's async-safety guard is told to allow them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # Under Playwright's loop this test's ORM calls got connections of their own (Django's
            # connections are per context); close them, or PostgreSQL cannot drop the test database.
            connections.close_all()


@pytest.fixture
def live_settings(settings, fast_lead):
    """The live server thread runs in this process and reads these settings per request."""
    settings.NOTIFICATION_POLL_SECONDS = 2  # slower than the 1 s countdown tick, on purpose
    return settings


def open_page(browser, base_url, *, locale, errors):
    # The browser's own zone is neither the user's nor UTC: the page must use the user's zone.
    context = browser.new_context(locale=locale, timezone_id="Europe/Berlin", viewport={"width": 1280, "height": 860})
    context.add_init_script(PHASE_RECORDER)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"{locale}: {exc}"))
    # The pages' Content-Security-Policy (reservemail.csp) must refuse nothing they need.
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and errors.append(f"{locale}: {message.text}"),
    )
    page.goto(base_url + "/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit].primary")
    page.wait_for_url(base_url + "/")
    return page


def fill_mail(page, *, recipients, description, lead=None, name="Browser"):
    """Fill and submit the form; with ``lead``, reserve that far from the moment the time is typed."""
    page.fill("#id_recipients", "\n".join(recipients))
    page.select_option("#id_template", "welcome")
    page.fill("#id_ctx_name", name)
    page.fill("#id_description", description)
    due = None
    if lead is not None:
        page.check("#id_reserve")
        assert page.is_visible("#id_scheduled_at")
        # The picker works in minutes; a person cannot type seconds, this test does (5 s ahead).
        due = timezone.now() + lead
        page.fill("#id_scheduled_at", timezone.localtime(due, SEOUL).strftime("%Y-%m-%dT%H:%M:%S"))
    with page.expect_navigation():
        page.click("#mail-form button[type=submit]")
    return due


def entry(page, task_id, phase=None):
    selector = f'#live-tasks li[data-task-id="{task_id}"]'
    return page.locator(selector + (f'[data-phase="{phase}"]' if phase else ""))


def seconds_left(text: str) -> int:
    """Read "1m 5s left" / "1분 5초 남음" back into seconds."""
    units = {"m": 60, "s": 1, "분": 60, "초": 1, "h": 3600, "시": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(m|s|h|분|초|시)", text))


BAR_VALUE = """id => {
  var bar = document.querySelector('#live-tasks li[data-task-id="' + id + '"][data-phase="running"] .bar');
  return bar ? parseInt(bar.getAttribute('aria-valuenow'), 10) : -1;
}"""


def snapshot_mid_send(page, task_id, path):
    """Photograph the page, preferably while the bar is part-way (best effort: never fails)."""
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: 0 < page.evaluate(BAR_VALUE, task_id) < 100, timeout=3)
    page.screenshot(path=str(path), full_page=True)


def newest_task(user) -> Task:
    return Task.objects.filter(owner=user).order_by("-pk").first()


def test_mail_page_reserve_countdown_progress_cancel_and_errors(
    transactional_db, live_server, live_settings, user, worker_factory, smtp, redis_conn, chromium
):
    OUTPUT_DIR.mkdir(exist_ok=True)
    worker = worker_factory()
    smtp.handler.delay = SLOW_SMTP
    errors: list[str] = []
    en = open_page(chromium, live_server.url, locale="en-US", errors=errors)
    ko = open_page(chromium, live_server.url, locale="ko-KR", errors=errors)
    assert en.is_hidden("#id_scheduled_at"), "the picker shows only once 'reserve' is ticked"
    en.check("#id_reserve")
    assert "In your time zone, Asia/Seoul (UTC+09:00)." in en.inner_text("#field-scheduled_at")
    assert en.inner_text("#mail-form button[type=submit]") == "Reserve"
    en.uncheck("#id_reserve")

    # A reservation far enough ahead to stay in the panel, with its countdown, the whole time.
    fill_mail(en, recipients=["later@example.com"], description="Later", lead=timedelta(minutes=2))
    later = newest_task(user)
    assert later.status == "reserved"

    # The mail of this test: reserved 5 seconds ahead.
    addresses = [f"r{i}@example.com" for i in range(4)]
    due = fill_mail(en, recipients=addresses, description="Countdown", lead=timedelta(seconds=5))
    soon = newest_task(user)
    assert (soon.status, soon.reserved_at) == ("reserved", due.replace(microsecond=0))
    local_due = timezone.localtime(soon.reserved_at, SEOUL).strftime("%Y-%m-%d %H:%M")
    assert f"Mail #{soon.pk} reserved for {local_due} (Asia/Seoul)." in en.inner_text(".messages")

    # The countdown decreases, ticking in the browser.
    countdown = entry(en, soon.pk).locator(".countdown")
    first = countdown.inner_text()
    assert re.fullmatch(r"\d+s left", first) and 1 <= seconds_left(first) <= 5, first
    wait_until(lambda: seconds_left(countdown.inner_text()) < seconds_left(first), timeout=4, what="a tick")
    assert re.fullmatch(r"1분 \d+초 남음", entry(ko, later.pk).locator(".countdown").inner_text())

    # It turns into a progress bar once the job starts; both pages are photographed then.
    wait_until(
        lambda: (
            entry(en, soon.pk, "running").count()
            and (entry(ko, soon.pk, "running").count() or entry(ko, soon.pk, "finished").count())
        ),
        timeout=20,
        what="the job to start on both pages",
    )
    for page, name in ((en, "mail-page-en.png"), (ko, "mail-page-ko.png")):
        snapshot_mid_send(page, soon.pk, OUTPUT_DIR / name)
    assert entry(en, soon.pk).locator(".bar").is_visible()

    # ... and finishes: the bar is full and the cancel link has become a close button.
    for page in (en, ko):
        entry(page, soon.pk, "finished").wait_for(timeout=20_000)
    assert entry(en, soon.pk).locator(".bar").get_attribute("aria-valuenow") == "100"
    assert entry(en, soon.pk).locator(".entry-status").inner_text() == "Sent"
    assert entry(ko, soon.pk).locator(".entry-status").inner_text() == "보냄"
    for page, pattern in ((en, r"(\d+)s left"), (ko, r"(\d+)초 남음")):
        phases = page.evaluate("window.__phases")[str(soon.pk)]
        progress = page.evaluate("window.__progress")[str(soon.pk)]
        texts = page.evaluate("window.__countdown")[str(soon.pk)]
        print(f"phases {phases}; progress {progress}; countdown {texts}")  # noqa: T201
        assert phases[0] == "reserved+cancel" and phases[-1] == "finished+close"
        if page is en:  # the other page may, on a very busy machine, poll only before and after it
            assert "running+cancel" in phases
        assert all(p == "due+close" for p in phases if p.startswith("due")), "at zero, cancel gives way to close"
        assert progress == sorted(progress) and progress[-1] == 100
        counted = [int(m.group(1)) for m in (re.fullmatch(pattern, t) for t in texts) if m]
        assert len(counted) >= 2 and counted == sorted(counted, reverse=True), texts

    # The mail arrived at the SMTP sink, not before its time.
    wait_until(lambda: len(smtp.received) == 4, timeout=10, what="4 messages")
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == addresses
    assert min(r.at for r in smtp.received) >= due.timestamp()
    assert smtp.received[0].message["Subject"] == "Welcome to reservemail, Browser"

    # Cancel the other reservation from the page (a POST with CSRF, after a confirmation).
    ko.once("dialog", lambda dialog: dialog.accept())
    with ko.expect_navigation():
        entry(ko, later.pk).locator(".cancel-form button").click()
    assert f"메일 #{later.pk}을(를) 취소했습니다." in ko.inner_text(".messages")
    later.refresh_from_db()
    assert later.status == "canceled"
    assert redis_conn.zscore(ScheduledJobRegistry("high", connection=redis_conn).key, str(later.pk)) is None
    # Its final state is shown until closed; closing tells the server the end was seen.
    entry(ko, later.pk, "canceled").wait_for(timeout=10_000)
    entry(ko, later.pk).locator("button.close").click()
    assert entry(ko, later.pk).count() == 0
    wait_until(
        lambda: all(
            later.pk not in [e["task_id"] for e in n.payload["data"]]
            for n in Notification.objects.filter(owner=user, name__in=["task_progress", "task_reserve"])
        ),
        timeout=5,
        what="the closed entry to leave the lists",
    )

    # At zero the cancel link gives way to a close button (no worker now, so it stays due).
    stop_process(worker)
    fill_mail(en, recipients=["due@example.com"], description="Due", lead=timedelta(seconds=3))
    stuck = newest_task(user)
    entry(en, stuck.pk, "due").wait_for(timeout=10_000)
    assert entry(en, stuck.pk).locator(".cancel-form").count() == 0
    assert entry(en, stuck.pk).locator(".countdown").inner_text() == "due now"
    entry(en, stuck.pk).locator("button.close").click()
    assert entry(en, stuck.pk).count() == 0

    # A time in the past: the error is next to the field, and what was typed is still there.
    fill_mail(en, recipients=["past@example.com"], description="Too late", lead=-timedelta(minutes=10))
    assert (
        en.inner_text("#field-scheduled_at .errorlist") == "This time has already passed. Choose a time in the future."
    )
    assert en.input_value("#id_recipients") == "past@example.com"
    assert en.input_value("#id_description") == "Too late"
    assert en.is_checked("#id_reserve") and en.is_visible("#id_scheduled_at")
    en.screenshot(path=str(OUTPUT_DIR / "mail-page-error-en.png"), full_page=True)
    assert Task.objects.filter(description="Too late").count() == 0

    # The language switch.
    with en.expect_navigation():
        en.click(".lang-switch button[value=ko]")
    assert en.inner_text("h1") == "메일 보내기"
    assert en.locator("html").get_attribute("lang") == "ko"
    assert errors == []


POLL_COUNTER = """
window.__polls = 0;
var realFetch = window.fetch;
window.fetch = function (url, options) {
  if (String(url).indexOf('/notifications/?since=') >= 0) window.__polls += 1;
  return realFetch.call(this, url, options);
};
window.__setHidden = function (hidden) {
  Object.defineProperty(document, 'hidden', {configurable: true, get: function () { return hidden; }});
  document.dispatchEvent(new Event('visibilitychange'));
};
"""


def test_polling_pauses_while_the_tab_is_hidden(transactional_db, live_server, live_settings, user, chromium):
    errors: list[str] = []
    page = open_page(chromium, live_server.url, locale="en-US", errors=errors)
    page.context.add_init_script(POLL_COUNTER)
    page.reload()
    wait_until(lambda: page.evaluate("window.__polls") >= 2, timeout=15, what="two polls while visible")

    page.evaluate("window.__setHidden(true)")
    hidden_at = page.evaluate("window.__polls")
    page.wait_for_timeout(2.25 * live_settings.NOTIFICATION_POLL_SECONDS * 1000)  # over two poll intervals
    assert page.evaluate("window.__polls") == hidden_at, "no polling while the tab is hidden"

    page.evaluate("window.__setHidden(false)")
    wait_until(lambda: page.evaluate("window.__polls") > hidden_at, timeout=5, what="a poll on return")
    assert errors == []

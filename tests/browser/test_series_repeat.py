"""The mail form's Repeat section in headless Debian chromium: the fields of the chosen kind, the rule in words
and the next five dates before saving (in English and Korean), then the series page after saving.

Screenshot for humans: test-output/series-repeat-en.png.
"""

from __future__ import annotations

import contextlib

import pytest
from playwright.sync_api import Error as PlaywrightError

from series.models import Series
from tasks.models import Task
from tests.browser.test_mail_page import chromium, live_settings, open_page  # noqa: F401 - fixtures
from tests.conftest import OUTPUT_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def choose_weekly(page):
    page.check("input[name='repeat-kind'][value='weekly']")
    assert page.is_visible("#field-repeat-weekdays") and page.is_hidden("#field-repeat-advanced")
    page.check("input[name='repeat-weekdays'][value='MO']")
    page.check("input[name='repeat-weekdays'][value='TH']")
    page.fill("#id_repeat-at_time", "09:00")
    page.check("input[name='repeat-ends'][value='after']")
    page.fill("#id_repeat-count", "10")
    page.locator("#id_repeat-count").dispatch_event("change")


def test_repeat_section_previews_then_creates_a_series(transactional_db, live_server, live_settings, user, chromium):  # noqa: F811
    OUTPUT_DIR.mkdir(exist_ok=True)
    errors: list[str] = []
    en = open_page(chromium, live_server.url, locale="en-US", errors=errors)
    ko = open_page(chromium, live_server.url, locale="ko-KR", errors=errors)
    assert en.is_hidden("#field-repeat-weekdays"), "only the chosen kind's fields are shown"
    assert en.inner_text("#mail-form button[type=submit]") == "Send now"
    for page in (en, ko):
        choose_weekly(page)
    assert en.inner_text("#mail-form button[type=submit]") == "Start repeating"
    summary = en.locator("#repeat-preview .repeat-summary")
    summary.filter(has_text="10 times").wait_for(timeout=10_000)
    assert summary.inner_text() == "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times"
    dates = en.locator("#repeat-preview .repeat-upcoming li").all_inner_texts()
    assert len(dates) == 5 and all(d.endswith("09:00") for d in dates), dates
    assert all("(Mon)" in d or "(Thu)" in d for d in dates), dates
    ko_summary = ko.locator("#repeat-preview .repeat-summary")
    ko_summary.filter(has_text="10회").wait_for(timeout=10_000)
    assert ko_summary.inner_text() == "매주 월요일, 목요일 09:00, Asia/Seoul, 10회"
    en.screenshot(path=str(OUTPUT_DIR / "series-repeat-en.png"), full_page=True)

    en.fill("#id_recipients", "team@example.com")
    en.select_option("#id_template", "welcome")
    en.fill("#id_description", "Weekly")
    with en.expect_navigation():
        en.click("#mail-form button[type=submit]")
    series = Series.objects.get()
    assert en.url == f"{live_server.url}/series/{series.pk}/"
    assert "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times" in en.inner_text(".series-summary")
    assert Task.objects.filter(series=series, status="reserved").count() == 1
    en.screenshot(path=str(OUTPUT_DIR / "series-page-en.png"), full_page=True)
    assert errors == []


def test_a_late_answer_to_an_older_preview_never_replaces_the_newest(  # noqa: F811
    transactional_db,
    live_server,
    live_settings,  # noqa: F811
    user,
    chromium,  # noqa: F811
):
    """The first preview request is held in the browser until the form is complete and previewed; released,
    its answer (for a half-filled rule) must not overwrite the summary of the rule as it now stands."""
    errors: list[str] = []
    page = open_page(chromium, live_server.url, locale="en-US", errors=errors)
    held: list = []

    def hold_the_first(route):  # noqa: ANN001, ANN202
        if not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/series/preview/**", hold_the_first)
    choose_weekly(page)
    summary = page.locator("#repeat-preview .repeat-summary")
    summary.filter(has_text="10 times").wait_for(timeout=10_000)
    assert held, "the first preview request was held"
    page.wait_for_timeout(1000)  # bounded: the debounced preview (250 ms) and the others answered meanwhile
    with contextlib.suppress(PlaywrightError):  # the page may have aborted it already: then nothing arrives
        held[0].continue_()
    page.wait_for_timeout(1500)  # bounded: time for the late answer to arrive and be (not) shown
    assert summary.inner_text() == "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times"
    assert not errors, errors

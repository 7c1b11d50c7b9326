"""The API docs work offline: Swagger UI at /api/docs/ and ReDoc at /api/redoc/ in headless Debian chromium, with
every request to another host aborted, and none made.

The browser reaches the live server under a made-up name (docs.example, mapped to loopback inside chromium), not
as localhost: Swagger UI skips its online validator badge for localhost only, so a test on localhost would miss it.
Screenshots for humans go to test-output/: api-docs.png and api-redoc.png.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.test_mail_page import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import OUTPUT_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HOST = "docs.example"


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def base_url(live_server, settings):
    settings.ALLOWED_HOSTS = [HOST]
    return f"http://{HOST}:{urlsplit(live_server.url).port}"


def load_offline(browser, url, *, ready):
    """Open url with every off-host request aborted; return (aborted urls, console errors, page errors, page)."""
    own = urlsplit(url).netloc
    aborted, console, errors = [], [], []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    def route(route):
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    # Chromium notes that it ignores COOP on plain http under a non-localhost name: about this test's setup only.
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and "Cross-Origin-Opener-Policy" not in message.text
            and console.append(message.text)
        ),
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(url)
    assert response.status == 200
    page.wait_for_selector(ready, timeout=20_000)
    page.wait_for_load_state("networkidle")
    return aborted, console, errors, page


def test_swagger_ui_loads_nothing_from_another_host(browser, base_url):
    aborted, console, errors, page = load_offline(browser, base_url + "/api/docs/", ready=".opblock")
    assert "Get your API token" in page.content()
    page.screenshot(path=str(OUTPUT_DIR / "api-docs.png"), full_page=False)
    assert aborted == []
    assert errors == []
    assert console == []
    assert page.query_selector(".validator-badge, img[src*='validator']") is None


def test_redoc_loads_nothing_from_another_host(browser, base_url):
    aborted, console, errors, page = load_offline(
        browser, base_url + "/api/redoc/", ready="h2:has-text('Get your API token')"
    )
    page.screenshot(path=str(OUTPUT_DIR / "api-redoc.png"), full_page=False)
    assert aborted == []
    assert errors == []
    # ReDoc's footer logo (its vendor's CDN) is refused by the page's Content-Security-Policy before any request,
    # and ReDoc then hides it; nothing else is refused.
    refused = [text for text in console if "Content Security Policy" in text]
    assert len(refused) == 1 and "https://cdn.redoc.ly/redoc/logo-mini.svg" in refused[0], console
    assert page.query_selector("img[src^='https://']") is None
    html = page.content()
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html

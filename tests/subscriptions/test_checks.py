"""``check --deploy`` warns when SITE_URL (the base of every unsubscribe link) is local or not https."""

import pytest
from django.core.checks import run_checks

from subscriptions.checks import check_site_url


@pytest.mark.parametrize(
    ("url", "ids"),
    [
        ("http://127.0.0.1:8000", ["subscriptions.W001"]),
        ("http://localhost:8000", ["subscriptions.W001"]),
        ("https://app.localhost", ["subscriptions.W001"]),
        ("not a url", ["subscriptions.W001"]),
        ("http://mail.example.org", ["subscriptions.W002"]),
        ("https://mail.example.org", []),
        ("https://mail.example.org/sub/", []),
    ],
)
def test_check_site_url(settings, url, ids):
    settings.SITE_URL = url
    assert [message.id for message in check_site_url(None)] == ids


def test_only_check_deploy_asks(settings):
    settings.SITE_URL = "http://127.0.0.1:8000"
    assert "subscriptions.W001" not in {message.id for message in run_checks()}
    assert "subscriptions.W001" in {message.id for message in run_checks(include_deployment_checks=True)}

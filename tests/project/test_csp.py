"""Every response carries a Content-Security-Policy: the pages' own, or the one a view needs (reservemail.csp).

Whether the pages run under it is shown in chromium: tests/browser/ fail on any console report of a refusal.
"""

import pytest

from reservemail import csp
from reservemail.api import REDOC_CSP
from reservemail.rq_dashboard import DASHBOARD_CSP

pytestmark = pytest.mark.django_db


def test_the_pages_policy_allows_scripts_from_this_host_only():
    directives = dict(part.split(" ", 1) for part in csp.PAGES.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"


@pytest.mark.parametrize("url", ["/accounts/login/", "/", "/tasks/", "/series/", "/settings/", "/api/docs/", "/admin/"])
def test_pages_and_redirects_carry_the_pages_policy(client, user, url):
    client.force_login(user)
    assert client.get(url)[csp.HEADER] == csp.PAGES


def test_api_answers_carry_it_too(client):
    assert client.get("/api/tasks/")[csp.HEADER] == csp.PAGES


def test_redoc_and_the_rq_dashboard_keep_their_own(client, django_user_model):
    admin = django_user_model.objects.create_superuser(username="root", password="pw-root-123", email="r@example.com")
    client.force_login(admin)
    assert client.get("/api/redoc/")[csp.HEADER] == REDOC_CSP
    assert "'unsafe-inline'" not in REDOC_CSP.split("script-src ")[1].split(";")[0]
    dashboard = client.get("/admin/django-rq/")
    assert dashboard.status_code == 200 and dashboard[csp.HEADER] == DASHBOARD_CSP

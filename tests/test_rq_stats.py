"""django-rq's stats.json (queue counts, the Redis host and port): staff with the dashboard's permission, or
the METRICS_TOKEN bearer token; nobody else, and no token in the URL."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="ops", password="pw-ops-123", is_staff=True)


STATS_PATHS = ["/admin/django-rq/stats.json", "/admin/django-rq/stats.json/", "/admin/django_rq/dashboard/stats.json"]


@pytest.mark.parametrize("path", STATS_PATHS)
def test_stats_json_refuses_anonymous_users(path, settings):
    settings.RQ_API_TOKEN = ""
    response = Client().get(path)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "A staff session or the METRICS_TOKEN bearer token is required.",
        "code": "not_authenticated",
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="rq"'


@pytest.mark.parametrize("path", STATS_PATHS)
def test_stats_json_refuses_staff_without_the_dashboard_permission(path, staff, user):
    for who in (staff, user):
        client = Client()
        client.force_login(who)
        response = client.get(path)
        assert response.status_code == 403
        assert response.json() == {"detail": "The django_rq.admin permission is required.", "code": "forbidden"}


@pytest.mark.parametrize("path", STATS_PATHS)
def test_stats_json_answers_staff_with_the_permission(path, staff, redis_server):
    staff.user_permissions.add(Permission.objects.get(codename="admin", content_type__app_label="django_rq"))
    client = Client()
    client.force_login(staff)
    response = client.get(path)
    assert response.status_code == 200
    assert sorted(queue["name"] for queue in response.json()["queues"]) == ["default", "high", "low"]


def test_stats_json_token_in_the_path_is_not_accepted(settings):
    settings.RQ_API_TOKEN = "s3cret-metrics-token"
    in_path = Client().get("/admin/django-rq/stats.json/s3cret-metrics-token")
    assert (in_path.status_code, in_path["Location"]) == (
        302,
        "/admin/login/?next=/admin/django-rq/stats.json/s3cret-metrics-token",
    ), "only the admin's catch-all answers: to the sign-in page"
    wrong = Client().get("/admin/django-rq/stats.json", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    right = Client().get("/admin/django-rq/stats.json", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert right.status_code == 200
    assert json.loads(right.content)["queues"]

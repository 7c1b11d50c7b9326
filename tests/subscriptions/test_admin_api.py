"""The suppression list in the admin (visible, editable through the services) and the staff-only API."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from subscriptions import services
from subscriptions.models import Suppression

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/subscriptions/suppression/"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="pw-root-123", email="r@example.com")


@pytest.fixture
def admin_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def test_admin_lists_suppressions(admin_client):
    services.suppress_address(address="a@example.com", list_name="newsletter", how="one_click")
    services.suppress_address(address="b@example.com", list_name="", how="api")
    page = admin_client.get(CHANGELIST).content.decode()
    assert "a@example.com" in page and "One-click (mail client)" in page
    assert "b@example.com" in page and "all bulk mail" in page


def test_admin_add_goes_through_the_service(admin_client):
    response = admin_client.post(f"{CHANGELIST}add/", {"address": "New@Example.com", "list_name": "newsletter"})
    assert response.status_code == 302
    assert list(Suppression.objects.values_list("address", "list_name", "how")) == [
        ("new@example.com", "newsletter", "admin")
    ]


def test_admin_add_duplicate_is_a_form_error(admin_client):
    services.suppress_address(address="a@example.com", list_name="newsletter", how="page")
    response = admin_client.post(f"{CHANGELIST}add/", {"address": "A@example.com", "list_name": "newsletter"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Suppression.objects.count() == 1


def test_admin_change_and_delete(admin_client):
    row, _ = services.suppress_address(address="a@example.com", list_name="newsletter", how="page")
    response = admin_client.post(f"{CHANGELIST}{row.pk}/change/", {"address": "a@example.com", "list_name": ""})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.address, row.list_name, row.how) == ("a@example.com", "", "page")
    response = admin_client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Suppression.objects.exists()


def test_admin_bulk_delete_action(admin_client):
    ids = [services.suppress_address(address=f"{c}@example.com", list_name="", how="page")[0].pk for c in "ab"]
    response = admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert response.status_code == 302
    assert not Suppression.objects.exists()


def test_api_lists_suppressions_for_staff(staff, django_assert_num_queries):
    row, _ = services.suppress_address(address="a@example.com", list_name="newsletter", how="one_click")
    services.suppress_address(address="b@example.com", list_name="", how="page")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    with django_assert_num_queries(3):  # token and user, count, one page of rows: not one per row
        response = client.get("/api/suppressions/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [(r["address"], r["list_name"], r["all_bulk"], r["how"]) for r in body["results"]] == [
        ("b@example.com", "", True, "page"),
        ("a@example.com", "newsletter", False, "one_click"),
    ]
    one = client.get(f"/api/suppressions/{row.pk}/").json()
    assert one == {
        "id": row.pk,
        "address": "a@example.com",
        "list_name": "newsletter",
        "all_bulk": False,
        "how": "one_click",
        "created_at": one["created_at"],
    }
    assert one["created_at"].startswith(str(row.created_at.year))


def test_api_create_for_staff_is_idempotent(staff):
    client = APIClient()
    client.force_authenticate(staff)
    first = client.post("/api/suppressions/", {"address": "C@example.com"}, format="json")
    assert first.status_code == 201
    assert {k: first.json()[k] for k in ("address", "list_name", "all_bulk", "how")} == {
        "address": "c@example.com",
        "list_name": "",
        "all_bulk": True,
        "how": "api",
    }
    again = client.post("/api/suppressions/", {"address": "c@example.com", "list_name": "newsletter"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    bad = client.post("/api/suppressions/", {"address": "c@example.com", "list_name": "a b"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    assert Suppression.objects.count() == 1


def test_api_refuses_non_staff_and_anonymous(user):
    services.suppress_address(address="a@example.com", list_name="newsletter", how="page")
    client = APIClient()
    assert client.get("/api/suppressions/").status_code == 401
    client.force_authenticate(user)
    response = client.get("/api/suppressions/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert client.post("/api/suppressions/", {"address": "x@example.com"}, format="json").status_code == 403
    assert Suppression.objects.count() == 1

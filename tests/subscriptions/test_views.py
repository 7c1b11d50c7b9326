"""The unsubscribe page /u/<token>/: GET explains, POST (one-click without CSRF, or the button) suppresses."""

import pytest
from django.test import Client

from subscriptions.models import Suppression
from subscriptions.tokens import make_token

pytestmark = pytest.mark.django_db

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def url(address="ann@example.com", list_name="newsletter"):
    return f"/u/{make_token(address=address, list_name=list_name)}/"


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


def rows():
    return list(Suppression.objects.values_list("address", "list_name", "how"))


def test_get_shows_what_will_happen_and_changes_nothing(client):
    response = client.get(url())
    assert response.status_code == 200
    page = response.content.decode()
    assert "Unsubscribe ann@example.com from the “newsletter” mailing?" in page
    assert '<form method="post">' in page and 'name="scope" value="all"' in page
    assert rows() == []


def test_one_click_post_without_session_or_csrf_unsubscribes(client):
    response = client.post(url(), ONE_CLICK)
    assert response.status_code == 200
    assert "ann@example.com will no longer receive the “newsletter” mailing." in response.content.decode()
    assert rows() == [("ann@example.com", "newsletter", "one_click")]
    assert "sessionid" not in response.cookies


def test_one_click_post_repeated_is_idempotent(client):
    first = client.post(url(), ONE_CLICK)
    second = client.post(url(), ONE_CLICK)
    assert first.status_code == second.status_code == 200
    assert "ann@example.com is already unsubscribed." in second.content.decode()
    assert rows() == [("ann@example.com", "newsletter", "one_click")]
    assert "ann@example.com is already unsubscribed." in client.get(url()).content.decode()


def test_button_post_unsubscribes_from_the_list(client):
    response = client.post(url(), {})
    assert response.status_code == 200
    assert rows() == [("ann@example.com", "newsletter", "page")]
    assert client.post(url(), {}).status_code == 200
    assert rows() == [("ann@example.com", "newsletter", "page")]


def test_button_for_all_bulk_mail(client):
    response = client.post(url(), {"scope": "all"})
    assert "ann@example.com will no longer receive any bulk mail from us." in response.content.decode()
    assert rows() == [("ann@example.com", "", "page")]
    # Already covered by the all-bulk row: no second row, for this list or another.
    assert "already unsubscribed" in client.post(url(), ONE_CLICK).content.decode()
    assert "already unsubscribed" in client.post(url(list_name="offers"), ONE_CLICK).content.decode()
    assert rows() == [("ann@example.com", "", "page")]


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_token_is_a_400_page_and_changes_nothing(client, method):
    token = make_token(address="ann@example.com", list_name="newsletter")
    for bad in (token[:-2] + "xx", token.split(":")[0], "nonsense"):
        response = getattr(client, method)(f"/u/{bad}/", ONE_CLICK if method == "post" else None)
        assert response.status_code == 400
        assert "This unsubscribe link is not valid." in response.content.decode()
    assert rows() == []


def test_other_methods_are_refused(client):
    assert client.put(url()).status_code == 405
    assert rows() == []


def test_page_in_korean(client):
    client.cookies["django_language"] = "ko"
    response = client.get(url(), HTTP_ACCEPT_LANGUAGE="ko")
    assert response.status_code == 200
    assert '<html lang="ko">' in response.content.decode()


def test_signed_token_for_an_address_that_cannot_be_stored_is_a_400_page(client):
    response = client.post(url(address="not an address"), ONE_CLICK)
    assert response.status_code == 400
    assert "This unsubscribe link is not valid." in response.content.decode()
    assert rows() == []

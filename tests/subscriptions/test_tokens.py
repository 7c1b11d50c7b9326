"""Unsubscribe tokens (subscriptions.tokens): signed, naming the address and the list; anything else is refused."""

import base64
import json

import pytest
from django.core import signing
from django.urls import reverse

from subscriptions.tokens import SALT, BadToken, make_token, read_token, unsubscribe_links


def _with_payload(token, payload):
    """The token's signature over another payload: what a forger who edits the readable part gets."""
    _old, signature = token.rsplit(":", 1)
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{body}:{signature}"


def test_token_round_trips_address_and_list():
    target = read_token(make_token(address="Ann@Example.com", list_name="newsletter"))
    assert (target.address, target.list_name) == ("ann@example.com", "newsletter")


def test_token_differs_per_address_and_list():
    tokens = {
        make_token(address="a@example.com", list_name="newsletter"),
        make_token(address="b@example.com", list_name="newsletter"),
        make_token(address="a@example.com", list_name="offers"),
    }
    assert len(tokens) == 3


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the signature
        lambda t: t.split(":")[0],  # signature left off
        lambda t: t[1:],  # truncated payload
        lambda t: "x" + t,
        lambda t: "",
    ],
)
def test_tampered_token_is_refused(tamper):
    with pytest.raises(BadToken):
        read_token(tamper(make_token(address="a@example.com", list_name="newsletter")))


def test_token_edited_to_name_another_list_is_refused():
    token = make_token(address="a@example.com", list_name="newsletter")
    with pytest.raises(BadToken):
        read_token(_with_payload(token, {"a": "a@example.com", "l": "offers"}))
    assert read_token(_with_payload(token, {"a": "a@example.com", "l": "newsletter"})).list_name == "newsletter"


def test_token_edited_to_name_another_address_is_refused():
    token = make_token(address="a@example.com", list_name="newsletter")
    with pytest.raises(BadToken):
        read_token(_with_payload(token, {"a": "victim@example.com", "l": "newsletter"}))


def test_value_signed_for_another_purpose_is_refused():
    payload = {"a": "a@example.com", "l": "newsletter"}
    other_salt = signing.Signer(salt="something.else").sign_object(payload)
    no_salt = signing.Signer().sign_object(payload)
    timestamped = signing.dumps(payload, salt=SALT)  # the same salt, but signed with a timestamp
    wrong_shape = signing.Signer(salt=SALT).sign_object(["a@example.com", "newsletter"])
    not_json = signing.Signer(salt=SALT).sign("bm90IGpzb24")
    for token in (other_salt, no_salt, timestamped, wrong_shape, not_json):
        with pytest.raises(BadToken):
            read_token(token)


def test_token_from_another_secret_key_is_refused(settings):
    token = make_token(address="a@example.com", list_name="newsletter")
    settings.SECRET_KEY = "another-secret-key-for-this-test-only"
    with pytest.raises(BadToken):
        read_token(token)


def test_links_use_site_url_and_optional_mailto(settings):
    settings.SITE_URL = "https://mail.example.org/"
    settings.UNSUBSCRIBE_MAILTO = ""
    links = unsubscribe_links(address="a@example.com", list_name="newsletter")
    token = make_token(address="a@example.com", list_name="newsletter")
    assert links.url == f"https://mail.example.org/u/{token}/"
    assert links.url == "https://mail.example.org" + reverse("subscriptions:unsubscribe", kwargs={"token": token})
    assert links.mailto is None and links.header() == f"<{links.url}>"
    settings.UNSUBSCRIBE_MAILTO = "leave@example.org"
    links = unsubscribe_links(address="a@example.com", list_name="newsletter")
    assert links.mailto == f"mailto:leave@example.org?subject=unsubscribe%20{token.replace(':', '%3A')}"
    assert links.header() == f"<{links.url}>, <{links.mailto}>"

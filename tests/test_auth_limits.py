"""Sign-in limits (django-axes, reservemail.signin) on every door: the form, the admin and the token endpoint.

Each door: SIGNIN_FAILURE_LIMIT wrong passwords, and the attempt that reaches the limit and every one after it is
refused with 429 and Retry-After, even with the right password; another user from another address signs in as
usual; the lock lifts after the cool-off. The address lock and the account lock are each shown on their own.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from reservemail.signin import client_ip, lockout_seconds, wait_text

pytestmark = pytest.mark.django_db

LIMIT = 3
ATTACKER = "198.51.100.7"
ELSEWHERE = "203.0.113.20"
PASSWORDS = {"alice": "pw-alice-123", "bob": "pw-bob-123", "root": "pw-root-123"}


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return settings


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password=PASSWORDS["root"], email="r@x.org")


def form_door(path):
    def attempt(username, password, address):
        response = Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})
        if response.status_code == 302:
            return "signed in", response
        if response.status_code == 429:
            return "locked", response
        assert response.status_code == 200, response.status_code
        return "refused", response

    return attempt


def token_door(username, password, address):
    response = APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )
    if response.status_code == 200:
        return "signed in", response
    if response.status_code == 429:
        return "locked", response
    assert response.status_code == 400, response.status_code
    assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    return "refused", response


DOORS = {
    "form": (form_door("/accounts/login/"), "alice", "bob"),
    "admin": (form_door("/admin/login/"), "root", "root"),
    "token": (token_door, "alice", "bob"),
}


def assert_locked_answer(door, response, *, at_most):
    seconds = int(response["Retry-After"])
    assert 0 < seconds <= at_most
    if door == "token":
        minutes = -(-seconds // 60)
        assert response.json() == {
            "detail": f"Too many failed sign-ins. Try again in {minutes} minutes.",
            "code": "signin_locked",
        }
    else:
        page = response.content.decode()
        assert "Sign-in locked" in page
        assert "Too many failed sign-ins. Try again in 15 minutes." in page


@pytest.mark.parametrize("door", DOORS)
def test_failed_sign_ins_lock_the_account_then_the_lock_lifts(door, user, other_user, staff, settings):
    attempt, victim, other = DOORS[door]
    for _ in range(LIMIT - 1):
        assert attempt(victim, "wrong", ATTACKER)[0] == "refused"
    outcome, response = attempt(victim, "wrong", ATTACKER)
    assert outcome == "locked", "the attempt that reaches the limit is refused as locked"
    assert_locked_answer(door, response, at_most=15 * 60)

    # The right password does not help, from the attacker's address or from anywhere else: the account is locked.
    assert attempt(victim, PASSWORDS[victim], ATTACKER)[0] == "locked"
    assert attempt(victim, PASSWORDS[victim], ELSEWHERE)[0] == "locked"
    # Refused attempts while locked are not counted: the lock still lifts on time.
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == LIMIT

    if other != victim:  # another person from another address is unaffected
        assert attempt(other, PASSWORDS[other], ELSEWHERE)[0] == "signed in"

    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    time.sleep(1.1)
    assert attempt(victim, PASSWORDS[victim], ELSEWHERE)[0] == "signed in"


@pytest.mark.parametrize("door", DOORS)
def test_failures_from_one_address_lock_that_address_for_every_account(door, user, other_user, staff, settings):
    attempt, _victim, _other = DOORS[door]
    for name in ("nobody-1", "nobody-2"):
        assert attempt(name, "guess", ATTACKER)[0] == "refused"
    assert attempt("nobody-3", "guess", ATTACKER)[0] == "locked"

    # Every account is refused from the attacking address, and only from there.
    assert attempt("alice", PASSWORDS["alice"], ATTACKER)[0] == "locked"
    assert attempt("bob", PASSWORDS["bob"], ATTACKER)[0] == "locked"
    name = "root" if door == "admin" else "alice"
    assert attempt(name, PASSWORDS[name], ELSEWHERE)[0] == "signed in"

    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    time.sleep(1.1)
    assert attempt(name, PASSWORDS[name], ATTACKER)[0] == "signed in"


def test_other_peoples_failures_below_the_limit_do_not_lock_anyone(user, other_user):
    for _ in range(LIMIT - 1):
        assert token_door("alice", "wrong", ATTACKER)[0] == "refused"
        assert token_door("bob", "wrong", ELSEWHERE)[0] == "refused"
    outcome, response = token_door("alice", PASSWORDS["alice"], ELSEWHERE)
    assert outcome == "signed in"
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_a_success_does_not_clear_the_address_count(user, other_user):
    # Otherwise an attacker with an account of their own would sign into it between guesses at others.
    for _ in range(LIMIT - 1):
        assert token_door("bob", "guess", ATTACKER)[0] == "refused"
    assert token_door("alice", PASSWORDS["alice"], ATTACKER)[0] == "signed in"
    assert token_door("carol", "guess", ATTACKER)[0] == "locked"


def test_lock_on_one_door_holds_on_the_others(user):
    for _ in range(LIMIT):
        token_door("alice", "wrong", ATTACKER)
    assert form_door("/accounts/login/")("alice", PASSWORDS["alice"], ELSEWHERE)[0] == "locked"
    assert form_door("/api/auth/login/")("alice", PASSWORDS["alice"], ELSEWHERE)[0] == "locked"


def test_a_username_longer_than_any_account_is_a_field_error_not_an_attempt(user):
    response = APIClient().post("/api/auth/token/", {"username": "a" * 151, "password": "x"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"username": ["Ensure this field has no more than 150 characters."]}
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/", "/api/auth/login/"])
def test_a_username_longer_than_any_account_is_a_form_error_not_an_attempt(user, path):
    """Not a sign-in attempt: django-axes would store the name, and PostgreSQL refuses one over 255 characters."""
    response = Client().post(path, {"username": "\u00e9" * 3000, "password": "x"})
    assert response.status_code == 200
    assert "Ensure this value has at most 150 characters (it has 3000)." in response.content.decode()
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "10.0.0.5", "1.2.3.4", "10.0.0.5"),  # no trusted proxy: the header is the client's word
        (1, "10.0.0.5", "1.2.3.4", "1.2.3.4"),
        (1, "10.0.0.5", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # a spoofed left entry is ignored
        (2, "10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.9", "1.2.3.4"),
        (2, "10.0.0.5", "1.2.3.4", "10.0.0.5"),  # fewer hops than proxies: not through them
        (1, "10.0.0.5", "not-an-address", "10.0.0.5"),
        (1, "10.0.0.5", "", "10.0.0.5"),
        (1, "10.0.0.5", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_trusts_only_the_configured_proxies(rf, settings, proxies, remote, forwarded, expected):
    settings.SIGNIN_TRUSTED_PROXIES = proxies
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_behind_a_trusted_proxy_each_client_address_counts_alone(user, other_user, settings):
    settings.SIGNIN_TRUSTED_PROXIES = 1

    def through_proxy(username, password, address):
        return APIClient(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=address).post(
            "/api/auth/token/", {"username": username, "password": password}, format="json"
        )

    for name in ("nobody-1", "nobody-2", "nobody-3"):
        through_proxy(name, "guess", ATTACKER)
    assert through_proxy("bob", PASSWORDS["bob"], ATTACKER).status_code == 429
    assert through_proxy("bob", PASSWORDS["bob"], ELSEWHERE).status_code == 200


def test_lockout_seconds_counts_from_the_failure_that_reached_the_limit(rf, user):
    for _ in range(LIMIT):
        token_door("alice", "wrong", ATTACKER)
    request = rf.post("/api/auth/token/", REMOTE_ADDR=ELSEWHERE)
    assert 15 * 60 - 5 <= lockout_seconds(request, {"username": "alice"}) <= 15 * 60
    assert lockout_seconds(rf.post("/", REMOTE_ADDR=ELSEWHERE), {"username": "bob"}) == 0


def test_lockout_seconds_waits_for_the_row_that_reached_the_limit(rf):
    # One row per (account, address, user agent): 2 failures 10 minutes ago from one address, 1 failure a minute
    # ago from another. The account is locked (3); it lifts when the older row expires (then 1 < 3), 5 minutes on.
    now = timezone.now()
    for address, failures, minutes_ago in ((ATTACKER, 2, 10), (ELSEWHERE, 1, 1)):
        row = AccessAttempt.objects.create(
            username="alice",
            ip_address=address,
            user_agent="probe",
            failures_since_start=failures,
            get_data="",
            post_data="",
            http_accept="*/*",
            path_info="/api/auth/token/",
        )
        # attempt_time is auto_now_add: set it afterwards.
        AccessAttempt.objects.filter(pk=row.pk).update(attempt_time=now - timedelta(minutes=minutes_ago))
    seconds = lockout_seconds(rf.post("/api/auth/token/", REMOTE_ADDR="192.0.2.1"), {"username": "alice"})
    assert 5 * 60 - 5 <= seconds <= 5 * 60


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (59, "59 seconds"),
        (119, "119 seconds"),
        (120, "2 minutes"),
        (900, "15 minutes"),
        (901, "16 minutes"),
    ],
)
def test_wait_text(seconds, text):
    assert wait_text(seconds) == text


def test_password_reset_is_not_mounted(client):
    for path in ("/accounts/password_reset/", "/accounts/reset/MQ/set-password/"):
        assert client.get(path).status_code == 404, path
    for name in ("password_reset", "admin_password_reset", "password_reset_confirm"):
        with pytest.raises(NoReverseMatch):
            reverse(name)
    # The admin's login page offers a reset link only when admin_password_reset is mounted.
    assert b"password" in client.get("/admin/login/").content
    assert b"Forgotten your password" not in client.get("/admin/login/").content

"""Addresses with UTF-8 before the @ (RFC 6531/6532): refused in every door while EMAIL_SMTPUTF8 is off,
accepted while it is on, and sent with SMTPUTF8 in MAIL FROM and UTF-8 address headers, only where needed.

A relay that does not announce SMTPUTF8 fails just those recipients, permanently, with the reason in
the delivery and the task log; the rest of the task goes out. The relay is aiosmtpd on loopback.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import django_rq
import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from reservemail.addresses import validate_address
from subscriptions.models import Suppression
from subscriptions.services import suppress_address
from subscriptions.tokens import unsubscribe_links
from tasks import services
from tasks.exceptions import ReservationError
from tasks.mail import MailSpec, new_message_id, render_message
from tasks.models import Delivery, Task
from tasks.smtp import MailSession, Outbox, session
from tasks.validation import clean_address, clean_recipients
from tests.harness import SmtpSink, free_port
from tests.tasks.input_cases import assert_nothing_happened
from tests.tasks.test_api import client_for
from tests.tasks.test_relay import RelayHandler

pytestmark = pytest.mark.django_db

KIM = "김철수@example.com"  # 9 octets before the @
NAMED_KIM = f'"Kim, Jr." <{KIM}>'


@pytest.fixture
def smtputf8_on(settings):
    settings.EMAIL_SMTPUTF8 = True


@pytest.fixture
def fresh_session() -> Iterator[None]:
    session.shutdown()
    yield
    session.shutdown()


@pytest.fixture(scope="module")
def utf8_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(smtputf8=True).start()
    yield sink
    sink.stop()


@pytest.fixture
def utf8_relay(utf8_sink, settings, fresh_session) -> Iterator[SmtpSink]:  # noqa: ANN001
    """Mail of this process goes over SMTP to a sink that announces SMTPUTF8 (and 8BITMIME)."""
    utf8_sink.reset()
    settings.EMAIL_BACKEND = "tasks.relay.RelayBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", utf8_sink.port
    yield utf8_sink
    utf8_sink.reset()


def send_now(user, capture, recipients: tuple[str, ...], template: str = "welcome") -> Task:  # noqa: ANN001
    spec = MailSpec(template=template, recipients=recipients, context={"name": "Ann", "title": "T", "body": "B"})
    with capture(execute=True):
        return services.enqueue_task(owner=user, mail=spec, description="smtputf8")


def run_worker() -> None:
    django_rq.get_worker("high", "default", "low").work(burst=True)


# --- validation -----------------------------------------------------------------------------------


def test_a_utf8_local_part_is_refused_while_off_with_how_to_turn_it_on():
    with pytest.raises(ReservationError) as caught:
        clean_address(KIM)
    assert str(caught.value) == (
        f"“{KIM}” has non-ASCII characters before the @. Sending to it needs a mail server with SMTPUTF8, which is "
        "turned off here (an administrator turns it on with EMAIL_SMTPUTF8=1 when the mail relay supports it); "
        "until then, ask for an address in plain ASCII."
    )
    with pytest.raises(ValidationError):
        validate_address(KIM)


@pytest.mark.usefixtures("smtputf8_on")
@pytest.mark.parametrize(
    "address",
    [
        KIM,
        "björn@example.com",
        "用户@例子.广告",
        "δοκιμή@παράδειγμα.δοκιμή",
        '"김..철수"@example.com',
        "a.김@example.com",
    ],
)
def test_a_utf8_local_part_is_accepted_while_on(address):
    assert clean_address(address) == address
    validate_address(address)


@pytest.mark.usefixtures("smtputf8_on")
def test_limits_count_octets_of_utf8():
    assert clean_address("김" * 21 + "@example.com")  # 63 octets
    with pytest.raises(ReservationError, match="at most 64 bytes are allowed in UTF-8"):
        clean_address("김" * 22 + "@example.com")  # 22 characters, 66 octets
    domain = "d" * 63 + "." + "d" * 63 + "." + "d" * 55 + ".example"
    assert len(domain) == 191
    assert clean_address("김" * 20 + "@" + domain)  # 60 + 1 + 191 = 252 octets
    with pytest.raises(ReservationError, match="at most 254 characters"):
        clean_address("김" * 21 + "@" + domain)  # 63 + 1 + 191 = 255 octets, 213 characters


@pytest.mark.usefixtures("smtputf8_on")
@pytest.mark.parametrize(
    ("address", "piece"),
    [
        ("김\u200b철수@example.com", "not a valid e-mail address"),  # zero-width space (format character)
        ("김\u3000철수@example.com", "not a valid e-mail address"),  # ideographic space
        ("김\ue000@example.com", "not a valid e-mail address"),  # private use
        ("김\u0085@example.com", r"control character \(U\+0085\)"),
        ("김..철수@example.com", "not a valid e-mail address"),
        ("김철수@example", "not a valid e-mail address"),
    ],
    ids=["zero-width-space", "ideographic-space", "private-use", "c1-control", "double-dot", "no-tld"],
)
def test_invisible_spacing_and_control_characters_stay_refused_while_on(address, piece):
    with pytest.raises(ReservationError, match=piece):
        clean_address(address)


@pytest.mark.usefixtures("smtputf8_on")
def test_a_decomposed_local_part_is_kept_composed_nfc():
    decomposed = unicodedata.normalize("NFD", "김철수") + "@example.com"
    assert decomposed != KIM
    assert clean_address(decomposed) == KIM
    assert clean_recipients([decomposed, KIM]) == (KIM,)  # the same address once


def test_the_form_refuses_while_off_and_accepts_while_on(client, user, settings, redis_conn):
    client.force_login(user)
    data = {"recipients": f"{NAMED_KIM}, b@example.com", "template": "welcome", "description": "form", "context": ""}
    response = client.post("/", data)
    assert response.status_code == 200
    assert "EMAIL_SMTPUTF8=1" in " ".join(response.context["form"].errors["recipients"])
    assert_nothing_happened(redis_conn)
    settings.EMAIL_SMTPUTF8 = True
    response = client.post("/", data)
    assert response.status_code == 302
    task = Task.objects.get()
    assert task.recipients == [{"address": KIM, "name": "Kim, Jr."}, "b@example.com"]
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert KIM in page  # shown as it is, not encoded


def test_the_api_answers_400_while_off_and_shows_the_address_as_it_is_while_on(
    user, settings, redis_conn, django_capture_on_commit_callbacks
):
    api = client_for(user)
    body = {"template": "welcome", "recipients": [NAMED_KIM], "context": {"name": "K"}, "description": "api"}
    response = api.post("/api/tasks/", body, format="json")
    assert response.status_code == 400
    message = (
        f"“{KIM}” has non-ASCII characters before the @. Sending to it needs a mail server with SMTPUTF8, "
        "which is turned off here (an administrator turns it on with EMAIL_SMTPUTF8=1 when the mail relay "
        "supports it); until then, ask for an address in plain ASCII."
    )
    assert response.json() == {"recipients": {"0": [message]}}  # keyed by position, as every recipient error
    assert_nothing_happened(redis_conn)
    settings.EMAIL_SMTPUTF8 = True
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["recipients"] == [NAMED_KIM]
    assert KIM.encode() in response.content  # UTF-8 in the JSON, not \\u escapes
    run_worker()  # locmem: the deliveries are written as it sends
    detail = api.get(f"/api/tasks/{response.json()['id']}/").json()
    assert [(d["address"], d["status"]) for d in detail["deliveries"]] == [(KIM, "sent")]


def test_the_admin_refuses_while_off_and_accepts_while_on(admin_client, admin_user, settings, redis_conn):
    data = {
        "owner": admin_user.pk,
        "template": "welcome",
        "recipients": KIM,
        "description": "admin",
        "context": '{"name": "B"}',
        "reserve": "",
        "scheduled_at": "",
    }
    response = admin_client.post("/admin/tasks/task/add/", data)
    assert response.status_code == 200
    assert "EMAIL_SMTPUTF8=1" in " ".join(response.context["form"].errors["recipients"])
    assert_nothing_happened(redis_conn)
    settings.EMAIL_SMTPUTF8 = True
    response = admin_client.post("/admin/tasks/task/add/", data)
    assert response.status_code == 302
    task = Task.objects.get()
    assert task.recipients == [KIM]
    assert KIM in admin_client.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()


def test_the_suppression_list_takes_a_utf8_address_only_while_on(admin_client, admin_user, settings):
    api = APIClient()
    api.force_authenticate(admin_user)
    assert api.post("/api/suppressions/", {"address": KIM}, format="json").status_code == 400
    response = admin_client.post("/admin/subscriptions/suppression/add/", {"address": KIM, "list_name": ""})
    assert response.status_code == 200 and not Suppression.objects.exists()
    settings.EMAIL_SMTPUTF8 = True
    response = api.post("/api/suppressions/", {"address": "BJÖRN@example.com"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["address"] == "björn@example.com"
    response = admin_client.post("/admin/subscriptions/suppression/add/", {"address": KIM, "list_name": ""})
    assert response.status_code == 302
    assert sorted(Suppression.objects.values_list("address", flat=True)) == ["björn@example.com", KIM]


def test_a_one_click_unsubscribe_of_a_utf8_address_is_stored_even_after_smtputf8_is_turned_off(client, settings):
    url = unsubscribe_links(address=KIM, list_name="newsletter").url
    response = client.post(url.removeprefix(settings.SITE_URL.rstrip("/")), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert list(Suppression.objects.values_list("address", "list_name")) == [(KIM, "newsletter")]


# --- sending --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("smtputf8_on")
def test_smtputf8_is_used_only_for_the_message_that_needs_it(utf8_relay, user, django_capture_on_commit_callbacks):
    task = send_now(user, django_capture_on_commit_callbacks, ({"address": KIM, "name": "Kim, Jr."}, "b@example.com"))
    run_worker()
    task.refresh_from_db()
    assert (task.status, task.failed) == ("finished", False), task.log
    by_rcpt = {tuple(r.rcpt_tos): r for r in utf8_relay.received}
    assert set(by_rcpt) == {(KIM,), ("b@example.com",)}
    utf8, ascii_ = by_rcpt[(KIM,)], by_rcpt[("b@example.com",)]
    assert "SMTPUTF8" in utf8.mail_options and "BODY=8BITMIME" in utf8.mail_options
    assert "SMTPUTF8" not in ascii_.mail_options
    assert f'\r\nTo: "Kim, Jr." <{KIM}>\r\n'.encode() in utf8.data  # RFC 6532: the header as UTF-8
    assert b"=?utf-8?" not in utf8.data.split(b"\r\nTo: ", 1)[1].split(b"\r\n", 1)[0]
    assert ascii_.data.split(b"\r\n\r\n", 1)[0].isascii()  # headers of the ASCII message: ASCII as before
    assert b"\r\nTo: b@example.com\r\n" in ascii_.data


@pytest.mark.usefixtures("smtputf8_on")
def test_an_international_domain_goes_in_punycode_beside_the_utf8_local_part(
    utf8_relay, user, django_capture_on_commit_callbacks
):
    send_now(user, django_capture_on_commit_callbacks, ("用户@例子.广告",))
    run_worker()
    (received,) = utf8_relay.received
    assert received.rcpt_tos == ["用户@xn--fsqu00a.xn--4rr70v"]
    assert "SMTPUTF8" in received.mail_options


@pytest.mark.usefixtures("smtputf8_on")
def test_a_relay_without_smtputf8_fails_just_that_recipient_for_good(
    smtp, user, django_capture_on_commit_callbacks, fresh_session
):
    task = send_now(user, django_capture_on_commit_callbacks, (KIM, "b@example.com", "c@example.com"))
    run_worker()
    task.refresh_from_db()
    assert (task.status, task.failed, task.attempts) == ("finished", True, 1), task.log
    reason = f"relay does not support SMTPUTF8, which {KIM} needs"
    assert f"permanent failure {KIM}: {reason}" in task.log
    assert "sent 2, failed 1" in task.log
    assert dict(Delivery.objects.values_list("address", "status")) == {
        KIM: "failed",
        "b@example.com": "sent",
        "c@example.com": "sent",
    }
    assert Delivery.objects.get(address=KIM).error == reason
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["b@example.com", "c@example.com"]
    assert all("SMTPUTF8" not in r.mail_options for r in smtp.received)
    assert not django_rq.get_queue("default").scheduled_job_registry.get_job_ids()  # no retry anywhere
    run_worker()
    assert len(smtp.received) == 2


def test_a_suppressed_utf8_address_gets_no_more_bulk_mail(user, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_SMTPUTF8 = True
    suppress_address(address=KIM, list_name="newsletter", how="page")
    task = send_now(user, django_capture_on_commit_callbacks, (KIM, "b@example.com"), template="newsletter")
    run_worker()
    assert dict(Delivery.objects.filter(task=task).values_list("address", "status")) == {
        KIM: "suppressed",
        "b@example.com": "sent",
    }
    assert [m.to for m in mail.outbox] == [["b@example.com"]]


def test_a_relay_with_smtputf8_but_without_8bitmime_gets_7bit_bodies_under_utf8_headers(settings, fresh_session):
    handler = RelayHandler()
    handler.announce_8bitmime = False
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "tasks.relay.RelayBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
        message = render_message(
            template="welcome", context={"name": "김민수"}, recipient=KIM, message_id=new_message_id(), to=NAMED_KIM
        )
        results: dict[str, BaseException | None] = {}
        mine = MailSession()
        with Outbox(mine, settle=results.__setitem__) as outbox:
            outbox.start(KIM, outbox.encode(message))
        mine.shutdown()
    finally:
        controller.stop()
    assert results == {KIM: None}
    ((options, rcpt, data),) = handler.messages
    assert [o for o in options if not o.startswith("SIZE=")] == ["SMTPUTF8"]
    assert rcpt == [KIM]
    head, body = data.split(b"\r\n\r\n", 1)
    assert f'To: "Kim, Jr." <{KIM}>'.encode() in head
    assert body.isascii() and b"Content-Transfer-Encoding: quoted-printable" in body  # the name, 7-bit safe

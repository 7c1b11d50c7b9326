"""Unsubscribe by mail: the message a mail client sends to the mailto: of List-Unsubscribe, read by
subscriptions.inbound and by `manage.py unsubscribe_mail` (a real subprocess, fed on standard input)."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import unquote

import pytest

from subscriptions.inbound import MAX_CANDIDATES, MAX_MESSAGE_BYTES, unsubscribe_by_mail
from subscriptions.models import ALL_BULK, Suppression
from subscriptions.tokens import make_token, unsubscribe_links
from tests.conftest import database_url

pytestmark = pytest.mark.django_db


def request(subject: str = "", body: str = "", *, sender: str = "ann@example.com") -> bytes:
    """The message a mail client writes for a mailto: link: To the mailbox, the link's subject, a body."""
    message = EmailMessage()
    message["From"] = Address(addr_spec=sender)
    message["To"] = "leave@example.org"
    message["Subject"] = subject
    message.set_content(body or "\n")
    return message.as_bytes()


def rows() -> list[tuple[str, str, str]]:
    return list(Suppression.objects.values_list("address", "list_name", "how"))


def test_the_subject_of_the_mailto_link_unsubscribes_once(settings):
    settings.UNSUBSCRIBE_MAILTO = "leave@example.org"
    links = unsubscribe_links(address="Ann@Example.com", list_name="newsletter")
    assert links.mailto is not None
    subject = unquote(links.mailto.partition("?subject=")[2])  # as the client decodes the mailto: (RFC 6068)

    outcome = unsubscribe_by_mail(request(subject))
    assert (outcome.created, outcome.summary()) == (True, "unsubscribed: ann@example.com from newsletter")
    assert rows() == [("ann@example.com", "newsletter", "mail")]

    again = unsubscribe_by_mail(request(subject))
    assert (again.created, again.summary()) == (False, "already unsubscribed: ann@example.com from newsletter")
    assert rows() == [("ann@example.com", "newsletter", "mail")]


@pytest.mark.parametrize(
    "subject",
    [
        "Re: unsubscribe {token}",
        "UNSUBSCRIBE {token} please",
        "unsubscribe {token} " + "x" * 120,  # long: the client folds it, the parser unfolds it
    ],
)
def test_the_token_is_found_in_a_subject_that_clients_changed(subject):
    token = make_token(address="bob@example.com", list_name="newsletter")
    assert unsubscribe_by_mail(request(subject.format(token=token))).created
    assert rows() == [("bob@example.com", "newsletter", "mail")]


def test_an_encoded_subject_and_a_token_in_the_body_only_both_work():
    token = make_token(address="cy@example.com", list_name="news")
    encoded = request(f"수신 거부 {token}")
    assert b"=?utf-8?" in encoded  # the subject went out RFC 2047-encoded
    assert unsubscribe_by_mail(encoded).created
    other = make_token(address="di@example.com", list_name=ALL_BULK)
    assert unsubscribe_by_mail(request("unsubscribe", f"Please take me off.\n\n{other}\n")).created
    assert sorted(rows()) == [("cy@example.com", "news", "mail"), ("di@example.com", "", "mail")]


def test_the_sender_does_not_matter_only_the_token_does():
    """The From header is not the credential: anyone can write it. A message from ann naming no token
    changes nothing; a token names its own address, whoever sends it."""
    assert unsubscribe_by_mail(request("unsubscribe me", "please", sender="ann@example.com")).target is None
    token = make_token(address="ed@example.com", list_name="news")
    assert unsubscribe_by_mail(request(f"unsubscribe {token}", sender="ann@example.com")).created
    assert rows() == [("ed@example.com", "news", "mail")]


def test_a_tampered_or_foreign_token_changes_nothing():
    token = make_token(address="fay@example.com", list_name="news")
    payload, _, signature = token.partition(":")
    forged = make_token(address="gus@example.com", list_name="news").partition(":")[0] + ":" + signature
    cut = f"{payload}:{signature[:-2]}"
    for subject in (f"unsubscribe {forged}", f"unsubscribe {cut}", "unsubscribe", ""):
        outcome = unsubscribe_by_mail(request(subject))
        assert outcome.target is None and outcome.summary().startswith("ignored: "), subject
    assert rows() == []


def test_the_search_is_bounded_in_candidates_and_size():
    good = make_token(address="hal@example.com", list_name="news")
    bad = make_token(address="x@example.com", list_name="news")[:-1] + "A"
    decoys = " ".join([bad] * MAX_CANDIDATES)
    assert unsubscribe_by_mail(request(f"unsubscribe {decoys} {good}")).target is None
    big = request(f"unsubscribe {good}", "x" * (MAX_MESSAGE_BYTES + 10))
    assert unsubscribe_by_mail(big).problem.startswith("message over")
    assert rows() == []
    assert unsubscribe_by_mail(request(f"unsubscribe {good}")).created


def test_an_address_todays_rules_refuse_is_reported_not_stored():
    """A token signed before today's address rules (here: an address over 254 characters) cannot be stored."""
    token = make_token(address="x" * 250 + "@example.com", list_name="news")
    outcome = unsubscribe_by_mail(request(f"unsubscribe {token}"))
    assert outcome.target is None and "valid email address" in outcome.problem
    assert rows() == []


@pytest.mark.django_db(transaction=True)
def test_the_command_reads_standard_input_and_says_what_it_did(unsubscribe_mail):
    token = make_token(address="ivy@example.com", list_name="news")
    done = unsubscribe_mail(request(f"unsubscribe {token}"), database=database_url())
    assert (done.returncode, done.stdout.decode().strip()) == (0, "unsubscribed: ivy@example.com from news")
    assert rows() == [("ivy@example.com", "news", "mail")]

    ignored = unsubscribe_mail(request("hello"), database=database_url())  # not a request: no bounce (exit 0)
    assert ignored.returncode == 0 and ignored.stdout.decode().startswith("ignored: "), ignored
    oversized = unsubscribe_mail(request("hello", "x" * (MAX_MESSAGE_BYTES * 3)), database=database_url())
    assert oversized.returncode == 0 and "message over" in oversized.stdout.decode(), oversized


def test_when_the_database_cannot_be_written_the_mail_server_is_told_to_retry(unsubscribe_mail, tmp_path):
    """Exit 75 (EX_TEMPFAIL): the mail server keeps the message and runs the command again later."""
    token = make_token(address="jo@example.com", list_name="news")
    missing = tmp_path / "no-such-directory" / "db.sqlite3"
    failed = unsubscribe_mail(request(f"unsubscribe {token}"), database=f"sqlite:///{missing}")
    assert failed.returncode == 75, failed
    assert b"temporary failure" in failed.stderr


def test_a_message_the_email_package_cannot_take_apart_is_ignored_not_retried():
    token = make_token(address="kim@example.com", list_name="news")
    broken = (
        b"From: a@example.com\r\nSubject: hello\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="no-such-charset"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b"%%% not base64 " + token.encode() + b"\r\n"
    )
    for raw in (b"\x00\xff\xfe garbage", broken):
        outcome = unsubscribe_by_mail(raw)
        assert outcome.target is None and outcome.summary().startswith("ignored: "), raw
    assert rows() == []

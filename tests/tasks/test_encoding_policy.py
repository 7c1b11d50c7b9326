"""The encoder's quick compat32 writes every header byte for byte as the stock compat32 does.

tasks.smtp.encoding writes a short plain-ASCII header without email.header's folding machinery.
These tests hold it to the stock policy: on header values drawn at random (seeded, so a failure
repeats) from alphabets that include the characters compat32 treats specially, and on whole
messages as reservemail builds them (long and non-ASCII subjects, display names, List-Unsubscribe).
"""

from __future__ import annotations

import random
import re
import string
from email.policy import compat32

import pytest
from django.core.mail import EmailMultiAlternatives

from tasks.smtp import encode
from tasks.smtp.encoding import _QUICK_COMPAT32

NAMES = ["To", "From", "Subject", "Message-ID", "Content-Type", "List-Unsubscribe", "X-A-Rather-Long-Header-Name"]
ALPHABETS = [
    string.ascii_letters + string.digits + " ;,:<>@=?\"()'.-_    ",
    " =?utf-8?q?abc?= ;,\t",
    string.printable,  # tabs, vertical tabs, form feeds, CR and LF: compat32 splits or refuses them
    "ab \t",
    "가나 ab",
]


def _fold(policy, name: str, value: str) -> bytes | str:  # noqa: ANN001 - an email policy
    try:
        return policy.fold_binary(name, value)
    except Exception as exc:  # noqa: BLE001 - the same error is part of the same behaviour
        return f"{type(exc).__name__}: {exc}"


def test_random_header_values_fold_exactly_as_compat32_folds_them() -> None:
    rng = random.Random(20261206)
    stock = compat32.clone(linesep="\r\n")
    quick = _QUICK_COMPAT32.clone(linesep="\r\n")
    quick_path = 0
    for _ in range(20_000):
        name = rng.choice(NAMES)
        alphabet = rng.choice(ALPHABETS)
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, rng.choice([12, 80, 200]))))
        assert _fold(quick, name, value) == _fold(stock, name, value), (name, value)
        quick_path += len(name) + 2 + len(value) <= 78 and value.strip() == value and value.isprintable()
    assert quick_path > 2_000  # the quick path itself was exercised, not only the fallback


def _message(subject: str, to: list[str], headers: dict[str, str]) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=subject,
        body="Hello,\n\n.a line starting with a dot\n" + "a long line " * 20 + "\n안녕하세요\n",
        from_email="Reservemail <noreply@example.com>",
        to=to,
        headers={"Date": "Sun, 06 Dec 2026 09:00:00 +0900", "Message-ID": "<fixed.1@example.com>", **headers},
    )
    message.attach_alternative("<p>Hello <b>there</b></p>", "text/html")
    return message


@pytest.mark.parametrize(
    ("subject", "to", "headers"),
    [
        ("Our 09:00 newsletter", ["a@example.com"], {}),
        ("A subject long enough that compat32 must fold it onto a second line, and then some more", ["b@x.org"], {}),
        ("주간 소식: 이번 주에 있었던 일", ["김철수 <kim@example.com>"], {}),
        ("Two  spaces and a trailing one ", ["a@example.com", "Bob Smith <bob@example.com>"], {}),
        (
            "Unsubscribe",
            ["c@example.com"],
            {
                "List-Unsubscribe": "<https://mail.example.com/unsubscribe/eyJhIjoxMjM0NTY3ODkwfQ:1abcdefghijklmnop/>, "
                "<mailto:unsubscribe@example.com?subject=unsubscribe>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        ),
    ],
    ids=["plain", "long-subject", "korean", "spaces", "list-unsubscribe"],
)
def test_a_whole_message_is_written_as_djangos_own_as_bytes_writes_it(subject, to, headers) -> None:  # noqa: ANN001
    message = _message(subject, to, headers)
    ours = encode(message)
    boundary = re.search(rb'boundary="([^"]+)"', ours)
    assert boundary is not None
    mime = message.message()
    mime.set_boundary(boundary.group(1).decode())
    assert ours == mime.as_bytes(linesep="\r\n")

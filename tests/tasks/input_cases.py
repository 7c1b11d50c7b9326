"""The classes of bad input every door (form, admin, API) must refuse, and the check that nothing happened.

Each door's module (test_input_form.py, test_input_admin.py, test_input_api.py) runs these
tables through its own door; the refusal itself lives in one place, tasks.validation.
"""

import json

from django.core import mail

from tasks.models import Delivery, Task
from tasks.validation import CONTEXT_MAX_DEPTH, MAX_SUBJECT_LENGTH

LONG_DOMAIN = ".".join(["d" * 63] * 3) + ".example"  # 199 characters: a valid domain
# (recipient as typed, a piece of the message the door must show)
BAD_ADDRESSES = [
    ('"r\u000bx"@example.com', "control character (U+000B)"),  # VT, quoted: passes Django's validate_email
    ("r\u000bx@example.com", "control character (U+000B)"),  # VT, unquoted
    ('"r\u000b\u000bx"@example.com', "control character (U+000B)"),  # two VTs
    ('"r\u000cx"@example.com', "control character (U+000C)"),  # FF
    ('"r\u001cx"@example.com', "control character (U+001C)"),  # FS
    ('"r\u0001x"@example.com', "control character (U+0001)"),  # SOH
    ('"r\u007fx"@example.com', "control character (U+007F)"),  # DEL
    ('"r\u0085x"@example.com', "control character (U+0085)"),  # C1 (NEL)
    ('"r\u009bx"@example.com', "control character (U+009B)"),  # C1 (CSI)
    ("Bob\u000b <bob@example.com>", "control character (U+000B)"),  # in the display name
    ("\u212aelvin@example.com", "SMTPUTF8"),  # Kelvin sign: Django's case-insensitive [A-Z] lets it through
    ("bj\u00f6rn@example.com", "SMTPUTF8"),
    ("x" * 65 + "@example.com", "at most 64 characters"),
    ("x" * 60 + "@" + LONG_DOMAIN, "at most 254 characters"),  # 260 characters in all
    ("a@b", "not a valid e-mail address"),
    ("Bob <not-an-address>", "not a valid e-mail address"),
]
BAD_ADDRESS_IDS = [
    "vt-quoted", "vt-unquoted", "two-vt", "ff", "fs", "soh", "del", "c1-nel", "c1-csi", "control-in-name",
    "kelvin", "non-ascii-local", "local-part-65", "address-260", "no-domain-dot", "name-with-bad-address",
]  # fmt: skip


def nested(depth, leaf=1):
    """An object ``depth`` levels deep: {"a": {"a": ... leaf}}."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json(depth):
    """JSON text nested ``depth`` levels, built as text (json.dumps itself would recurse)."""
    return '{"a":' * depth + "1" + "}" * depth


TOO_DEEP = nested(CONTEXT_MAX_DEPTH)  # as a value inside the context: one level more than allowed
BIG = "x" * (16 * 1024)
LONG_SUBJECT_VALUE = "x" * 1200  # no spaces: the relay would answer "500 Line too long"
# (context, a piece of the message); all representable in JSON.
BAD_CONTEXTS = [
    ({"name": TOO_DEEP}, f"at most {CONTEXT_MAX_DEPTH} levels"),
    ({"name": "A", "message": BIG}, "at most 16 KB"),
    ({"site_name": LONG_SUBJECT_VALUE}, f"at most {MAX_SUBJECT_LENGTH} are allowed"),
]
BAD_CONTEXT_IDS = ["too-deep", "too-big", "long-subject"]
# Numbers as written in JSON text that are not finite once read (NaN and Infinity are not even JSON).
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]
# Depths of a context written as JSON text: one past the limit, then what broke the stack before.
DEEP = [CONTEXT_MAX_DEPTH + 1, 40, 960, 1000, 5000, 100_000]


def with_number(context_json_key, number):
    """The JSON text of a context whose ``n`` is ``number`` as written (json.dumps cannot write NaN as given)."""
    return '{"name": "A", "' + context_json_key + '": ' + number + "}"


# Times typed without an offset, in the user's zone America/New_York.
NEW_YORK = "America/New_York"
DST_GAP = "2027-03-14T02:30"  # the clocks skip from 02:00 to 03:00
DST_AMBIGUOUS = "2027-11-07T01:30"  # 01:00-02:00 happens twice
# A date without a time of day: refused, not read as midnight in the user's zone.
DATE_ONLY = ["2027-01-10", "20270110", "2027-W02-7"]
DATE_ONLY_MESSAGE = "Give a time of day with the date"
BAD_OFFSETS = ["2027-01-10T10:00+14:60", "2027-01-10T10:00+15:00", "2027-01-10T10:00-14:30", "2027-01-10T10:00+09:75"]

NAMED = [
    ("Name <a@example.com>", {"address": "a@example.com", "name": "Name"}, "Name <a@example.com>"),
    ('"Name, Jr." <a@example.com>', {"address": "a@example.com", "name": "Name, Jr."}, '"Name, Jr." <a@example.com>'),
    ("밥 <bob@example.com>", {"address": "bob@example.com", "name": "밥"}, "=?utf-8?b?67Cl?= <bob@example.com>"),
]
NAMED_IDS = ["plain-name", "quoted-name-with-comma", "non-ascii-name"]


def dumps(value):
    return json.dumps(value, ensure_ascii=False)


def assert_nothing_happened(redis_conn, callbacks=()):
    """No task, no delivery, no job or key in Redis, no on-commit call, no mail."""
    assert Task.objects.count() == 0
    assert Delivery.objects.count() == 0
    assert redis_conn.keys("rq:*") == []
    assert list(callbacks) == []
    assert mail.outbox == []


def sent_messages():
    """Run the queued jobs in this process (as tests/tasks/test_jobs.py does) and return what went out."""
    import django_rq

    django_rq.get_worker("default").work(burst=True)
    return [message.message() for message in mail.outbox]

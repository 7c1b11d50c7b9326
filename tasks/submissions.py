"""One send per filled-in form: a double click, or the same POST sent again, gets the first answer.

The mail form carries a random ``submission`` value, new with each empty form and kept while the
same form is shown again (errors, preview, test). Sending runs through the API's idempotency
store (tasks.services.run_idempotent) under a key made of that value and of what was filled in:
the second of two identical POSTs (a double click, a browser that resends) creates nothing and is
told which send the first one made; a form changed after going back in the browser is a new send.

"Send a test to me" is guarded the same way under a value of its own, ``test_submission``, which
is new on every page shown: the twin POSTs of one click burst (or a browser's resend) send one
test, while clicking again on the page that answered sends another, as the user meant to.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import QueryDict
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from reservemail.exceptions import ReservemailError
from tasks import services
from tasks.compose import field_of
from tasks.mail import MailSpec

SUBMISSION_PATTERN = re.compile(r"[0-9a-f]{32}")
# What may differ between twin POSTs of one form (the test value is new on each page shown).
NOT_CONTENT = {"csrfmiddlewaretoken", "submission", "test_submission", "action"}


SEND_KIND = "mail-form"  # the kinds of POST a submission value guards: a send, reserve or series
TEST_KIND = "mail-test"  # and a test to the signed-in user
TEST_ALREADY_SENT = gettext_lazy("This test was already sent; nothing more was sent.")


def new_submission() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SubmissionKey:
    """What run_idempotent needs for one POST of the form: its key, and its fingerprint (64 hex digits)."""

    key: str
    fingerprint: str


def submission_key(submission: str, data: QueryDict, *, kind: str = SEND_KIND) -> SubmissionKey | None:
    """The idempotency key of this POST of the form (``<kind>:<submission>:<digest of its content>``).

    None when the POST carries no well-formed submission value (a page from before it existed):
    that send is not guarded. The fingerprint is the content's whole digest, so a key always comes
    with the same fingerprint.
    """
    if not SUBMISSION_PATTERN.fullmatch(submission):
        return None
    content = sorted((name, data.getlist(name)) for name in data if name not in NOT_CONTENT)
    digest = hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()
    return SubmissionKey(key=f"{kind}:{submission}:{digest[:40]}", fingerprint=digest)


def send_once(
    *,
    user: AbstractBaseUser,
    submission: str,
    data: QueryDict,
    handler: Callable[[], tuple[int, Any]],
    kind: str = SEND_KIND,
) -> services.Outcome:
    """Run ``handler`` (which makes the send) once for this filled-in form; its answer, and whether it was replayed.

    A POST without a well-formed submission value runs ``handler`` unguarded (see submission_key).
    """
    once = submission_key(submission, data, kind=kind)
    if once is None:
        status, body = handler()
        return services.Outcome(status=status, body=body, replayed=False)
    return services.run_idempotent(user=user, key=once.key, fingerprint=once.fingerprint, handler=handler)


def send_test_once(
    *, user: AbstractBaseUser, cleaned: dict[str, Any], submission: str, data: QueryDict
) -> services.Outcome:
    """Send ``user`` a test of the mail a form cleaned (its chosen recipient's copy), once per page shown.

    The answer's body says which test went out (``kind``, ``id``, ``message``); a replayed twin
    sends nothing. Raises what services.send_test raises.
    """

    def make() -> tuple[int, dict[str, Any]]:
        mail = MailSpec(template=cleaned["template"], recipients=cleaned["recipients"], context=cleaned["context"])
        task = services.send_test(
            owner=user, mail=mail, recipient=cleaned.get("preview_recipient"), description=cleaned["description"]
        )
        address = getattr(user, "email", "")
        message = _("Test #%(id)s is being sent to %(address)s.") % {"id": task.pk, "address": address}
        return 201, {"kind": "test", "id": task.pk, "message": message}

    return send_once(user=user, submission=submission, data=data, handler=make, kind=TEST_KIND)


def send_test_from_form(form: forms.Form, *, user: AbstractBaseUser, post: QueryDict) -> SendTestAnswer:
    """Send ``user`` a test of a valid mail form (send_test_once) and say what to tell them.

    The one "Send a test to me" of the mail page and the admin's form: a refusal is put on the form
    beside its field (the form stays filled in) and told as an error; nothing was sent.
    """
    try:
        outcome = send_test_once(
            user=user, cleaned=form.cleaned_data, submission=post.get("test_submission", ""), data=post
        )
    except ReservemailError as exc:
        form.add_error(field_of(form, exc), exc.message)
        return SendTestAnswer(None, messages.ERROR, _("The test was not sent: %(reason)s") % {"reason": exc.message})
    return SendTestAnswer(outcome, *told(outcome, already=str(TEST_ALREADY_SENT)))


@dataclass(frozen=True)
class SendTestAnswer:
    """What a test send did (``outcome``, None when refused) and the message for the user (level, text)."""

    outcome: services.Outcome | None
    level: int
    text: str


def told(outcome: services.Outcome, *, already: str) -> tuple[int, str]:
    """What to tell the user of a send, as (message level, text); a replayed twin says ``already`` first."""
    if outcome.replayed:
        return messages.INFO, f"{already} {outcome.body['message']}"
    return messages.SUCCESS, str(outcome.body["message"])

"""Property-based run of schemathesis over the whole API, in-process against the WSGI app.

Each operation of /api/schema/ gets a bounded number of generated requests (valid and invalid
data, signed in with a token) that really commit: sends are created, canceled and moved, and
their jobs go to the test Redis. Every response must conform to the schema (status code,
body, headers) and none may be a 5xx.
"""

import os
from datetime import timedelta

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from tasks import services
from tasks.mail import MailSpec

# Per operation; about 20 s for the whole run. CI is derandomized (the same cases every run);
# API_FUZZ_EXAMPLES=500 API_FUZZ_RANDOM=1 bin/test tests/test_api_fuzz.py explores further.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "40"))
DERANDOMIZE = os.environ.get("API_FUZZ_RANDOM", "") != "1"


# Invalid data must be refused with one of these (schemathesis's list, and 413: a generated body over
# DATA_UPLOAD_MAX_MEMORY_SIZE is refused before it is parsed, which is a refusal too). 5xx stays
# listed here because the test asserts "never a 5xx" itself, with the response text.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}})

# Loaded at import: the schema endpoint is public and reads no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), config=CONFIG)


@pytest.fixture
def fuzz_token(transactional_db, django_user_model, settings):
    settings.API_CREATE_RATE = "100000/min"
    settings.API_DAILY_SEND_QUOTA = 0
    owner = django_user_model.objects.create_user(username="fuzz", password="fuzz-pass-123")
    # Something for the object endpoints to find, besides the ids they invent.
    mail = MailSpec(template="welcome", recipients=("a@example.com",), context={})
    for minutes in (10, 20, 30):
        services.reserve_task(
            owner=owner, scheduled_at=timezone.now() + timedelta(minutes=minutes), mail=mail, description="x"
        )
    return Token.objects.create(user=owner).key


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema_and_never_errors(case, fuzz_token):
    # positive_data_acceptance is left out on purpose: schema-valid input is still refused with
    # 400 when the services say no (unknown credentials, an address that is not one, a time
    # outside the reservation window), and that is the behaviour the other tests pin down.
    response = case.call_and_validate(
        headers={"Authorization": f"Token {fuzz_token}"}, excluded_checks=[positive_data_acceptance]
    )
    assert response.status_code < 500, response.text


def test_an_oversized_body_counts_as_refused():
    """The fuzz run's own settings: 413 (DATA_UPLOAD_MAX_MEMORY_SIZE) is a refusal of invalid data."""
    operation = schema["/api/tasks/"]["POST"]
    expected = schema.config.checks_config_for(operation=operation, phase="fuzzing").negative_data_rejection
    assert "413" in expected.expected_statuses
    assert "400" in expected.expected_statuses


# --- deeply nested and non-finite bodies, for every operation that takes one -----------------------
# Hypothesis seldom builds JSON more than a few levels deep, and never NaN (not JSON) or 1e400 (a
# JSON number that overflows): these are the inputs that once ended in RecursionError or
# IntegrityError. Every write operation of the schema gets each of them, as the whole body and as
# the value of each of its fields; the answer must be a 4xx with a JSON body.

DEPTHS = [33, 1000, 100_000]
ODD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]


def _deep(depth, kind):
    return '{"a":' * depth + "1" + "}" * depth if kind == "object" else "[" * depth + "]" * depth


def _write_operations():
    """(path, method, field names of its JSON body) for every write operation of the schema (cancel has none)."""
    raw = schema.raw_schema
    found = []
    for path, item in raw["paths"].items():
        for method, operation in item.items():
            if method not in ("post", "patch", "put"):
                continue
            content = operation.get("requestBody", {}).get("content", {}).get("application/json", {"schema": {}})
            ref = content["schema"].get("$ref", "")
            component = raw["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
            found.append((path, method, sorted(component.get("properties", {}))))
    return found


WRITE_OPERATIONS = _write_operations()


def _bodies(fields):
    """(body, must it be refused): a finite 1e400 is still JSON, which an operation without a body ignores."""
    for depth in DEPTHS:
        for kind in ("object", "array"):
            yield _deep(depth, kind), True
            for field in fields:
                yield f'{{"{field}": {_deep(depth, kind)}}}', True
    for number in ODD_NUMBERS:
        yield f'{{"n": {number}}}', bool(fields) or not number[-1].isdigit()  # NaN, Infinity: not JSON
        for field in fields:
            yield f'{{"{field}": {number}}}', True
            yield f'{{"{field}": {{"n": {number}}}}}', True


@pytest.mark.parametrize(
    ("path", "method", "fields"), WRITE_OPERATIONS, ids=[f"{m} {p}" for p, m, _ in WRITE_OPERATIONS]
)
def test_deep_and_non_finite_bodies_are_refused_never_a_5xx(path, method, fields, fuzz_token):
    from django.test import Client

    from tasks.models import Task

    task_id = Task.objects.order_by("pk").values_list("pk", flat=True).first()
    url = path.replace("{id}", str(task_id))
    client = Client(HTTP_AUTHORIZATION=f"Token {fuzz_token}")
    before = Task.objects.count()
    for number, (body, refused) in enumerate(_bodies(fields)):
        # With an Idempotency-Key the body is read even where the operation takes none (the fingerprint).
        headers = {"HTTP_IDEMPOTENCY_KEY": f"deep-{number}"} if method == "post" else {}
        response = getattr(client, method)(url, body, content_type="application/json", **headers)
        assert response.status_code < 500, (body[:80], response.status_code, response.content[:300])
        assert response.status_code >= 400 or not refused, (body[:80], response.status_code)
        assert response["Content-Type"].startswith("application/json"), body[:80]
    assert Task.objects.count() == before, "nothing was created"

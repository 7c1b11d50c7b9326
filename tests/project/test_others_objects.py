"""Every route that names a task, a delivery or a series, called by another signed-in user: 404, and nothing changes.

A sweep over the URLconf rather than a list, so a route added later is covered or makes this test
say which parameter it does not know yet. Pages are called with a session, the API with a token,
with every method each door takes; the owner's rows and queue jobs are compared before and after.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from series.models import Series
from series.services import create_series
from tasks import services
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.project.routes import all_routes

pytestmark = pytest.mark.django_db

MAIL = MailSpec(template="welcome", recipients=("a@example.com",), context={"name": "A"})
NOT_SWEPT = (
    "admin/",  # staff only: every object is theirs to see
    "api/^suppressions/",  # staff only, and not owned by a user
    "api/^(?P<rest>.*)$",  # the API's own 404 for unknown paths
    "u/",  # unsubscribe links: a signed token, no owner
)
SEOUL = ZoneInfo("Asia/Seoul")  # the users' zone here (the site's default)


def bodies(tomorrow: datetime) -> tuple[dict, dict]:
    """A well-formed body (the service is reached) and an empty one (the form or serializer refuses it first)."""
    well_formed = {
        "scheduled_at": tomorrow.astimezone(SEOUL).strftime("%Y-%m-%dT%H:%M"),  # as the picker sends it
        "description": "mine now",
        "recipients": "c@example.com",
        "template": "welcome",
        "rule": "FREQ=WEEKLY",
    }
    return well_formed, {}


PAGE_METHODS = ("get", "post")
API_METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def owned(user, redis_conn, django_capture_on_commit_callbacks):
    """The owner's reservation (a queue job), a finished send with its delivery, and an active series."""
    with django_capture_on_commit_callbacks(execute=True):
        reserved = services.reserve_task(
            owner=user, scheduled_at=timezone.now() + timedelta(hours=2), mail=MAIL, description="reserved"
        )
        series = create_series(
            owner=user,
            mail=MAIL,
            description="series",
            rule="FREQ=DAILY",
            zone="Asia/Seoul",
            start_at=timezone.now() + timedelta(hours=3),
        )
    finished = Task.objects.create(
        owner=user, template="welcome", recipients=["b@example.com"], description="done", status="finished"
    )
    delivery = Delivery.objects.create(
        task=finished, address="b@example.com", status="sent", message_id="<x@example.com>", sent_at=timezone.now()
    )
    return {"reserved": reserved, "finished": finished, "delivery": delivery, "series": series}


def _state(redis_conn) -> tuple:  # noqa: ANN001
    rows = (
        [model_to_dict(task) for task in Task.objects.order_by("pk")],
        [model_to_dict(delivery) for delivery in Delivery.objects.order_by("pk")],
        [model_to_dict(series) for series in Series.objects.order_by("pk")],
    )
    return rows, sorted(redis_conn.keys("rq:job:*"))


def _filled(route: str, owned: dict) -> list[str]:
    """The concrete paths of ``route`` for the owner's objects; fails on a parameter the sweep does not know."""
    path = route.replace("^", "").replace("$", "")
    api_pk = {"api/tasks/": ["reserved", "finished"], "api/series/": ["series"]}
    pks = next((names for prefix, names in api_pk.items() if path.startswith(prefix)), None)
    tasks = ["finished"] if "<int:delivery_id>" in path else ["reserved", "finished"]
    found = []
    for task in tasks if "<int:task_id>" in path else [None]:
        for pk in pks if "(?P<pk>" in path else [None]:
            concrete = path
            if task is not None:
                concrete = concrete.replace("<int:task_id>", str(owned[task].pk))
            if pk is not None:
                concrete = re.sub(r"\(\?P<pk>[^)]*\)", str(owned[pk].pk), concrete)
            concrete = concrete.replace("<int:delivery_id>", str(owned["delivery"].pk))
            concrete = concrete.replace("<int:series_id>", str(owned["series"].pk))
            for action in ("pause", "resume", "skip", "end") if "<str:action>" in concrete else [None]:
                found.append("/" + (concrete.replace("<str:action>", action) if action else concrete))
    unknown = [p for p in found if "<" in p or "(?P" in p]
    assert unknown == [], f"a route with a parameter this sweep does not fill yet: {route}"
    return found


def test_another_users_objects_answer_404_on_every_route_and_stay_as_they_were(user, other_user, owned, redis_conn):
    routes = sorted(
        {
            r
            for r in all_routes()
            if ("<" in r or "(?P" in r) and "drf_format_suffix" not in r and not r.startswith(NOT_SWEPT)
        }
    )
    paths = [path for route in routes for path in _filled(route, owned)]
    assert len(paths) >= 15, paths  # the pages' and the API's task, delivery and series routes
    before = _state(redis_conn)
    page = Client()
    page.force_login(other_user)
    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    answers = {}
    tomorrow = timezone.now() + timedelta(days=1)
    for path in paths:
        client, methods = (api, API_METHODS) if path.startswith("/api/") else (page, PAGE_METHODS)
        for method in methods:
            for body in bodies(tomorrow):
                if method == "get":
                    response = client.get(path)
                elif path.startswith("/api/"):
                    response = getattr(client, method)(path, json.dumps(body), content_type="application/json")
                else:
                    response = client.post(path, body)
                answers[(method.upper(), path, bool(body))] = response.status_code
    wrong = {call: status for call, status in answers.items() if status not in (404, 405)}
    assert wrong == {}, "another user's object must be missing (404), whatever the method"
    assert any(status == 404 for (method, *_), status in answers.items() if method == "POST")
    assert _state(redis_conn) == before, "a call by another user changed the owner's rows or jobs"
    # The control: the same well-formed body from the owner is taken, so the 404s above were not the input's.
    mine = Client()
    mine.force_login(user)
    assert mine.post(f"/tasks/{owned['reserved'].pk}/reschedule/", bodies(tomorrow)[0]).status_code == 302
    assert Task.objects.get(pk=owned["reserved"].pk).reserved_at == tomorrow.replace(second=0, microsecond=0)

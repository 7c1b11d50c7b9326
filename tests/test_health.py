"""`manage.py health --liveness`, used by the compose healthchecks: database and Redis answer."""

import io

import pytest
from django.core.management import CommandError, call_command

from tests.harness import free_port


@pytest.mark.django_db
def test_health_is_ok_when_database_and_redis_answer():
    out = io.StringIO()
    call_command("health", "--liveness", stdout=out)
    assert out.getvalue() == "ok: database and redis answer\n"


@pytest.mark.django_db
def test_health_fails_when_redis_does_not_answer(settings):
    unused = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {**config, "URL": unused} for name, config in settings.RQ_QUEUES.items()}
    with pytest.raises(CommandError, match="^unhealthy: redis: no answer$"):
        call_command("health", "--liveness")

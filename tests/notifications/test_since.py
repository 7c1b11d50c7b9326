"""``since=`` on both poll doors: one parser (notifications.query.parse_since), the same answers."""

import pytest
from rest_framework.test import APIClient

from notifications.query import parse_since

pytestmark = pytest.mark.django_db

MESSAGE = "since must be a number of seconds since the epoch, 0 or more."
BAD = ["NaN", "nan", "inf", "-inf", "Infinity", "1e309", "-1", "-0.5", "abc", "1" * 100, "0x10"]


@pytest.fixture
def doors(user):
    page = APIClient()
    page.force_login(user)
    return {"page": ("/notifications/", page), "api": ("/api/notifications/", page)}


@pytest.mark.parametrize("since", BAD)
@pytest.mark.parametrize("door", ["page", "api"])
def test_bad_since_is_the_same_400_on_both_doors(doors, door, since):
    path, client = doors[door]
    response = client.get(path, {"since": since})
    assert (response.status_code, response.json()) == (400, {"since": [MESSAGE]})


@pytest.mark.parametrize("door", ["page", "api"])
def test_blank_since_is_the_same_400_on_both_doors(doors, door):
    path, client = doors[door]
    response = client.get(path, {"since": ""})
    assert (response.status_code, response.json()) == (400, {"since": ["This field may not be blank."]})


@pytest.mark.parametrize("since", ["0", "1.5", "1779944591.402113", "1e9"])
@pytest.mark.parametrize("door", ["page", "api"])
def test_good_since_is_200_on_both_doors(doors, door, since):
    path, client = doors[door]
    assert client.get(path, {"since": since}).status_code == 200


def test_parse_since_reads_absent_as_zero():
    assert parse_since(None) == 0.0
    assert parse_since(" 12.5 ") == 12.5

"""The per-user time zone: stored per user, cached in the session, used by forms and pages."""

import pytest

from preferences.models import UserPreference
from preferences.services import PreferenceError, set_time_zone

pytestmark = pytest.mark.django_db


def test_settings_page_saves_the_zone_and_pages_use_it(client, user):
    client.force_login(user)
    assert "In your time zone, Asia/Seoul (UTC+09:00)." in client.get("/").content.decode()
    response = client.post("/settings/", {"time_zone": "Europe/Lisbon"}, follow=True)
    assert "Your settings were saved." in response.content.decode()
    assert UserPreference.objects.get(user=user).time_zone == "Europe/Lisbon"
    assert "In your time zone, Europe/Lisbon (UTC+" in client.get("/").content.decode()


def test_the_zone_follows_the_user_into_a_new_session(client, user):
    set_time_zone(user=user, time_zone="America/Sao_Paulo")
    client.force_login(user)
    assert "In your time zone, America/Sao_Paulo (UTC-03:00)." in client.get("/").content.decode()


def test_empty_zone_means_the_site_default(client, user):
    set_time_zone(user=user, time_zone="UTC")
    client.force_login(user)
    client.post("/settings/", {"time_zone": ""})
    assert UserPreference.objects.get(user=user).time_zone == ""
    assert "Asia/Seoul (UTC+09:00)" in client.get("/").content.decode()


def test_an_unknown_zone_is_refused_next_to_the_field(client, user):
    client.force_login(user)
    response = client.post("/settings/", {"time_zone": "Mars/Olympus"})
    assert response.status_code == 200
    assert "Select a valid choice. Mars/Olympus is not one of the available choices." in response.content.decode()
    assert not UserPreference.objects.filter(user=user).exists()
    with pytest.raises(PreferenceError, match="Unknown time zone “Mars/Olympus”."):
        set_time_zone(user=user, time_zone="Mars/Olympus")


@pytest.mark.parametrize("name", ["localtime", "Factory"])
def test_a_zone_file_that_names_no_place_is_not_offered_nor_taken(client, user, name):
    """``localtime`` follows the server's own setting and ``Factory`` is tzdata's placeholder: not a user's zone."""
    client.force_login(user)
    assert f'value="{name}"' not in client.get("/settings/").content.decode()
    response = client.post("/settings/", {"time_zone": name})
    assert f"{name} is not one of the available choices." in response.content.decode()
    with pytest.raises(PreferenceError, match="Unknown time zone"):
        set_time_zone(user=user, time_zone=name)
    assert not UserPreference.objects.filter(user=user).exists()


def test_settings_page_needs_sign_in(client):
    assert client.get("/settings/").status_code == 302

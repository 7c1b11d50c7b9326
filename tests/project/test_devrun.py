"""bin/run's environment: what every process it starts is given."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEVRUN = Path(__file__).resolve().parents[2] / "bin" / "devrun.py"


def load_devrun(monkeypatch, port: str):
    monkeypatch.setenv("PORT", port)
    spec = importlib.util.spec_from_file_location("devrun_under_test", DEVRUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unsubscribe_links_point_at_the_port_it_serves(monkeypatch):
    devrun = load_devrun(monkeypatch, "8101")
    env = devrun.base_env({"PATH": "/usr/bin"})
    assert env["SITE_URL"] == "http://127.0.0.1:8101"
    assert env["DJANGO_SETTINGS_MODULE"] == "reservemail.settings"


def test_a_site_url_given_is_kept(monkeypatch):
    devrun = load_devrun(monkeypatch, "8101")
    assert devrun.base_env({"SITE_URL": "https://mail.example.kr"})["SITE_URL"] == "https://mail.example.kr"

"""Test settings: the project settings with test concerns overridden.

The Redis URL is replaced at run time by tests/conftest.py, which starts its own redis-server on
a free loopback port. The SQLite test database is a file so worker subprocesses can share it.
"""

import os

os.environ.setdefault("RESERVEMAIL_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test"))
os.environ.setdefault("TASK_RETRY_INTERVALS", "1,1,2")

from reservemail.settings import *  # noqa: E402, F403
from reservemail.settings import DATABASES, VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = os.environ.get("TEST_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
LANGUAGE_CODE = "en"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
VAR_DIR.mkdir(parents=True, exist_ok=True)
# WhiteNoise warns (an error under pytest) when STATIC_ROOT is missing; tests never collect static.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

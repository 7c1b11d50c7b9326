"""Settings for reservemail, read from the environment with local defaults.

Defaults run everything on one machine: a SQLite file under var/, Redis on 127.0.0.1:6379,
and mail written to files under var/mail (nothing leaves the machine). Set DATABASE_URL,
REDIS_URL and EMAIL_HOST (or EMAIL_URL) to use real services.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from reservemail.redisconf import rq_connection

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RESERVEMAIL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "reservemail.apps.AdminConfig",  # django.contrib.admin with the project's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "axes",
    "tasks",
    "notifications",
    "preferences",
    "subscriptions",
    "series",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "reservemail.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "reservemail.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the 429 page (reservemail.signin).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "reservemail.urls"
WSGI_APPLICATION = "reservemail.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notifications.context_processors.tasks_in_progress",
            ],
        },
    },
]

# SQLite is the embedded default. IMMEDIATE transactions take the write lock at BEGIN, so a
# read-modify-write inside atomic() is safe even though SQLite ignores select_for_update().
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out account or address before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tasks:mail"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "ko")
LANGUAGES = [("ko", _("Korean")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Seoul")

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves the page's own scripts and styles (nothing comes from a CDN), also when
# collectstatic has not run: it finds the few files under static/ once, at start.
WHITENOISE_USE_FINDERS = True

# --- Redis and RQ -------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_SOCKET_TIMEOUT = float(os.environ.get("REDIS_SOCKET_TIMEOUT", "3"))
# Redis Sentinel: REDIS_SENTINELS="host:port,host:port" finds the master REDIS_SENTINEL_MASTER;
# REDIS_URL then only gives the master's database number and credentials.
REDIS_SENTINELS = os.environ.get("REDIS_SENTINELS", "")
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "mymaster")
_redis_queue = {
    **rq_connection(
        redis_url=REDIS_URL,
        sentinels=REDIS_SENTINELS,
        master_name=REDIS_SENTINEL_MASTER,
        sentinel_password=os.environ.get("REDIS_SENTINEL_PASSWORD", ""),
        socket_timeout=REDIS_SOCKET_TIMEOUT,
    ),
    "DEFAULT_TIMEOUT": env_int("RQ_DEFAULT_TIMEOUT", 3600),
}
RQ_QUEUES = {name: dict(_redis_queue) for name in ("high", "default", "low")}
# Our services already call the queue from transaction.on_commit(); the scheduler module asks
# for commit_mode="auto" explicitly. This global mode only affects code outside our services.
RQ = {"COMMIT_MODE": "on_db_commit", "WORKER_CLASS": "tasks.worker.MailWorker"}
WORKER_MAINTENANCE_INTERVAL = env_int("WORKER_MAINTENANCE_INTERVAL", 5)  # seconds
RQ_SHOW_ADMIN_LINK = True

# --- Reservations ---------------------------------------------------------------------------
RESERVATION_MIN_LEAD = env_int("RESERVATION_MIN_LEAD", 60)  # seconds
RESERVATION_MAX_HORIZON = env_int("RESERVATION_MAX_HORIZON", 365 * 24 * 3600)  # seconds
TASK_RETRY_INTERVALS = [int(x) for x in env_list("TASK_RETRY_INTERVALS", "10,60,300")]
TASK_PROGRESS_INTERVAL = float(os.environ.get("TASK_PROGRESS_INTERVAL", "0.5"))  # seconds
TASK_MAX_RECIPIENTS = env_int("TASK_MAX_RECIPIENTS", 10000)

# --- Notifications and the live page ---------------------------------------------------------
NOTIFICATION_GRACE_SECONDS = env_int("NOTIFICATION_GRACE_SECONDS", 60)  # ended entries stay this long
NOTIFICATION_POLL_SECONDS = float(os.environ.get("NOTIFICATION_POLL_SECONDS", "3"))  # the page's poll interval

# --- Speed (README, Performance) ------------------------------------------------------------
# Workers claim due recipients in slices: a tenth of the due backlog, at most this many seconds of
# their own sending (the measured rate), within MIN..MAX. Every worker takes part in a burst, and a
# frozen one holds at most one slice until its lease (HEARTBEAT_TIMEOUT) runs out (tasks.delivery.policy).
DELIVERY_SLICE_SECONDS = float(os.environ.get("DELIVERY_SLICE_SECONDS", "0.5"))
DELIVERY_SLICE_MIN = env_int("DELIVERY_SLICE_MIN", 4)
DELIVERY_SLICE_MAX = env_int("DELIVERY_SLICE_MAX", 250)
# Render and encode the next mail while the relay answers the current one (tasks.smtp.Outbox, in
# the worker's one thread); 0 = one after the other. "auto", the old default, means on.
MAIL_SEND_OVERLAP = os.environ.get("MAIL_SEND_OVERLAP", "").strip().lower() == "auto" or env_bool(
    "MAIL_SEND_OVERLAP", True
)
# A job waiting for its reservation's due time renders and encodes the messages due by then, at
# most DELIVERY_PREPARE_MAX per worker process (tasks.delivery.prepared). auto: when this host runs
# at least as many workers as it has cores (tasks.delivery.policy.prepare_wanted); on; off.
DELIVERY_PREPARE = os.environ.get("DELIVERY_PREPARE", "auto")
DELIVERY_PREPARE_MAX = env_int("DELIVERY_PREPARE_MAX", 2000)
# RQ keeps whole-second due times and polls them; release a job this many seconds (plus the
# fraction) before its due time, and let the job wait for the exact instant: never early, not late.
# -1 releases at the due time rounded up (RQ's plain behaviour, for comparison).
JOB_RELEASE_LEAD = float(os.environ.get("JOB_RELEASE_LEAD", "1.0"))
# How often the RQ scheduler process moves due jobs to their queue (RQ's default is 1 s).
SCHEDULER_INTERVAL = float(os.environ.get("SCHEDULER_INTERVAL", "0.2"))

# --- Reconciler and health (the database is the truth; Redis only delivers) -----------------
RECONCILE_INTERVAL = env_int("RECONCILE_INTERVAL", 10)  # seconds between worker-side reconcile runs
# Seconds ahead a worker's pass looks at reservations (manage.py reconcile_tasks looks at all): a pass
# costs what is due soon, not every reservation months ahead; a later one's lost job is re-created
# once it comes this close.
RECONCILE_HORIZON = env_int("RECONCILE_HORIZON", 600)
HEARTBEAT_TIMEOUT = env_int("HEARTBEAT_TIMEOUT", 120)  # a RUNNING task silent this long lost its worker
MISSED_GRACE_MINUTES = env_int("MISSED_GRACE_MINUTES", 60)  # send a late reservation if at most this late
OVERDUE_GRACE_SECONDS = env_int("OVERDUE_GRACE_SECONDS", 30)  # health: reserved and due longer ago is overdue
RELEASE_OVERDUE_SECONDS = env_int("RELEASE_OVERDUE_SECONDS", 3)  # reconciler releases jobs the scheduler left

# --- Mail -------------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "reservemail <noreply@localhost>")
EMAIL_URL = os.environ.get("EMAIL_URL", "")
if EMAIL_URL:
    _mail = urlparse(EMAIL_URL)
    os.environ.setdefault("EMAIL_HOST", _mail.hostname or "")
    os.environ.setdefault("EMAIL_PORT", str(_mail.port or 25))
    os.environ.setdefault("EMAIL_HOST_USER", unquote(_mail.username or ""))
    os.environ.setdefault("EMAIL_HOST_PASSWORD", unquote(_mail.password or ""))
    os.environ.setdefault("EMAIL_USE_TLS", "1" if _mail.scheme in {"smtp+tls", "submission"} else "0")
    os.environ.setdefault("EMAIL_USE_SSL", "1" if _mail.scheme == "smtps" else "0")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
# Send MAIL FROM, RCPT TO and DATA as one group where the relay announces PIPELINING (RFC 2920; tasks.smtp.transaction).
EMAIL_PIPELINING = env_bool("EMAIL_PIPELINING", True)
# TLS to the relay (STARTTLS with EMAIL_USE_TLS / smtp+tls://, implicit TLS with EMAIL_USE_SSL / smtps://):
# EMAIL_SSL_CAFILE is a PEM bundle trusted in addition to the system's CAs (a relay with a private CA);
# EMAIL_SSL_CERTFILE / EMAIL_SSL_KEYFILE a client certificate, for relays that ask for one (tasks.relay).
EMAIL_SSL_CAFILE = os.environ.get("EMAIL_SSL_CAFILE", "")
EMAIL_SSL_CERTFILE = os.environ.get("EMAIL_SSL_CERTFILE") or None
EMAIL_SSL_KEYFILE = os.environ.get("EMAIL_SSL_KEYFILE") or None
# A worker closes (QUIT) its relay connection after this many idle seconds, below the usual 300 s
# server timeout, and checks (NOOP) a connection idle for more than EMAIL_NOOP_SECONDS before reusing it.
EMAIL_IDLE_SECONDS = float(os.environ.get("EMAIL_IDLE_SECONDS", "60"))
EMAIL_NOOP_SECONDS = float(os.environ.get("EMAIL_NOOP_SECONDS", "5"))
# The relay takes internationalised addresses (SMTPUTF8, RFC 6531): UTF-8 before the @ is accepted
# in every door and sent with SMTPUTF8 (reservemail.addresses, tasks.smtp); off, such addresses are refused.
EMAIL_SMTPUTF8 = env_bool("EMAIL_SMTPUTF8", False)
EMAIL_FILE_PATH = Path(os.environ.get("EMAIL_FILE_PATH", VAR_DIR / "mail"))
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "tasks.relay.RelayBackend" if EMAIL_HOST else "django.core.mail.backends.filebased.EmailBackend",
)

# --- REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "reservemail.authentication.TokenOrBearerAuthentication",  # `Token <key>` or `Bearer <key>`
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [  # DRF's, with JSON that can quote a lone surrogate back (as an escape)
        "reservemail.renderers.SafeJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [  # DRF's, with JSON that answers 400 (not 500) to input of any depth
        "reservemail.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "reservemail.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
}
SPECTACULAR_SETTINGS = {"TITLE": "reservemail API", "VERSION": "1.0.0", "SERVE_INCLUDE_SCHEMA": False}

# --- API limits and docs (issue 4) ----------------------------------------------------------
# Per-user rate of POST /api/tasks/ (DRF rate syntax: N/sec|min|hour|day). DRF throttles keep
# their counters in the default cache: Django's per-process LocMemCache unless CACHES says else.
API_CREATE_RATE = os.environ.get("API_CREATE_RATE", "60/min")
# Sends (tasks) a user may create in any rolling 24 hours through the API; 0 turns it off.
API_DAILY_SEND_QUOTA = env_int("API_DAILY_SEND_QUOTA", 500)
IDEMPOTENCY_KEY_TTL = env_int("IDEMPOTENCY_KEY_TTL", 24 * 3600)  # seconds
SPECTACULAR_SETTINGS.update(
    {
        "DESCRIPTION": "Send templated e-mail now or reserve it for later; cancel or move it in time.",
        "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: the docs work offline
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        # Swagger UI's validator badge (an image from the validator's site, for any host but localhost) is drawn
        # by the standalone layout only, not by drf-spectacular's BaseLayout; off in case the layout changes.
        "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
        "COMPONENT_SPLIT_REQUEST": True,
        "ENUM_NAME_OVERRIDES": {
            "TaskStatusEnum": "tasks.models.Task.Status",
            "DeliveryStatusEnum": "tasks.models.Delivery.Status",
            "SeriesStatusEnum": "series.models.Series.Status",
        },
    }
)

# --- Sign-in limits (django-axes; reservemail.signin) --------------------------------------
# SIGNIN_FAILURE_LIMIT failed sign-ins lock the account (from anywhere) and the client address (for any
# account) for SIGNIN_COOLOFF_SECONDS after those failures, on every door: /accounts/login/, /admin/login/,
# /api/auth/login/ and /api/auth/token/. Behind N reverse proxies that append to X-Forwarded-For, set
# SIGNIN_TRUSTED_PROXIES=N, or every client shares the proxy's address.
SIGNIN_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 5)
SIGNIN_COOLOFF_SECONDS = env_int("SIGNIN_COOLOFF_SECONDS", 15 * 60)
SIGNIN_TRUSTED_PROXIES = env_int("SIGNIN_TRUSTED_PROXIES", 0)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # shared by every web process
AXES_FAILURE_LIMIT = SIGNIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=SIGNIN_COOLOFF_SECONDS)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Attempts refused during a lock are not counted, so "try again in N minutes" stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True  # failures are kept (until their cool-off ends), successful sign-ins are not
AXES_CLIENT_IP_CALLABLE = "reservemail.signin.client_ip"
AXES_LOCKOUT_CALLABLE = "reservemail.signin.lockout_response"
AXES_VERBOSE = False  # no start-up banner in every process (workers too); failures are still logged

# --- Logging ------------------------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line with task_id, owner, queue, transition as fields.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "reservemail.logformat.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes: failures and lock-outs are WARNINGs (username and address masked); its INFO lines are bookkeeping.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # HSTS preloading commits the whole domain to HTTPS in browsers' built-in lists and is hard
        # to undo: the domain owner's decision, not this app's. Silence only that reminder.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- Operations: metrics, data retention ------------------------------------------------------
# /metrics answers staff sessions, or `Authorization: Bearer $METRICS_TOKEN` (also django-rq's
# stats.json). Scrapers inside the private network speak plain HTTP, so it is not redirected.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
RQ_API_TOKEN = METRICS_TOKEN
METRICS_WINDOW = env_int("METRICS_WINDOW", 3600)  # seconds of sends the latency histogram covers
METRICS_OVERDUE_GRACE = env_int("METRICS_OVERDUE_GRACE", 60)  # seconds past due before "overdue"
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
TASK_RETENTION_DAYS = env_int("TASK_RETENTION_DAYS", 90)  # purge_tasks default
# A cache shared by every web process on every host (DRF throttle counters live in the cache):
# CACHE_URL=redis://redis:6379/1. Without it each process counts alone (LocMemCache).
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}

# --- Bulk mail: unsubscribe links (issue 13) ----------------------------------------------------
# The site's public address, for absolute links in mail (List-Unsubscribe and the unsubscribe link
# of bulk templates: SITE_URL/u/<token>/). Set it to the https:// origin the web app is reached at.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
# A mailbox that takes unsubscribe requests by mail: when set, List-Unsubscribe also names
# mailto:UNSUBSCRIBE_MAILTO?subject=unsubscribe <token>. Empty: the HTTPS link only.
UNSUBSCRIBE_MAILTO = os.environ.get("UNSUBSCRIBE_MAILTO", "")

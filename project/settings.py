"""Settings of the example project: every value comes from the environment (django-environ).

SQLite in the project folder is the default database; set ``DATABASE_URL`` for PostgreSQL,
e.g. ``postgres://postgres@127.0.0.1:5432/imbot``.
"""

import os
import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-imbot-example-only" if DEBUG else environ.Env.NOTSET
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "imbot_app",
    "project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Keep connections between requests (a new one per event cost 10-18 ms in bench/ingest.py).
# (?conn_max_age=N in DATABASE_URL, or CONN_MAX_AGE, wins.)
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=600))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Concurrent writers (threads, a web server and Celery workers) need WAL and transactions
    # that take the write lock when they begin instead of failing when they upgrade to it.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("transaction_mode", "IMMEDIATE")
    _options.setdefault("timeout", 20)
    _options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    # The test database is a file of this test run's own, so worker processes the tests start
    # can open it too (they are given its path in DATABASE_URL).
    DATABASES["default"]["TEST"].setdefault(
        "NAME",
        env.str(
            "IMBOT_TEST_SQLITE",
            default=str(Path(tempfile.gettempdir()) / f"imbot-test-{os.getpid()}.sqlite3"),
        ),
    )

# The REST client's per-portal rate limit lives in the cache: use Redis (CACHE_URL=
# redis://127.0.0.1:6379/1) when several processes call Bitrix24, so they share one budget.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

# --- imbot_app -----------------------------------------------------------------------------
IMBOT_CLIENT_ID = env.str("IMBOT_CLIENT_ID", default="")
IMBOT_CLIENT_SECRET = env.str("IMBOT_CLIENT_SECRET", default="")
IMBOT_VERIFY_INSTALL = env.bool("IMBOT_VERIFY_INSTALL", default=True)
IMBOT_OAUTH_SERVERS = env.list(
    "IMBOT_OAUTH_SERVERS",
    default=["https://oauth.bitrix.info/rest/", "https://oauth.bitrix24.tech/rest/"],
)
# Hosts a portal's REST endpoint may be on besides https on its own domain (local fakes only).
IMBOT_ENDPOINT_HOSTS = env.list("IMBOT_ENDPOINT_HOSTS", default=[])
IMBOT_MAX_BODY_BYTES = env.int("IMBOT_MAX_BODY_BYTES", default=1024 * 1024)
IMBOT_MAX_FIELDS = env.int("IMBOT_MAX_FIELDS", default=1000)
IMBOT_MAX_DEPTH = env.int("IMBOT_MAX_DEPTH", default=16)
IMBOT_HTTP_TIMEOUT = env.float("IMBOT_HTTP_TIMEOUT", default=10.0)
IMBOT_CLIENT_IP_HEADER = env.str("IMBOT_CLIENT_IP_HEADER", default=None)
# Keys sealing the tokens at rest, newest first (comma-separated); unset: derived from
# SECRET_KEY, with a system check warning.  See docs/explanation/security.md.
IMBOT_ENCRYPTION_KEYS = env.list("IMBOT_ENCRYPTION_KEYS", default=None)
# Webhook mode (a bot on one portal through an inbound webhook): both are secrets.
IMBOT_WEBHOOK_URL = env.str("IMBOT_WEBHOOK_URL", default="")
IMBOT_WEBHOOK_CLIENT_ID = env.str("IMBOT_WEBHOOK_CLIENT_ID", default="")
IMBOT_RATE_LIMIT = env.float("IMBOT_RATE_LIMIT", default=2.0)
IMBOT_RATE_BURST = env.int("IMBOT_RATE_BURST", default=50)
IMBOT_REST_MAX_RETRIES = env.int("IMBOT_REST_MAX_RETRIES", default=5)
IMBOT_REST_BACKOFF = env.float("IMBOT_REST_BACKOFF", default=0.5)
# "worker" (the default here): the webhook stores the event and answers; `manage.py
# imbot_worker` (started by `make run`) runs the handlers.  "inline": handlers run in the web
# process after the commit, and Bitrix24 waits for them (tests, tiny bots).  "celery": one
# task per event.
IMBOT_DISPATCH = env.str("IMBOT_DISPATCH", default="worker")
# Handler modules besides every installed app's imbot_handlers (comma-separated in the env).
IMBOT_HANDLER_MODULES = env.list("IMBOT_HANDLER_MODULES", default=[])
IMBOT_DISPATCH_LEASE = env.int("IMBOT_DISPATCH_LEASE", default=600)
IMBOT_CELERY_QUEUE = env.str("IMBOT_CELERY_QUEUE", default=None)
# Celery mode: events still waiting this long (s) are sent again by the sweep.
IMBOT_REQUEUE_AFTER = env.float("IMBOT_REQUEUE_AFTER", default=60)
# imbot_worker: events per fetch, seconds between polls when no NOTIFY wakes it.
IMBOT_WORKER_BATCH = env.int("IMBOT_WORKER_BATCH", default=100)
IMBOT_WORKER_POLL = env.float("IMBOT_WORKER_POLL", default=1.0)
# imbot_worker polls imbot.v2.Event.get for fetch-mode (Chatbots 2.0) bots: seconds between
# polls of an empty queue (5-30), between calls while hasMore (>= 2), events per call (<= 1000),
# how long one poller holds a bot, and the backoff after 429/503/network errors.
IMBOT_FETCH_IDLE_INTERVAL = env.float("IMBOT_FETCH_IDLE_INTERVAL", default=10.0)
IMBOT_FETCH_BUSY_INTERVAL = env.float("IMBOT_FETCH_BUSY_INTERVAL", default=2.0)
IMBOT_FETCH_LIMIT = env.int("IMBOT_FETCH_LIMIT", default=1000)
IMBOT_FETCH_LEASE = env.int("IMBOT_FETCH_LEASE", default=120)
IMBOT_FETCH_BACKOFF = env.float("IMBOT_FETCH_BACKOFF", default=2.0)
IMBOT_FETCH_MAX_BACKOFF = env.float("IMBOT_FETCH_MAX_BACKOFF", default=300.0)
# Where replies go: RestSender calls Bitrix24; imbot_app.outbound.calls.PendingSender only logs
# them.
IMBOT_SENDER = env.str("IMBOT_SENDER", default="imbot_app.outbound.sender.RestSender")
# This site's public HTTPS address (a tunnel or proxy in front of `make run`): Bitrix24 sends
# the bots' events to IMBOT_PUBLIC_URL + /imbot/events/.
IMBOT_PUBLIC_URL = env.str("IMBOT_PUBLIC_URL", default="")
# Register the bots below when a portal installs the app, and sync them on updates.
IMBOT_REGISTER_ON_INSTALL = env.bool("IMBOT_REGISTER_ON_INSTALL", default=True)
IMBOT_BIND_EVENTS = env.list(
    "IMBOT_BIND_EVENTS", default=["ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL"]
)
IMBOT_HONOR_CLEAN = env.bool("IMBOT_HONOR_CLEAN", default=True)
# The example echo bot (project/imbot_handlers.py answers its commands):
# `manage.py imbot_register` registers it on every installed portal.
IMBOT_BOTS = [
    {
        "code": "echobot",
        "name": "Echo bot",
        "color": "GREEN",
        "work_position": "Repeats what you tell it",
        "commands": [
            {
                "command": "echo",
                "title": {"en": "Repeat a text", "de": "Einen Text wiederholen"},
                "params": {"en": "text", "de": "Text"},
                "common": True,
            },
            {
                "command": "help",
                "title": {"en": "What the echo bot can do", "de": "Was der Echo-Bot kann"},
            },
        ],
    },
]

# --- Celery (used when IMBOT_DISPATCH=celery; see project/celery.py) -----------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
# With late acknowledgement a worker holds one message at a time, so a killed worker strands
# only the event it was running.  Redis redelivers an unacknowledged message after
# visibility_timeout seconds: keep it above your slowest event.
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_BROKER_TRANSPORT_OPTIONS = env.json(
    "CELERY_BROKER_TRANSPORT_OPTIONS", default={"visibility_timeout": 3600}
)
CELERY_TASK_IGNORE_RESULT = True
# `celery -A project beat`: send events stranded while the broker was down again.
CELERY_BEAT_SCHEDULE = {
    "imbot-requeue-stranded": {"task": "imbot_app.requeue_stranded", "schedule": 30.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "imbot_app": {"handlers": ["console"], "level": env.str("IMBOT_LOG_LEVEL", default="INFO")},
        # Every 5xx answer (an uncaught exception, with its traceback): without this, DEBUG=False
        # leaves a server error without a single log line.  (4xx are WARNING: left out.)
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

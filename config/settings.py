"""Django settings for siyu.

Everything that differs between a laptop and a fleet comes from the environment:
``SIYU_HOME`` (data directory, default ``./var``), ``DATABASE_URL`` (PostgreSQL instead of
the embedded SQLite), ``REDIS_URL`` (Huey on Redis instead of SQLite), ``SIYU_SECRET_KEY``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from siyu.core.home import load_or_create_key, siyu_home

BASE_DIR = Path(__file__).resolve().parent.parent
SIYU_HOME = siyu_home()

SECRET_KEY = os.environ.get("SIYU_SECRET_KEY") or load_or_create_key("django-secret", 50)
# Separate key for PII encryption and lookup hashes: rotating the session key must not
# make every stored phone number unreadable.
SIYU_PII_KEY = os.environ.get("SIYU_PII_KEY") or load_or_create_key("pii-key", 32)

DEBUG = os.environ.get("SIYU_DEBUG", "0") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("SIYU_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("SIYU_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "huey.contrib.djhuey",
    "siyu.core",
    "siyu.accounts",
    "siyu.channels",
    "siyu.contacts",
    "siyu.communities",
    "siyu.acquisition",
    "siyu.campaigns",
    "siyu.commerce",
    "siyu.moderation",
    "siyu.segments",
    "siyu.outreach",
    "siyu.journeys",
    "siyu.console",
    "siyu.worker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "siyu.console.middleware.WorkspaceLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "siyu.console.context.console_context",
            ],
        },
    },
]

SQLITE_PATH = Path(os.environ.get("SIYU_SQLITE_PATH") or SIYU_HOME / "siyu.sqlite3")
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "siyu.core.sqlite",  # Django's, with write transactions taking turns (siyu/core/sqlite/base.py)
            "NAME": str(SQLITE_PATH),
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE makes a write
                # transaction take the lock up front instead of failing half-way.
                # synchronous=NORMAL: a commit survives a crash of siyu; a power cut can
                # lose what was committed since the last checkpoint (at most 32 MiB of
                # WAL: wal_autocheckpoint=8192 pages, 8x SQLite's default, measured
                # +20 % on the inbound pipeline). 64 MiB page cache, 256 MiB mmap reads.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456; PRAGMA wal_autocheckpoint=8192;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # A file, not memory, so that tests with threads, a live server or a real
            # worker process see the same database with real locking.
            "TEST": {"NAME": str(SIYU_HOME / "test.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "siyu" / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = SIYU_HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = SIYU_HOME / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Huey: SQLite storage on one machine, Redis for many consumers on many machines.
if os.environ.get("SIYU_HUEY_IMMEDIATE") == "1":
    HUEY = {"huey_class": "huey.MemoryHuey", "name": "siyu", "immediate": True}
elif os.environ.get("REDIS_URL"):
    HUEY = {
        "huey_class": "huey.PriorityRedisHuey",
        "name": "siyu",
        "url": os.environ["REDIS_URL"],
        "immediate": False,
        "consumer": {"workers": int(os.environ.get("SIYU_WORKERS", "4")), "worker_type": "thread"},
    }
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": "siyu",
        "filename": str(SIYU_HOME / "huey.sqlite3"),
        "immediate": False,
        "consumer": {"workers": int(os.environ.get("SIYU_WORKERS", "2")), "worker_type": "thread"},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SIYU_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # huey installs its own handler too; without this every line prints twice
        "huey": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

NINJA_PAGINATION_PER_PAGE = 50

# Inbox events one worker task processes in one transaction (decision 0004: 1,000 measured
# +19 % over 500 on the pipeline benchmark, with the same console write latency under load).
SIYU_INBOX_BATCH_SIZE = int(os.environ.get("SIYU_INBOX_BATCH_SIZE", "1000"))
# How long a worker holds an outbox row it is sending before another may retry it.
SIYU_OUTBOX_LEASE_SECONDS = float(os.environ.get("SIYU_OUTBOX_LEASE_SECONDS", "60"))
# How long a worker holds a journey run it is advancing before another may take it over.
SIYU_JOURNEY_LEASE_SECONDS = float(os.environ.get("SIYU_JOURNEY_LEASE_SECONDS", "120"))
# A live-code seat reserved by a scan that never became an add/join is released after this.
SIYU_LIVE_CODE_SEAT_TTL_MINUTES = int(os.environ.get("SIYU_LIVE_CODE_SEAT_TTL_MINUTES", "30"))

if os.environ.get("SIYU_TESTING") == "1":
    # Tests create many staff accounts; the production hasher costs ~0.3 s per password.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

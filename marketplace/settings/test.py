"""Test overrides only: fast hashing, in-memory e-mail, files under a temporary var dir."""

import os
from pathlib import Path

os.environ.setdefault("DEBUG", "true")
# Tests never touch the developer's own var/ (database, media, broker folders).
os.environ.setdefault("LWM_VAR_DIR", str(Path(__file__).resolve().parents[2] / "var" / "test"))
# One metrics folder for the test process and the workers it starts (they inherit the environment):
# the in-process /metrics then adds up the web's and the workers' counters, as in production.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(os.environ["LWM_VAR_DIR"]).resolve() / "metrics"))
# Short intervals so liveness tests see a stopped worker within seconds.
os.environ.setdefault("LWM_WORKER_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("LWM_WORKER_STALE_SECONDS", "5")
# Small sandbox limits: a hanging upload is stopped in seconds. The CPU cap leaves room for the
# heaviest honest call the worker makes (a base model's pass at every layer: torch + transformers
# imported and MiniLM run inside the sandbox takes 2-3 s of CPU on a loaded 2-core machine, which
# made a 3 s cap flaky); the CPU limit itself is tested with explicit limits
# (tests/workers/test_sandbox.py). LWM_RKME_K keeps its default (100): it is the one K of
# publishing, search by data and submissions, and the reuse tests' numbers are those of that K
# (publishing tests that want speed set it smaller themselves).
os.environ.setdefault("LWM_SANDBOX_CPU_SECONDS", "10")
os.environ.setdefault("LWM_SANDBOX_WALL_SECONDS", "20")
os.environ.setdefault("LWM_SANDBOX_MEMORY_MB", "1024")

from marketplace.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"login": "1000/min", "submission": "1000/min"}  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # On a file, not in memory: the Celery worker process started by the tests must see it.
    DATABASES["default"].setdefault("TEST", {})  # noqa: F405
    DATABASES["default"]["TEST"].setdefault("NAME", str(VAR_DIR / "test_db.sqlite3"))  # noqa: F405

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from marketplace.settings.env import env_bool, env_int, env_list, env_secret

ROOT = Path(__file__).resolve().parents[3]


def test_env_bool_rejects_a_malformed_value(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a boolean"):
        env_bool("FLAG", False)


def test_env_bool_reads_true_and_false(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", True) is False


def test_env_int_names_the_variable_and_checks_the_minimum(monkeypatch):
    monkeypatch.setenv("SIZE", "ten")
    with pytest.raises(ImproperlyConfigured, match="SIZE='ten' is not an integer"):
        env_int("SIZE", 1)
    monkeypatch.setenv("SIZE", "-3")
    with pytest.raises(ImproperlyConfigured, match="SIZE=-3 must be >= 0"):
        env_int("SIZE", 1, minimum=0)


def test_env_list_splits_and_strips(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , b.example,,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_env_secret_reads_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cr3t\n")
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.setenv("TOKEN_FILE", str(secret))
    assert env_secret("TOKEN") == "s3cr3t"
    monkeypatch.setenv("TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="TOKEN_FILE"):
        env_secret("TOKEN")


def _load_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    base.update(env, DJANGO_SETTINGS_MODULE="marketplace.settings.base")
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )


def test_production_mode_refuses_to_start_without_a_secret(tmp_path):
    result = _load_settings({"DEBUG": "false", "LWM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_embedded_default_database_is_sqlite_and_postgres_url_selects_psycopg(tmp_path):
    sqlite = _load_settings({"DEBUG": "true", "LWM_VAR_DIR": str(tmp_path)})
    assert sqlite.stdout.strip() == "django.db.backends.sqlite3", sqlite.stderr
    pg = _load_settings(
        {
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/db",
            "LWM_VAR_DIR": str(tmp_path),
        }
    )
    assert pg.stdout.strip() == "django.db.backends.postgresql", pg.stderr


def test_malformed_database_url_fails_loudly(tmp_path):
    result = _load_settings({"DEBUG": "true", "DATABASE_URL": "nonsense://", "LWM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def _run_settings_code(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "CELERY_BROKER_URL"}
    }
    base.update(env, DJANGO_SETTINGS_MODULE="marketplace.settings.base")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )


def test_importing_settings_creates_nothing_and_starting_django_makes_the_folders(tmp_path):
    var = tmp_path / "var"
    code = (
        "import os; from django.conf import settings; settings.VAR_DIR\n"
        "print(os.path.exists(os.environ['LWM_VAR_DIR']))\n"
        "import django; django.setup(); print(oct(os.stat(os.environ['LWM_VAR_DIR']).st_mode & 0o777))\n"
        "print(sorted(os.listdir(os.path.join(os.environ['LWM_VAR_DIR'], 'broker'))))"
    )
    result = _run_settings_code({"DEBUG": "true", "LWM_VAR_DIR": str(var)}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["False", "0o700", "['control', 'processed', 'queue']"], (
        result.stdout
    )


def test_tls_settings_are_off_by_default_and_driven_by_the_environment(tmp_path):
    code = (
        "from django.conf import settings as s\n"
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE)"
    )
    plain = _run_settings_code({"DEBUG": "true", "LWM_VAR_DIR": str(tmp_path)}, code)
    assert plain.stdout.strip() == "None False 0 False False", plain.stderr
    tls = _run_settings_code(
        {
            "SECRET_KEY": "x" * 50,
            "LWM_VAR_DIR": str(tmp_path),
            "SITE_URL": "https://market.example",
            "LWM_PROXY_SETS_FORWARDED_PROTO": "true",
            "SECURE_SSL_REDIRECT": "true",
            "SECURE_HSTS_SECONDS": "31536000",
        },
        code,
    )
    assert tls.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') True 31536000 True True", tls.stderr
    bad = _run_settings_code(
        {"DEBUG": "true", "LWM_VAR_DIR": str(tmp_path), "SECURE_HSTS_SECONDS": "a year"}, code
    )
    assert bad.returncode != 0 and "SECURE_HSTS_SECONDS='a year' is not an integer" in bad.stderr


@pytest.mark.django_db
def test_behind_a_tls_proxy_http_redirects_https_gets_hsts_and_probes_stay_on_http(settings):
    from django.test import Client

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    web = Client()  # a new handler: SecurityMiddleware reads the overridden settings
    plain = web.get("/api/v1/learnwares/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    forwarded = web.get("/api/v1/learnwares/", HTTP_X_FORWARDED_PROTO="https")
    assert forwarded.status_code == 200 and forwarded["Strict-Transport-Security"] == "max-age=3600"
    assert web.get("/livez").status_code == 200  # the image's HEALTHCHECK speaks plain HTTP

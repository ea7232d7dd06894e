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
    code = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)


def test_production_mode_refuses_to_start_without_a_secret(tmp_path):
    result = _load_settings({"DEBUG": "false", "LWM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_embedded_default_database_is_sqlite_and_postgres_url_selects_psycopg(tmp_path):
    sqlite = _load_settings({"DEBUG": "true", "LWM_VAR_DIR": str(tmp_path)})
    assert sqlite.stdout.strip() == "django.db.backends.sqlite3", sqlite.stderr
    pg = _load_settings({"SECRET_KEY": "x" * 50, "DATABASE_URL": "postgres://u@127.0.0.1:5432/db", "LWM_VAR_DIR": str(tmp_path)})
    assert pg.stdout.strip() == "django.db.backends.postgresql", pg.stderr


def test_malformed_database_url_fails_loudly(tmp_path):
    result = _load_settings({"DEBUG": "true", "DATABASE_URL": "nonsense://", "LWM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr

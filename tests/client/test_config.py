"""Configuration precedence: argument > environment > config file > default."""

from __future__ import annotations

import stat

import pytest
from lwm_client.config import DEFAULT_URL, Config, read_config_file, write_config_file
from lwm_client.errors import ConfigError


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    path = tmp_path / "lwm" / "config.json"
    monkeypatch.setenv("LWM_CONFIG", str(path))
    for name in ("LWM_URL", "LWM_TOKEN", "LWM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_defaults_without_anything(cfg):
    c = Config.resolve()
    assert (c.url, c.token) == (DEFAULT_URL, None)


def test_file_then_env_then_argument_each_win_over_the_previous(cfg, monkeypatch):
    write_config_file({"url": "http://file:1", "token": "lwm_file", "timeout": "5"})
    assert Config.resolve() == Config(url="http://file:1", token="lwm_file", timeout=5.0)
    monkeypatch.setenv("LWM_URL", "http://env:2/")
    monkeypatch.setenv("LWM_TOKEN", "lwm_env")
    assert Config.resolve() == Config(url="http://env:2", token="lwm_env", timeout=5.0)
    assert Config.resolve(url="https://arg:3", token="lwm_arg", timeout=9) == Config(
        url="https://arg:3", token="lwm_arg", timeout=9.0
    )


def test_config_file_is_private_to_its_owner(cfg):
    write_config_file({"url": "http://x", "token": "lwm_secret"})
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert read_config_file()["token"] == "lwm_secret"


@pytest.mark.parametrize(("kwargs", "field"), [({"url": "ftp://x"}, "url"), ({"timeout": "soon"}, "timeout")])
def test_bad_values_are_refused_by_name(cfg, kwargs, field):
    with pytest.raises(ConfigError) as caught:
        Config.resolve(**kwargs)
    assert caught.value.code == f"config:user:{field}"


def test_an_unreadable_config_file_is_a_config_error(cfg):
    cfg.parent.mkdir(parents=True)
    cfg.write_text("{not json")
    with pytest.raises(ConfigError):
        Config.resolve()

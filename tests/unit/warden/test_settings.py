"""Settings: env names, nesting, secrets, and a clear failure naming the bad variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from warden.errors import ConfigError
from warden.settings import load_settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_list == ["127.0.0.1:39092"]
    assert settings.redis.url.get_secret_value().startswith("redis://127.0.0.1:36379")


def test_nested_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_KAFKA__BOOTSTRAP_SERVERS", "b1:9092,b2:9093")
    monkeypatch.setenv("WARDEN_SCORER__MAX_BATCH", "128")
    monkeypatch.setenv("WARDEN_PLATFORMS__DISCORD__TOKEN", "s3cret")
    settings = load_settings()
    assert settings.kafka.bootstrap_list == ["b1:9092", "b2:9093"]
    assert settings.scorer.max_batch == 128
    token = settings.platforms.discord.token
    assert token is not None and token.get_secret_value() == "s3cret"
    # Secrets never show up in reprs or logs.
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WARDEN_KAFKA__BOOTSTRAP_SERVERS", "no-port-here"),
        ("WARDEN_SCORER__MAX_BATCH", "0"),
        ("WARDEN_MODEL__DEVICE", "tpu"),
        ("WARDEN_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert variable in str(info.value)


def test_cli_exits_non_zero_naming_the_variable() -> None:
    env = {"WARDEN_REDIS__SOCKET_TIMEOUT_S": "-1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "warden", "stack", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "WARDEN_REDIS__SOCKET_TIMEOUT_S" in done.stderr

"""Settings: env names, nesting, secrets, and a clear failure naming the bad variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    # The defaults, not whatever stack the shell running the tests points at.
    monkeypatch.delenv("WARDEN_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("WARDEN_REDIS__URL", raising=False)
    settings = load_settings()
    assert settings.kafka.bootstrap_list == ["127.0.0.1:29092"]
    assert settings.redis.url.get_secret_value().startswith("redis://127.0.0.1:26379")


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
        # Over the broker's default message size limit: every delivery would be refused.
        ("WARDEN_SCORER__RECORD_BATCH_BYTES", "2000000"),
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


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"WARDEN_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "WARDEN_KAFKA__SASL_PASSWORD",
        ),
        (
            {
                "WARDEN_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "WARDEN_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "WARDEN_KAFKA__SASL_USERNAME": "scorer",
            },
            "WARDEN_KAFKA__SASL_PASSWORD",
        ),
        ({"WARDEN_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512"}, "WARDEN_KAFKA__SECURITY_PROTOCOL"),
    ],
)
def test_half_a_sasl_configuration_is_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert named in str(info.value)


def test_a_complete_scram_configuration_reaches_the_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.clients import kafka_common

    monkeypatch.setenv("WARDEN_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("WARDEN_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("WARDEN_KAFKA__SASL_USERNAME", "scorer")
    monkeypatch.setenv("WARDEN_KAFKA__SASL_PASSWORD", "pw-1")
    args = kafka_common(load_settings().kafka)
    assert args["security_protocol"] == "SASL_PLAINTEXT"
    assert args["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (args["sasl_plain_username"], args["sasl_plain_password"]) == ("scorer", "pw-1")


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("WARDEN_KAFKA__BOOTSTRAP_SERVER", "WARDEN_KAFKA__BOOTSTRAP_SERVERS"),
        ("WARDEN_PLATFORMS__TWITCH__CHANEL", "WARDEN_PLATFORMS__TWITCH__CHANNELS"),
        ("WARDEN_SCORER__MAXBATCH", "WARDEN_SCORER__MAX_BATCH"),
    ],
)
def test_a_misspelt_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, meant: str
) -> None:
    # Ignored before: the section kept its default while the operator believed it set.
    monkeypatch.setenv(variable, "broker-1:9092")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert f"{variable}: no such setting (did you mean {meant}?)" in message
    assert "\n" not in message


def test_every_section_refuses_unknown_keys() -> None:
    from pydantic import BaseModel

    from core.settings import Settings, WebhookCredential

    sections: list[type[BaseModel]] = [WebhookCredential]
    while sections:
        section = sections.pop()
        assert section.model_config.get("extra") == "forbid", section.__name__
        for field in section.model_fields.values():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                sections.append(field.annotation)
    assert Settings.model_config.get("extra") == "forbid"
    assert "kafka" in Settings.model_fields


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WARDEN_PLATFORMS__TWITCH__CHANNELS", "[oops"),
        ("WARDEN_PLATFORMS__TWITCH__CHANNELS", "a,b"),
        ("WARDEN_INGEST__WEBHOOK_CREDENTIALS", '[{"name": "a"'),
        ("WARDEN_KAFKA", "{oops"),
    ],
)
def test_a_value_that_is_not_json_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # A variable that parses, in the same section, must not be blamed instead.
    monkeypatch.setenv("WARDEN_PLATFORMS__TWITCH__NICK", "bot")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"invalid configuration: {variable}: not valid JSON (")


def test_an_unknown_key_inside_a_json_list_names_the_variable_and_the_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "WARDEN_INGEST__WEBHOOK_CREDENTIALS", '[{"name": "a", "tokn": "0123456789"}]'
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "WARDEN_INGEST__WEBHOOK_CREDENTIALS (item 0, tokn): " in str(info.value)

"""Settings from secret files (WARDEN_SECRETS_DIR) and the paths services write.

Docker secrets and Kubernetes Secret volumes are folders of files, one per variable; a path
setting that cannot be written fails at start naming its variable, not at the first write.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.paths import faust_data_dir, model_cache_dir, writable_dir
from core.settings import load_settings


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    monkeypatch.setenv("WARDEN_SECRETS_DIR", str(folder))
    for name in list(os.environ):
        if name.startswith(("WARDEN_PLATFORMS__", "WARDEN_KAFKA__")):
            monkeypatch.delenv(name)
    return folder


def test_each_file_sets_the_variable_it_is_named_after(secrets: Path) -> None:
    (secrets / "WARDEN_PLATFORMS__DISCORD__TOKEN").write_text("disc0rd-token\n")
    (secrets / "warden_platforms__twitch__channels").write_text('["a", "b"]')
    (secrets / "WARDEN_KAFKA__SASL_PASSWORD").write_text("pw\r\n")
    # Not ours: another program's secret, Kubernetes' bookkeeping, a folder.
    (secrets / "alertmanager_webhook_url").write_text("https://example.invalid/x")
    (secrets / "..data").mkdir()
    (secrets / "WARDEN_NESTED").mkdir()
    settings = load_settings()
    token = settings.platforms.discord.token
    assert token is not None and token.get_secret_value() == "disc0rd-token"
    assert settings.platforms.twitch.channels == ["a", "b"]
    password = settings.kafka.sasl_password
    assert password is not None and password.get_secret_value() == "pw"
    assert "disc0rd-token" not in repr(settings)


def test_the_environment_wins_over_a_file(secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (secrets / "WARDEN_PLATFORMS__DISCORD__TOKEN").write_text("from-file")
    monkeypatch.setenv("WARDEN_PLATFORMS__DISCORD__TOKEN", "from-env")
    token = load_settings().platforms.discord.token
    assert token is not None and token.get_secret_value() == "from-env"


def test_a_misspelt_file_fails_naming_it(secrets: Path) -> None:
    (secrets / "WARDEN_PLATFORMS__DISCORD__TOKN").write_text("x")
    with pytest.raises(ConfigError, match=r"WARDEN_PLATFORMS__DISCORD__TOKN: no such setting"):
        load_settings()


def test_a_bad_value_in_a_file_is_named_like_a_variable(secrets: Path) -> None:
    (secrets / "WARDEN_SCORER__MAX_BATCH").write_text("0")
    with pytest.raises(ConfigError, match=r"WARDEN_SCORER__MAX_BATCH: "):
        load_settings()


def test_an_oversized_file_is_refused(secrets: Path) -> None:
    (secrets / "WARDEN_PLATFORMS__DISCORD__TOKEN").write_bytes(b"x" * 70_000)
    with pytest.raises(ConfigError, match=r"WARDEN_PLATFORMS__DISCORD__TOKEN .*larger than"):
        load_settings()


def test_a_missing_secrets_dir_fails_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDEN_SECRETS_DIR", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"WARDEN_SECRETS_DIR: .*nope is not a directory"):
        load_settings()


def test_path_settings_and_their_fallbacks(tmp_path: Path) -> None:
    stack = {"dir": tmp_path / "state", "cache_dir": tmp_path / "cache"}
    settings = load_settings(stack=stack)
    assert model_cache_dir(settings) == tmp_path / "cache"
    assert faust_data_dir(settings) == tmp_path / "state" / "faust"
    own = load_settings(
        stack=stack,
        model={"cache_dir": tmp_path / "models"},
        scorer={"data_dir": tmp_path / "faust"},
    )
    assert model_cache_dir(own, writable=True) == tmp_path / "models"
    assert faust_data_dir(own, writable=True) == tmp_path / "faust"
    assert (tmp_path / "models").is_dir() and (tmp_path / "faust").is_dir()
    # The probe leaves nothing behind.
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; the image test covers it")
def test_an_unwritable_folder_names_its_variable_as_non_root(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match=r"WARDEN_MODEL__CACHE_DIR: cannot write to"):
        writable_dir(locked / "cache", "WARDEN_MODEL__CACHE_DIR")


def test_a_path_that_is_a_file_names_its_variable(tmp_path: Path) -> None:
    # What a volume mounted over a file, or a mistyped path, looks like (fails even as root).
    (tmp_path / "cache").write_text("not a folder")
    settings = load_settings(stack={"cache_dir": tmp_path / "cache"})
    with pytest.raises(ConfigError, match=r"^invalid configuration: WARDEN_STACK__CACHE_DIR: "):
        model_cache_dir(settings, writable=True)
    settings = load_settings(scorer={"data_dir": tmp_path / "cache" / "faust"})
    with pytest.raises(ConfigError, match=r"WARDEN_SCORER__DATA_DIR: cannot write to"):
        faust_data_dir(settings, writable=True)

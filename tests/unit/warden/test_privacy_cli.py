"""`warden privacy` and `warden stats` before any server is reached: the help explains the
commands, and bad input or a missing secret is one line naming what to fix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from core.settings import get_settings
from warden.cli import main


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    # A closed port: anything that tried to connect would fail differently from these checks.
    monkeypatch.setenv("WARDEN_POSTGRES__DSN", "postgresql://warden@127.0.0.1:9/warden")
    monkeypatch.setenv("WARDEN_REDIS__URL", "redis://127.0.0.1:9/0")
    monkeypatch.delenv("WARDEN_PRIVACY__PSEUDONYM_SECRET", raising=False)
    get_settings.cache_clear()  # the settings are read once per process: read these
    yield CliRunner()
    get_settings.cache_clear()


def test_the_help_explains_every_command(runner: CliRunner) -> None:
    shown = runner.invoke(main, ["privacy", "--help"])
    assert shown.exit_code == 0
    for words in (
        "forget USER",
        "opt-out USER",
        "opt-in USER",
        "purge",
        "pseudonymised",
        "WARDEN_INGEST__OPT_OUT=none",
        "docs/privacy.md",
        "/privacy",
    ):
        assert words in shown.output, words
    stats = runner.invoke(main, ["stats", "--help"])
    assert stats.exit_code == 0
    for words in ("--community", "--user", "--since", "opted out or were forgotten"):
        assert words in stats.output, words


def test_bad_input_and_a_missing_secret_fail_before_connecting(runner: CliRunner) -> None:
    no_secret = runner.invoke(main, ["privacy", "forget", "42", "--community", "1"])
    assert no_secret.exit_code == 2
    assert "WARDEN_PRIVACY__PSEUDONYM_SECRET: needed" in no_secret.output
    bad_user = runner.invoke(main, ["privacy", "opt-out", "a:b", "--community", "1"])
    assert bad_user.exit_code != 0
    assert "user 'a:b': expected a non-empty id without ':'" in bad_user.output
    lone_user = runner.invoke(main, ["stats", "--user", "42"])
    assert lone_user.exit_code == 2 and "--user needs --community" in lone_user.output
    bad_age = runner.invoke(main, ["stats", "--since", "0d"])
    assert bad_age.exit_code == 2 and "expected a number and m, h or d" in bad_age.output

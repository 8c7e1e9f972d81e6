"""core.privacy without servers: the pseudonym (a known answer), user keys, the secret's check,
Redis pattern escaping, and the privacy settings' validation."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from core import privacy
from core.errors import ConfigError
from core.settings import PrivacySettings, Settings, load_settings

SECRET = b"0123456789abcdef"


def test_pseudonym_known_answer() -> None:
    # HMAC-SHA256(key=SECRET, "discord:5000:42") = 203377acd5316a51d0ec3d7039d4e0c3...
    assert privacy.pseudonym(SECRET, "discord", "5000", "42") == "anon-203377acd5316a51d0ec3d70"
    # The same user elsewhere, or under another secret, is someone else.
    assert privacy.pseudonym(SECRET, "discord", "5001", "42") != privacy.pseudonym(
        SECRET, "discord", "5000", "42"
    )
    assert privacy.pseudonym(b"another-secret-16", "discord", "5000", "42").startswith("anon-")
    assert privacy.pseudonym(b"another-secret-16", "discord", "5000", "42") != (
        "anon-203377acd5316a51d0ec3d70"
    )


@pytest.mark.parametrize(
    ("platform", "community", "user"),
    [("discord", "1", ""), ("discord", "1:2", "3"), ("discord", "1", "a\nb"), ("", "1", "2")],
)
def test_user_keys_refuse_what_would_name_someone_else(
    platform: str, community: str, user: str
) -> None:
    with pytest.raises(privacy.PrivacyError, match="expected a non-empty id without ':'"):
        privacy.user_key(platform, community, user)


def test_the_secret_is_required_and_named() -> None:
    for secret in (None, SecretStr("short")):
        settings = Settings(privacy=PrivacySettings(pseudonym_secret=secret))
        with pytest.raises(ConfigError, match=r"^WARDEN_PRIVACY__PSEUDONYM_SECRET: needed"):
            privacy.require_secret(settings)
    ok = Settings(privacy=PrivacySettings(pseudonym_secret=SecretStr("x" * 16)))
    assert privacy.require_secret(ok) == b"x" * 16
    assert "x" * 16 not in repr(ok.privacy)  # never shown


def test_redis_patterns_match_ids_literally() -> None:
    assert privacy.glob_escape("plain-id_1") == "plain-id_1"
    assert privacy.glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


def test_retention_settings_fail_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="WARDEN_PRIVACY__DECISIONS_DAYS"):
        load_settings(privacy={"decisions_days": 0})
    with pytest.raises(ConfigError, match="WARDEN_PRIVACY__PURGE_EVERY_S"):
        load_settings(privacy={"purge_every_s": -1})
    defaults = PrivacySettings()
    assert (defaults.decisions_days, defaults.audit_days, defaults.purge_every_s) == (28, 365, 3600)


def test_the_report_says_what_was_done_and_what_is_left() -> None:
    report = privacy.ForgetReport("discord:1:2", {"decisions": 2, "holds": 0}, {"pardons": 1})
    report.open_actions = 1
    assert report.summary() == (
        "discord:1:2: deleted 2 decisions; pseudonymised 1 pardons; 1 action(s) still under way"
        " were left: run forget again once they are done; later retrains leave this user's"
        " data out"
    )

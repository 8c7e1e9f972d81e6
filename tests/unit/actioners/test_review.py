"""The review service's parts that need no server: passwords, sign-in limits, CSRF, the
highlighting, reversal requests, and the platforms' reversals against the local fake servers."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from fakes.discord import TOKEN as DISCORD_TOKEN
from fakes.discord import FakeDiscord
from fakes.twitch import CLIENT_ID, TOKEN, FakeTwitch
from pydantic import SecretStr

from actioners.chatlog import ChatLog, _parse
from actioners.platforms.discord import DiscordExecutor
from actioners.platforms.slack import SlackExecutor
from actioners.platforms.twitch import TwitchExecutor
from actioners.review.accounts import (
    AccountError,
    check_name,
    check_password,
    hash_password,
    parse_community,
    verify_password,
)
from actioners.review.guards import LoginLimiter, csrf_ok, csrf_token
from actioners.review.resolutions import ResolutionError, check_note, undo_request
from actioners.review.store import weighted_words
from actioners.review.web import _local, create_app, session_secret
from core.errors import ConfigError
from core.settings import DiscordSettings, Settings, SlackSettings, TwitchSettings
from schemas.events import ActionKind, ActionRequest, ActionStatus, Platform, Severity, Verdict

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def request(kind: str, platform: str = "discord", user: str = "555") -> ActionRequest:
    return ActionRequest(
        action_id=f"m1:{kind}",
        message_id="m1",
        platform=Platform(platform),
        community="42",
        channel="7",
        user=user,
        kind=ActionKind(kind),
        duration_s=600 if kind == "timeout" else None,
        reason="policy g@v1: HIGH",
        severity=Severity.HIGH,
        p_toxic=0.9,
        model_version="m",
        policy_version="g@v1",
        sent_at=NOW,
        requested_at=NOW,
        notice="Please keep it civil.",
    )


# -- accounts -----------------------------------------------------------------------------------


def test_a_password_hash_is_scrypt_with_its_salt_and_parameters() -> None:
    salt = bytes(range(16))
    stored = hash_password("correct horse battery", salt=salt)
    scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    # A known answer: hashlib.scrypt itself with the stored parameters.
    expected = hashlib.scrypt(b"correct horse battery", salt=salt, n=16384, r=8, p=1, dklen=32)
    assert base64.b64decode(salt_b64) == salt and base64.b64decode(digest_b64) == expected
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("x", "garbage") and not verify_password("x", "md5$1$2$3$4$5")
    assert hash_password("same password!") != hash_password("same password!")  # salted


def test_names_passwords_and_communities_are_checked() -> None:
    assert parse_community("discord:123") == ("discord", "123")
    assert parse_community("slack:T1") == ("slack", "T1")
    for bad in ("discord", "irc:1", "discord:", "discord:a:b", "twitch:\x00"):
        with pytest.raises(AccountError):
            parse_community(bad)
    assert check_name("alice.mod-1") == "alice.mod-1"
    for bad in ("", "a b", "x" * 65, "<script>"):
        with pytest.raises(AccountError):
            check_name(bad)
    with pytest.raises(AccountError, match="at least 10"):
        check_password("short")


# -- guards -------------------------------------------------------------------------------------


def test_sign_in_is_limited_per_address_and_per_name_within_the_window() -> None:
    now = [1000.0]
    limiter = LoginLimiter(3, 60.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.blocked("ip:1", "name:bob") == 0
        limiter.failed("ip:1", "name:bob")
    assert limiter.blocked("ip:1", "name:eve") == pytest.approx(60.0)  # the address
    assert limiter.blocked("ip:2", "name:bob") == pytest.approx(60.0)  # the name
    assert limiter.blocked("ip:2", "name:eve") == 0
    now[0] += 61
    assert limiter.blocked("ip:1", "name:bob") == 0


def test_csrf_tokens_belong_to_the_session() -> None:
    session: dict[str, object] = {}
    token = csrf_token(session)
    assert csrf_token(session) == token and len(token) >= 32
    assert csrf_ok(session, token)
    assert not csrf_ok(session, token[:-1] + "x")
    assert not csrf_ok(session, "") and not csrf_ok({}, token)


def test_redirects_after_sign_in_stay_on_this_site() -> None:
    assert _local("/messages/1") == "/messages/1"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil", "javascript:x"):
        assert _local(bad) == "/"


def test_the_service_refuses_to_start_without_a_session_secret() -> None:
    with pytest.raises(ConfigError, match="WARDEN_REVIEW__SESSION_SECRET"):
        create_app(Settings())
    short = Settings.model_validate({"review": {"session_secret": "too short"}})
    with pytest.raises(ConfigError, match="WARDEN_REVIEW__SESSION_SECRET"):
        session_secret(short)
    from fastapi.testclient import TestClient

    # Without entering the client the lifespan does not run: routing only, no servers.
    ok = Settings.model_validate({"review": {"session_secret": "s" * 40}})
    bots = "/bots/discord/interactions"
    assert TestClient(create_app(ok)).post(bots).status_code == 404  # no bot secrets
    with_bot = Settings.model_validate(
        {"review": {"session_secret": "s" * 40}, "bots": {"discord_public_key": "ab" * 32}}
    )
    unsigned = TestClient(create_app(with_bot)).post(bots, content=b"{}")
    assert unsigned.status_code == 401  # mounted, and it checks Discord's signature


# -- pages and reversals ------------------------------------------------------------------------


def test_weighted_words_mark_what_lime_weighed() -> None:
    pieces = weighted_words("You CLOWN, go home", [{"token": "clown", "weight": 0.4}])
    assert ("CLOWN", 0.4) in pieces
    assert "".join(p for p, _ in pieces) == "You CLOWN, go home"
    assert all(w == 0 for p, w in pieces if p != "CLOWN")


def test_a_reversal_names_what_it_undoes_with_a_deterministic_id() -> None:
    undo = undo_request(request("timeout"), moderator="alice", note="a joke")
    assert undo.action_id == "m1:timeout:undo" and undo.reverses == "m1:timeout"
    assert undo.kind is ActionKind.UNTIMEOUT and undo.duration_s is None
    assert undo.reason == "overturned by alice: a joke"
    assert undo_request(request("ban"), moderator="a", note="n").kind is ActionKind.UNBAN
    with pytest.raises(ResolutionError, match="note"):
        check_note("   ")


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[tuple[FakeDiscord, DiscordExecutor]]:
    fake = FakeDiscord(global_limit=None)
    await fake.start()
    executor = DiscordExecutor(
        DiscordSettings(
            token=SecretStr(DISCORD_TOKEN), api_base_url=fake.base_url, request_timeout_s=5
        )
    )
    await executor.start()
    yield fake, executor
    await executor.close()
    await fake.close()


async def test_discord_lifts_a_timeout_and_a_ban(
    discord: tuple[FakeDiscord, DiscordExecutor],
) -> None:
    fake, executor = discord
    assert (await executor.execute(request("timeout"))).status is ActionStatus.DONE
    undo = await executor.execute(undo_request(request("timeout"), moderator="a", note="n"))
    assert undo.status is ActionStatus.DONE and ("42", "555") not in fake.timeouts
    assert (await executor.execute(request("ban", user="556"))).status is ActionStatus.DONE
    unban = undo_request(request("ban", user="556"), moderator="a", note="n")
    assert (await executor.execute(unban)).detail == "unbanned"
    assert ("42", "556") not in fake.bans
    # Again (a reconciliation after a restart): Discord says Unknown Ban; nothing happens.
    again = await executor.reconcile(unban, None)
    assert again.status is ActionStatus.DONE and "Unknown Ban" in again.detail
    assert fake.effect_counts()[("unban", "42:556")] == 1
    assert fake.count("unban", 404) == 1


@pytest_asyncio.fixture
async def twitch() -> AsyncIterator[tuple[FakeTwitch, TwitchExecutor]]:
    fake = FakeTwitch()
    await fake.start()
    executor = TwitchExecutor(
        TwitchSettings.model_validate(
            {"api_token": SecretStr(TOKEN), "client_id": CLIENT_ID, "api_base_url": fake.base_url}
        )
    )
    await executor.start()
    yield fake, executor
    await executor.close()
    await fake.close()


async def test_twitch_lifts_bans_and_timeouts_with_helix_unban(
    twitch: tuple[FakeTwitch, TwitchExecutor],
) -> None:
    fake, executor = twitch
    await executor.execute(request("timeout", "twitch", user="1"))
    await executor.execute(request("ban", "twitch", user="2"))
    for kind, user in (("timeout", "1"), ("ban", "2")):
        undo = undo_request(request(kind, "twitch", user=user), moderator="a", note="n")
        outcome = await executor.execute(undo)
        assert outcome.status is ActionStatus.DONE, outcome
        assert ("42", user) not in fake.bans
    again = await executor.execute(
        undo_request(request("ban", "twitch", "2"), moderator="a", note="n")
    )
    assert again.status is ActionStatus.DONE and "not banned" in again.detail
    assert fake.count("unban") == 3 and fake.count("unban", 400) == 1


async def test_slack_says_there_is_nothing_to_undo() -> None:
    executor = SlackExecutor(SlackSettings(bot_token=SecretStr("xoxb-test")))
    outcome = await executor.execute(undo_request(request("ban", "slack"), moderator="a", note="n"))
    assert outcome.status is ActionStatus.SKIPPED and "cannot ban" in outcome.detail


# -- recent lines -------------------------------------------------------------------------------


async def test_recent_lines_never_hold_up_a_verdict_when_redis_is_away() -> None:
    from core.net import free_port

    settings = Settings.model_validate(
        {"redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "socket_timeout_s": 5}}
    )
    log = ChatLog(settings)
    verdict = Verdict(
        message_id="m1",
        platform=Platform.DISCORD,
        community="42",
        channel="7",
        user="555",
        text="hello",
        p_toxic=0.1,
        severity=Severity.LOW,
        flagged=False,
        model_version="m",
        sent_at=NOW,
        received_at=NOW,
        scored_at=NOW,
    )
    began = time.monotonic()
    await log.record([verdict])  # refused: logged, not raised
    await log.record([verdict])  # not even tried for a while
    assert time.monotonic() - began < 1.0
    await log.close()
    line = _parse('{"m": "m1", "c": "7", "t": "hi", "at": "2026-11-30T12:00:00+00:00"}')
    assert line is not None and line.text == "hi" and line.sent_at == NOW
    assert _parse("not json") is None and _parse('{"t": "no id"}') is None

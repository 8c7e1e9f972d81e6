"""A chat client whose Twitch token expired: refused at login, it trades its refresh token for a
new one (against a local server speaking Twitch's OAuth) and logs in again; without a refresh
token it says which setting to fix. No token or secret is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from fakes.twitch_irc import TwitchIrcServer

from core.settings import TwitchSettings
from core.twitch_irc import IrcClient, is_login_refused
from devkit.platforms.twitch import TwitchServer


class Reader(IrcClient):
    name = "test chat"

    async def handle(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> None:
        return None


@pytest.fixture
async def servers() -> AsyncIterator[tuple[TwitchServer, TwitchIrcServer]]:
    helix = TwitchServer(token="chat-token-1", refresh_token="chat-refresh-1")
    await helix.start()
    irc = TwitchIrcServer(valid_token=lambda: helix.token)
    await irc.start()
    yield helix, irc
    await irc.stop()
    await helix.close()


def reader(irc: TwitchIrcServer, helix: TwitchServer, **extra: object) -> Reader:
    """A chat client of ``#streamer`` with an expired token (``client_secret=True``: the app's)."""
    helix.expire_token()
    if extra.get("client_secret") is True:
        extra["client_secret"] = helix.client_secret
    twitch = TwitchSettings.model_validate(
        {
            "irc_url": irc.url,
            "nick": "wardenbot",
            "token": "oauth:chat-token-1",
            "channels": ["streamer"],
            "client_id": helix.client_id,
            "auth_url": helix.auth_url,
            "reconnect_max_s": 0.2,
            **extra,
        }
    )
    return Reader(twitch, ["streamer"], "wardenbot")


def test_twitchs_refusal_is_recognised() -> None:
    assert is_login_refused(":tmi.twitch.tv NOTICE * :Login authentication failed")
    assert is_login_refused(":tmi.twitch.tv NOTICE * :Improperly formatted auth")
    assert not is_login_refused(":tmi.twitch.tv NOTICE #chan :Login authentication failed")
    assert not is_login_refused("@badges= :v!v@v.tmi.twitch.tv PRIVMSG #c :login failed lol")


async def test_an_expired_chat_token_is_refreshed_and_the_client_logs_in_again(
    servers: tuple[TwitchServer, TwitchIrcServer], caplog: pytest.LogCaptureFixture
) -> None:
    helix, irc = servers
    client = reader(irc, helix, token_refresh_token="chat-refresh-1", client_secret=True)
    caplog.set_level(logging.INFO)
    task = asyncio.create_task(client.run())
    try:
        await irc.wait_for(lambda s: len(s.lines("JOIN")) == 1)
        await asyncio.wait_for(client.connected.wait(), 10)
        assert irc.refused == 1 and helix.refreshes == 1 and client.refreshes == 1
        assert irc.lines("PASS") == ["PASS oauth:chat-token-1", f"PASS oauth:{helix.token}"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    logged = caplog.text
    assert "chat token refreshed" in logged
    for secret in ("chat-refresh-1", helix.refresh_token, helix.client_secret, helix.token):
        assert secret not in logged


async def test_without_a_refresh_token_the_refusal_names_the_setting(
    servers: tuple[TwitchServer, TwitchIrcServer], caplog: pytest.LogCaptureFixture
) -> None:
    helix, irc = servers
    client = reader(irc, helix)
    task = asyncio.create_task(client.run())
    try:
        await irc.wait_for(lambda s: s.refused >= 2)
        assert not client.connected.is_set() and helix.refreshes == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "WARDEN_PLATFORMS__TWITCH__TOKEN expired or revoked" in caplog.text
    assert "chat-token-1" not in caplog.text


async def test_a_refused_refresh_is_one_line_and_not_retried_in_a_loop(
    servers: tuple[TwitchServer, TwitchIrcServer], caplog: pytest.LogCaptureFixture
) -> None:
    helix, irc = servers
    client = reader(irc, helix, token_refresh_token="refresh-xyz-gone", client_secret=True)
    task = asyncio.create_task(client.run())
    try:
        await irc.wait_for(lambda s: s.refused >= 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    refusals = [r for r in caplog.records if "Twitch refused to refresh the token" in r.message]
    assert len(refusals) == 1  # within REFRESH_GAP_S, refused logins do not refresh again
    assert "WARDEN_PLATFORMS__TWITCH__TOKEN_REFRESH_TOKEN" in refusals[0].message
    assert "refresh-xyz-gone" not in caplog.text

"""`warden ingest twitch` against a local IRC-over-WebSocket server sending real Twitch lines."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Callable

import pytest_asyncio
from fakes.twitch_irc import TwitchIrcServer, privmsg
from kit import Service, consume, free_port

from core.settings import Settings
from schemas.events import ChatMessage
from schemas.topics import CHAT_MESSAGES, DEADLETTER


@pytest_asyncio.fixture
async def irc() -> AsyncIterator[TwitchIrcServer]:
    server = TwitchIrcServer()
    await server.start()
    yield server
    await server.stop()


def metric(port: str, series: str) -> float:
    """One series' value from the adapter's /metrics, e.g. ``name{adapter="twitch"}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not exported")


async def test_privmsgs_are_published_with_tags_across_ping_and_reconnect(
    settings: Settings, irc: TwitchIrcServer, service_factory: Callable[..., Service]
) -> None:
    suffix = settings.kafka.topic_suffix
    metrics_port = str(free_port())
    adapter = service_factory(
        "ingest",
        "twitch",
        WARDEN_METRICS__INGEST_PORT=metrics_port,
        WARDEN_PLATFORMS__TWITCH__IRC_URL=irc.url,
        WARDEN_PLATFORMS__TWITCH__CHANNELS='["streamer"]',
        WARDEN_PLATFORMS__TWITCH__TOKEN="abc123",
        WARDEN_PLATFORMS__TWITCH__NICK="wardenbot",
    )
    await irc.wait_for(lambda s: len(s.lines("JOIN")) == 1, within_s=60)
    assert irc.lines("CAP") == ["CAP REQ :twitch.tv/tags twitch.tv/commands"]
    assert irc.lines("PASS") == ["PASS oauth:abc123"]
    assert irc.lines("JOIN") == ["JOIN #streamer"]

    first = [
        privmsg("streamer", f"hello {i}", login=f"user{i}", user_id=str(2000 + i), msg_id=f"a{i}")
        for i in range(20)
    ]
    first[3] = privmsg(
        "streamer",
        "Kappa nice play Kappa",
        login="modperson",
        user_id="777",
        msg_id="a3",
        badges="moderator/1,subscriber/12",
        emotes="25:0-4,15-19",
        reply_parent_msg_id="a1",
        mod=True,
    )
    await irc.send(*first[:10])
    await irc.send("PING :tmi.twitch.tv")
    await irc.send(*first[10:], "@id=;room-id=5000 :x!x@x.tmi.twitch.tv PRIVMSG #streamer :no ids")
    await irc.wait_for(lambda s: "PONG :tmi.twitch.tv" in s.received)

    # Twitch's notice before a restart: the client must come back and re-join on its own.
    await irc.send(":tmi.twitch.tv RECONNECT")
    await irc.wait_for(lambda s: len(s.lines("JOIN")) == 2, within_s=30)
    second = [
        privmsg("streamer", f"back {i}", user_id=str(3000 + i), msg_id=f"b{i}") for i in range(10)
    ]
    await irc.send(*second)

    records = await consume(
        settings, CHAT_MESSAGES.name_for(suffix), count=30, timeout_s=60, services=[adapter]
    )
    messages = {r["message_id"]: ChatMessage.model_validate(r) for r in records}
    assert set(messages) == {f"a{i}" for i in range(20)} | {f"b{i}" for i in range(10)}
    mod_line = messages["a3"]
    assert mod_line.platform == "twitch"
    assert mod_line.community == "5000" and mod_line.channel == "#streamer"
    assert mod_line.user == "777" and mod_line.user_name == "modperson"
    assert mod_line.user_roles == ["moderator", "subscriber"]
    assert mod_line.reply_to == "a1"
    assert [a.filename for a in mod_line.attachments] == ["Kappa"]
    assert mod_line.text == "Kappa nice play Kappa"

    dead = await consume(settings, DEADLETTER.name_for(suffix), count=1, services=[adapter])
    assert dead[0]["source_topic"] == "twitch:#streamer" and "no ids" in dead[0]["raw"]

    assert metric(metrics_port, 'warden_ingest_published_total{adapter="twitch"}') == 30
    assert metric(metrics_port, 'warden_ingest_rejected_total{adapter="twitch"}') == 1
    assert metric(metrics_port, 'warden_ingest_buffered{adapter="twitch"}') == 0
    assert await asyncio.to_thread(adapter.stop) == 0


async def test_reconnects_after_the_server_drops_the_connection(
    settings: Settings, irc: TwitchIrcServer, service_factory: Callable[..., Service]
) -> None:
    adapter = service_factory(
        "ingest",
        "twitch",
        WARDEN_PLATFORMS__TWITCH__IRC_URL=irc.url,
        WARDEN_PLATFORMS__TWITCH__CHANNELS='["a", "b"]',
    )
    await irc.wait_for(lambda s: len(s.lines("JOIN")) == 1, within_s=60)
    assert irc.lines("JOIN") == ["JOIN #a,#b"]
    assert irc.lines("NICK")[0].startswith("NICK justinfan")  # anonymous, read-only
    for ws in list(irc.clients):
        await ws.close()
    await irc.wait_for(lambda s: len(s.lines("JOIN")) == 2, within_s=30)
    await irc.send(privmsg("b", "still here", msg_id="after-drop"))
    records = await consume(
        settings,
        CHAT_MESSAGES.name_for(settings.kafka.topic_suffix),
        count=1,
        timeout_s=30,
        services=[adapter],
    )
    assert [r["message_id"] for r in records] == ["after-drop"]
    await asyncio.sleep(0)
    assert await asyncio.to_thread(adapter.stop) == 0

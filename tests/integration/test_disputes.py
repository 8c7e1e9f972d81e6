"""Disputes from every platform's fake onto the real feedback topic, and moderator commands on
the real PostgreSQL.

The endpoints run in this process on real sockets (the webhook API, the bots' FastAPI app under
uvicorn, the Twitch adapter on the fake IRC server) with the real broker and database behind
them; the fakes send what the platforms send, signed the way the platforms sign.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
import uvicorn
from aiohttp import ClientSession, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fakes.slack import BOT_TOKEN, FakeSlack
from fakes.twitch_irc import TwitchIrcServer, privmsg
from fastapi import FastAPI
from kit import consume, free_port
from pydantic import SecretStr

from actioners.bots import bot_routers
from actioners.bots.feedback import KafkaFeedback
from actioners.database import Database
from actioners.strikes import NewStrike, add
from core.settings import BotSettings, IngestSettings, Settings, SlackSettings, TwitchSettings
from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature
from devkit.platforms.discord import command, interaction, send_interaction
from devkit.platforms.slack import send_signed, slash_command
from ingest.adapters.twitch import TwitchChat
from ingest.adapters.webhook import WebhookAPI
from ingest.publisher import Publisher
from schemas.events import Feedback
from schemas.topics import CHAT_MESSAGES, FEEDBACK

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
SLACK_SECRET = "slack-signing-secret-for-tests"
HMAC_SECRET = "webhook-hmac-secret"
MODERATOR = (1 << 40) | (1 << 10)  # MODERATE_MEMBERS and VIEW_CHANNEL


class Uvicorn(uvicorn.Server):
    """uvicorn that says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()


@pytest_asyncio.fixture
async def bots(settings: Settings, db: Database) -> AsyncIterator[tuple[str, FakeSlack]]:
    """The bots' routers in a FastAPI app served by uvicorn on a free port (as the review app
    mounts them), with the real database and feedback topic behind them."""
    slack = FakeSlack()
    await slack.start()
    configured = settings.model_copy(
        update={
            "bots": BotSettings(
                discord_public_key=PUBLIC, slack_signing_secret=SecretStr(SLACK_SECRET)
            ),
            "platforms": settings.platforms.model_copy(
                update={
                    "slack": SlackSettings(
                        bot_token=SecretStr(BOT_TOKEN), api_base_url=slack.base_url
                    )
                }
            ),
        }
    )
    feedback = KafkaFeedback(settings.kafka)
    app = FastAPI()
    # As the review app mounts them: its database connects later, so a getter.
    routers = bot_routers(lambda: db, feedback, configured)
    assert len(routers) == 2
    for router in routers:
        app.include_router(router)
    server = Uvicorn(uvicorn.Config(app, log_level="warning", lifespan="off"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await asyncio.wait_for(server.up.wait(), 10)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", slack
    server.should_exit = True
    await task
    await feedback.close()
    await slack.close()


async def twitch_dispute(settings: Settings) -> list[str]:
    """A ``!dispute`` line through the Twitch adapter; returns what the adapter sent back."""
    irc = TwitchIrcServer()
    await irc.start()
    twitch = TwitchSettings(irc_url=irc.url, channels=["streamer"], token=SecretStr("abc"))
    ingest = IngestSettings(shutdown_timeout_s=10)
    async with Publisher(settings.kafka, ingest=ingest, adapter="twitch") as publisher:
        chat = TwitchChat(twitch, publisher)
        task = asyncio.create_task(chat.run())
        await irc.wait_for(lambda s: len(s.lines("JOIN")) == 1)
        line = privmsg("streamer", "!dispute that was a quote", user_id="31", msg_id="tw-1")
        await irc.send(line)
        await irc.wait_for(lambda s: len(s.lines("@reply-parent-msg-id=tw-1")) == 1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await irc.stop()
    return irc.lines("@reply-parent-msg-id=tw-1")


async def webhook_disputes(settings: Settings) -> list[int]:
    """Six disputes of one user through ``POST /v1/disputes`` (HMAC-signed); their statuses."""
    ingest = IngestSettings(
        webhook_hmac_secret=SecretStr(HMAC_SECRET),
        webhook_platforms=["discord"],
        webhook_port=free_port(),
        shutdown_timeout_s=10,
    )
    statuses = []
    async with Publisher(settings.kafka, ingest=ingest, adapter="webhook") as publisher:
        runner = web.AppRunner(WebhookAPI(ingest, publisher).app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", ingest.webhook_port).start()
        url = f"http://127.0.0.1:{ingest.webhook_port}/v1/disputes"
        async with ClientSession() as session:
            # The same dispute twice, then other messages, up to one past the limit (5).
            # (A signed request is taken once: the repeat says something new, as a user would.)
            for index, message in enumerate(["w1", "w1", "w2", "w3", "w4", "w5"]):
                dispute = {"platform": "discord", "community": "g9", "user": "u9"}
                body = json.dumps(
                    {**dispute, "message_id": message, "reason": f"try {index}"}
                ).encode()
                stamp = str(int(time.time()))
                headers = {
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: webhook_signature(HMAC_SECRET, stamp, body),
                }
                async with session.post(url, data=body, headers=headers) as reply:
                    statuses.append(reply.status)
        await runner.cleanup()
    return statuses


async def test_a_dispute_from_each_platform_is_one_feedback_per_action(
    settings: Settings, bots: tuple[str, FakeSlack]
) -> None:
    base, slack = bots
    discord_url = f"{base}/bots/discord/interactions"
    link = "https://discord.com/channels/5000/777/888"
    for _ in range(2):
        status, reply = await send_interaction(
            discord_url,
            KEY,
            interaction(2, user="41", data=command("dispute", message=link, reason="a quote")),
        )
        assert status == 200 and reply["data"]["flags"] == 64, reply
        assert "recorded" in reply["data"]["content"]
    slack_url = f"{base}/bots/slack/events"
    permalink = "<https://acme.slack.com/archives/C0001/p1712345678000100>"
    for _ in range(2):
        status, reply = await send_signed(
            slack_url, SLACK_SECRET, slash_command(f"dispute {permalink} sarcasm", user="U41")
        )
        assert status == 200 and reply["response_type"] == "ephemeral", reply
        assert "recorded" in reply["text"]

    assert await webhook_disputes(settings) == [202, 202, 202, 202, 202, 429]
    replies = await twitch_dispute(settings)
    assert "PRIVMSG #streamer :@viewer your dispute is recorded" in replies[0]

    topic = FEEDBACK.name_for(settings.kafka.topic_suffix)
    records = [Feedback.model_validate(r) for r in await consume(settings, topic, count=10)]
    assert len(records) == 10
    by_source: dict[str, set[tuple[str, str]]] = {}
    for record in records:
        assert record.kind == "dispute"
        by_source.setdefault(str(record.source), set()).add((record.feedback_id, record.message_id))
    # Repeats are the same dispute: one id per (user, message) whatever the route.
    assert {m for _, m in by_source["discord"]} == {"888"} and len(by_source["discord"]) == 1
    assert by_source["slack"] == {(next(iter(by_source["slack"]))[0], "C0001:1712345678.000100")}
    assert {m for _, m in by_source["webhook"]} == {"w1", "w2", "w3", "w4"}
    assert len(by_source["webhook"]) == 4
    assert {m for _, m in by_source["twitch"]} == {"tw-1"}
    # The !dispute line is chat too (an abusive dispute is moderated like any line).
    chat = await consume(settings, CHAT_MESSAGES.name_for(settings.kafka.topic_suffix), count=1)
    assert [(c["message_id"], c["text"]) for c in chat] == [("tw-1", "!dispute that was a quote")]
    # A dispute needs no Slack call (bolt checks its token once): it is answered in the reply.
    assert {r.bucket for r in slack.requests} <= {"auth.test"}


async def test_moderator_commands_on_the_real_database(
    bots: tuple[str, FakeSlack], db: Database
) -> None:
    base, _ = bots
    url = f"{base}/bots/discord/interactions"
    guild, user = str(uuid.uuid4().int % 10**18), "4242"
    async with db.transaction() as cur:
        await add(
            cur,
            [
                NewStrike("discord", guild, user, f"{guild}-m{i}", 1, False, "insult", "v1", 7.0)
                for i in range(2)
            ],
        )

    # Not a moderator: refused, ephemerally, and nothing changes.
    _, refused = await send_interaction(
        url,
        KEY,
        interaction(
            2, guild=guild, permissions=1 << 10, data=command("pardon", user=user, reason="ok")
        ),
    )
    assert refused["data"]["flags"] == 64
    assert refused["data"]["content"].startswith("Only moderators")

    _, strikes = await send_interaction(
        url,
        KEY,
        interaction(2, guild=guild, permissions=MODERATOR, data=command("strikes", user=user)),
    )
    assert strikes["data"]["flags"] == 64
    assert strikes["data"]["content"].startswith(f"<@{user}> has 2 active strike(s)")

    _, pardoned = await send_interaction(
        url,
        KEY,
        interaction(
            2,
            guild=guild,
            user="77",
            permissions=MODERATOR,
            data=command("pardon", user=user, reason="context"),
        ),
    )
    assert pardoned["data"]["content"] == f"Pardoned <@{user}>: 2 strike(s) cleared."
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT moderator, reason FROM pardons WHERE community = %s AND user_id = %s",
            (guild, user),
        )
        assert await cur.fetchall() == [("discord:77 (bot command)", "context")]

    # /explain: the stored explanation of a decision of this server, and nothing of another's.
    message = str(uuid.uuid4().int % 10**18)
    async with db.transaction() as cur:
        await cur.execute(
            "INSERT INTO decisions (message_id, platform, community, channel, user_id,"
            " policy_version, model_version, severity, rule, strikes_added, strikes_active,"
            " shadow, reason, labels) VALUES (%s, 'discord', %s, '7', %s, 'v1', 'm1', 'HIGH',"
            " 'HIGH', 1, 1, false, 'policy: HIGH', %s)",
            (message, guild, user, ["insult"]),
        )
        document = {
            "weights": [{"token": "idiot", "weight": 0.61}, {"token": "you", "weight": 0.1}]
        }
        await cur.execute(
            "INSERT INTO explanations (message_id, document) VALUES (%s, %s)",
            (message, json.dumps(document)),
        )
    link = f"https://discord.com/channels/{guild}/7/{message}"
    _, explained = await send_interaction(
        url,
        KEY,
        interaction(2, guild=guild, permissions=MODERATOR, data=command("explain", message=link)),
    )
    text = explained["data"]["content"]
    assert "HIGH (rule HIGH, labels insult)" in text and "Words: idiot +0.61, you +0.10" in text
    _, elsewhere = await send_interaction(
        url,
        KEY,
        interaction(2, guild="1", permissions=MODERATOR, data=command("explain", message=message)),
    )
    assert elsewhere["data"]["content"].startswith("No automated decision")

    _, shadow = await send_interaction(
        url,
        KEY,
        interaction(2, guild=guild, permissions=MODERATOR, data=command("shadow", mode="on")),
    )
    assert shadow["data"]["content"].startswith("Shadow mode on")
    _, policy = await send_interaction(
        url,
        KEY,
        interaction(2, guild=guild, permissions=MODERATOR, data=command("policy", "show")),
    )
    assert "shadow (decides, acts on nothing)" in policy["data"]["content"]

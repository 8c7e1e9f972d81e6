"""The privacy and statistics bot commands end to end on the real PostgreSQL and Redis, each
platform reached the way it reaches us: Discord's signed interactions, Slack's signed slash
commands (with the fake Slack Web API answering ``users.info``), Twitch chat over the fake IRC
server. A user forgets and opts out only themself; moderators may forget anyone and see the
stats and the leaderboard; nobody else sees them."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fakes.slack import BOT_TOKEN, FakeSlack
from fakes.twitch_irc import TwitchIrcServer
from fastapi import FastAPI
from pydantic import SecretStr

from actioners.bots import discord_router, slack_router
from actioners.bots.moderation import BotCommands
from actioners.bots.twitch import TwitchBot
from actioners.database import Database
from core.settings import BotSettings, PrivacySettings, Settings
from devkit.platforms.discord import command, interaction, sign_interaction
from devkit.platforms.slack import sign_request, slash_command
from schemas.events import Feedback

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
SIGNING = "slack-signing-secret"
PRIVACY = PrivacySettings(pseudonym_secret=SecretStr("bot-test-pseudonym-secret-0123"))
MODERATE_MEMBERS = 1 << 40


class NoFeedback:
    async def send(self, feedback: Feedback) -> None:
        raise AssertionError("no disputes here")


async def seed(db: Database, platform: str, community: str, *users: str) -> None:
    """A decision, a strike and a done action per user."""
    async with db.transaction() as cur:
        for user in users:
            m = uuid.uuid4().hex
            await cur.execute(
                "INSERT INTO decisions (message_id, platform, community, channel, user_id,"
                " policy_version, model_version, severity, rule, strikes_added,"
                " strikes_active, shadow, reason, text) VALUES (%s, %s, %s, '1', %s, 'p@1',"
                " 'm1', 'HIGH', 'r', 1, 1, false, 'r', 'some text')",
                (m, platform, community, user),
            )
            await cur.execute(
                "INSERT INTO strikes (platform, community, user_id, message_id, points, reason,"
                " policy_version, expires_at) VALUES (%s, %s, %s, %s, 1, 'r', 'p@1',"
                " now() + interval '1 day')",
                (platform, community, user, m),
            )
            await cur.execute(
                "INSERT INTO action_audit (action_id, message_id, platform, community,"
                " channel, user_id, kind, status, executor, reason, severity, p_toxic,"
                " model_version, policy_version, sent_at, requested_at, completed_at) VALUES"
                " (%s, %s, %s, %s, '1', %s, 'warn', 'done', 'log', 'r', 'HIGH', 0.9, 'm1',"
                " 'p@1', now(), now(), now())",
                (f"{m}:warn", m, platform, community, user),
            )


async def rows(db: Database, platform: str, community: str, user: str) -> int:
    """The user's decisions and strikes left."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT (SELECT count(*) FROM decisions WHERE platform = %(p)s AND community = %(c)s"
            " AND user_id = %(u)s) + (SELECT count(*) FROM strikes WHERE platform = %(p)s"
            " AND community = %(c)s AND user_id = %(u)s)",
            {"p": platform, "c": community, "u": user},
        )
        row = await cur.fetchone()
    return int(row[0]) if row else -1


def _settings(migrated: Settings, **bots: Any) -> Settings:
    # The ingest adapters of this deployment drop opted-out users (the bots say so only then).
    ingest = migrated.ingest.model_copy(update={"opt_out": "redis"})
    return migrated.model_copy(
        update={"privacy": PRIVACY, "bots": BotSettings(**bots), "ingest": ingest}
    )


async def test_discord_privacy_stats_and_leaderboard(
    migrated: Settings, db: Database, redis: aioredis.Redis
) -> None:
    guild = str(uuid.uuid4().int % 10**18)
    member, other, mod = (str(uuid.uuid4().int % 10**18) for _ in range(3))
    await seed(db, "discord", guild, member, other)
    app = FastAPI()
    app.include_router(
        discord_router(db, NoFeedback(), _settings(migrated, discord_public_key=PUBLIC))
    )
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://bots") as client:

        async def say(user: str, data: dict[str, Any], permissions: int = 0) -> str:
            payload = interaction(2, guild=guild, user=user, permissions=permissions, data=data)
            body = json.dumps(payload).encode()
            reply = await client.post(
                "/bots/discord/interactions", content=body, headers=sign_interaction(KEY, body)
            )
            assert reply.status_code == 200 and reply.json()["data"]["flags"] == 64
            return str(reply.json()["data"]["content"])

        # A member cannot forget someone else, nor see the stats.
        refused = await say(member, command("privacy", "forget", user=other))
        assert refused == "You can only ask for your own data to be deleted."
        assert (await say(member, command("leaderboard"))).startswith("Only moderators")
        assert (await say(member, command("stats", user=other))).startswith("Only moderators")
        assert await rows(db, "discord", guild, other) == 2

        board = await say(mod, command("leaderboard"), MODERATE_MEMBERS)
        assert "Most actioned:" in board and f"<@{member}>: 1 action(s)" in board

        mine = await say(member, command("privacy", "forget"))
        assert mine.startswith("Your data in this community is deleted"), mine
        assert await rows(db, "discord", guild, member) == 0
        assert await rows(db, "discord", guild, other) == 2
        theirs = await say(mod, command("privacy", "forget", user=other), MODERATE_MEMBERS)
        assert theirs.startswith(f"<@{other}>'s data in this community is deleted"), theirs
        assert await rows(db, "discord", guild, other) == 0

        shown = await say(mod, command("stats", user=member), MODERATE_MEMBERS)
        assert (
            shown == f"Nothing is shown for <@{member}>: they opted out or asked to be forgotten."
        )
        assert "Most actioned: nobody yet." in await say(
            mod, command("leaderboard"), MODERATE_MEMBERS
        )

        key = f"discord:{guild}:{member}"
        assert (await say(member, command("privacy", "opt-out"))).startswith("You are opted out")
        assert await redis.sismember(migrated.ingest.opt_out_key, key)  # type: ignore[misc]
        assert await say(member, command("privacy", "opt-in")) == "You are opted back in."
        assert not await redis.sismember(migrated.ingest.opt_out_key, key)  # type: ignore[misc]

    # Where the ingest adapters do not drop opted-out users, the bot does not claim they do.
    off = migrated.model_copy(
        update={"ingest": migrated.ingest.model_copy(update={"opt_out": "none"})}
    )
    plain = BotCommands(db, NoFeedback(), off, redis=redis)
    honest = await plain.opt("discord", guild, member, out=True)
    assert honest.startswith("You are on the opt-out list, but this deployment does not drop")
    assert await plain.opt("discord", guild, member, out=False) == "You are opted back in."


async def test_slack_privacy_and_moderator_stats(
    migrated: Settings, db: Database, redis: aioredis.Redis
) -> None:
    team = "T" + uuid.uuid4().hex[:10].upper()
    member, admin = "U" + uuid.uuid4().hex[:8].upper(), "U" + uuid.uuid4().hex[:8].upper()
    await seed(db, "slack", team, member)
    fake = FakeSlack()
    await fake.start()
    fake.admins.add(admin)
    settings = _settings(migrated, slack_signing_secret=SecretStr(SIGNING))
    settings.platforms.slack = settings.platforms.slack.model_copy(
        update={"bot_token": SecretStr(BOT_TOKEN), "api_base_url": fake.base_url}
    )
    app = FastAPI()
    app.include_router(slack_router(db, NoFeedback(), settings))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bots"
        ) as client:

            async def say(user: str, text: str) -> str:
                body = urlencode(slash_command(text, user=user, team=team)).encode()
                reply = await client.post(
                    "/bots/slack/events", content=body, headers=sign_request(SIGNING, body)
                )
                assert reply.status_code == 200 and reply.json()["response_type"] == "ephemeral"
                return str(reply.json()["text"])

            assert (await say(member, "leaderboard")).startswith("Only workspace admins")
            stats = await say(admin, f"stats <@{member}|someone>")
            assert stats.startswith(f"<@{member}> since") and "Actions done: 1 (1 warn)." in stats
            assert (await say(member, "privacy")).startswith("/warden privacy forget")
            assert (await say(member, "privacy opt-out")).startswith("You are opted out")
            assert await redis.sismember(migrated.ingest.opt_out_key, f"slack:{team}:{member}")  # type: ignore[misc]
            assert (await say(admin, f"stats <@{member}>")).startswith("Nothing is shown")
            forgot = await say(member, "privacy forget")
            assert forgot.startswith("Your data in this community is deleted"), forgot
            assert await rows(db, "slack", team, member) == 0
            assert (await say(member, "privacy opt-in")) == "You are opted back in."
    finally:
        await fake.close()


async def test_twitch_viewers_forget_themselves_and_moderators_see_the_leaderboard(
    migrated: Settings, db: Database
) -> None:
    room, viewer, mod = (str(uuid.uuid4().int % 10**12 + n) for n in (0, 1, 2))
    await seed(db, "twitch", room, viewer)
    irc = TwitchIrcServer()
    await irc.start()
    settings = _settings(migrated)
    settings.platforms.twitch = settings.platforms.twitch.model_copy(
        update={
            "irc_url": irc.url,
            "nick": "wardenbot",
            "token": SecretStr("oauth:abc"),
            "channels": ["streamer"],
        }
    )
    bot = TwitchBot(settings, BotCommands(db, NoFeedback(), settings))
    task = asyncio.create_task(bot.run())
    moderator = {"login": "mod1", "user_id": mod, "badges": "moderator/1", "room_id": room}
    as_viewer = {"login": "viewer", "user_id": viewer, "room_id": room}
    try:
        await asyncio.wait_for(bot.connected.wait(), 10)
        await irc.wait_for(lambda s: bool(s.lines("JOIN")))
        await irc.say("streamer", "!warden leaderboard", **as_viewer)  # ignored: no reply
        await irc.say("streamer", "!warden leaderboard", **moderator)
        await irc.wait_for(lambda s: len(s.said("streamer")) == 1)
        board = irc.said("streamer")[0]
        assert board.startswith("@mod1 twitch:") and "1. @viewer: 1 action(s)" in board, board

        await irc.say("streamer", "!warden forget", **as_viewer)
        await irc.wait_for(lambda s: len(s.said("streamer")) == 2)
        assert irc.said("streamer")[1].startswith("@viewer Your data in this community is deleted")
        assert await rows(db, "twitch", room, viewer) == 0
        await irc.say("streamer", "!warden stats @viewer", **moderator)
        await irc.wait_for(lambda s: len(s.said("streamer")) == 3)
        assert irc.said("streamer")[2].startswith("@mod1 Nothing is shown for @viewer")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await irc.stop()

"""The privacy and statistics bot commands' checks that need no server: who may forget whom,
who may see the stats, and the text of the numbers (the database and Redis are never reached
here; tests/integration/test_privacy_bots.py runs the commands on the stack)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fakes.twitch_irc import privmsg
from fastapi import FastAPI

from actioners.bots import discord_router
from actioners.bots.moderation import BotCommands
from actioners.bots.twitch import TwitchCommands
from actioners.stats import WINDOW_DAYS, Counts, _days, render_community, render_user
from core.settings import BotSettings, Settings
from core.twitch_irc import parse_line
from devkit.platforms.discord import command, interaction, sign_interaction
from schemas.events import Feedback

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


class Untouched:
    """A database that fails the test when any command reaches it."""

    def transaction(self) -> Any:
        raise AssertionError("the command reached the database")


class NoFeedback:
    async def send(self, feedback: Feedback) -> None:
        raise AssertionError("no disputes here")


async def test_discord_members_forget_only_themselves_and_see_no_stats() -> None:
    settings = Settings(bots=BotSettings(discord_public_key=PUBLIC))
    app = FastAPI()
    app.include_router(discord_router(Untouched(), NoFeedback(), settings))  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bots"
    ) as client:

        async def say(data: dict[str, Any], **kw: Any) -> str:
            body = json.dumps(interaction(2, user="42", data=data, **kw)).encode()
            reply = await client.post(
                "/bots/discord/interactions", content=body, headers=sign_interaction(KEY, body)
            )
            return str(reply.json()["data"]["content"])

        assert await say(command("privacy", "forget", user="43")) == (
            "You can only ask for your own data to be deleted."
        )
        for data in (command("stats", user="43"), command("leaderboard")):
            assert (await say(data)).startswith("Only moderators")
        dm = await say(command("privacy", "opt-out"), guild=None)
        assert dm == "Use this command in the server whose data it is about."
        assert await say(command("privacy", "export")) == "Unknown command /privacy export."


async def test_twitch_viewers_name_nobody_else_and_get_no_stats() -> None:
    handler = TwitchCommands(BotCommands(Untouched(), NoFeedback(), Settings()))  # type: ignore[arg-type]

    async def answer(text: str, **kw: Any) -> str | None:
        return await handler.answer(parse_line(privmsg("streamer", text, **kw)))

    handler.chatters.saw("5000", "other", "1002")
    assert await answer("!warden forget @other") == (
        "You can only ask for your own data to be deleted."
    )
    assert await answer(
        "!warden forget", reply_parent_msg_id="m1", reply_parent_user_id="1002"
    ) == ("You can only ask for your own data to be deleted.")
    # Without the pseudonym secret nothing is deleted, and the viewer is told so.
    assert str(await answer("!warden forget")).startswith("Deletion requests are not set up")
    assert await answer("!warden leaderboard") is None  # a viewer's: ignored, no reply
    assert await answer("!warden stats @other") is None
    assert await answer("!stats @other", badges="moderator/1") is None  # no short form


def test_numbers_read_as_a_moderator_expects() -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    counts = Counts("discord", "5000", since, messages=120, toxic=7, message_days=7, flags=9)
    counts.shadow_flags = 2
    counts.actions = {("timeout", "done"): 3, ("delete", "done"): 5, ("ban", "skipped"): 1}
    counts.top = [("42", 5), ("43", 3)]
    assert render_community(counts, mention=True).splitlines() == [
        "discord:5000 since 2026-11-01 00:00 UTC:",
        "Messages: 120 (7 toxic) in the last 7 day(s) the counters cover.",
        "Flags: 9 (2 in shadow mode).",
        "Actions done: 8 (5 delete, 3 timeout); 1 skipped (shadow or exempt), 0 failed.",
        "Most actioned:",
        "1. <@42>: 5 action(s)",
        "2. <@43>: 3 action(s)",
    ]
    hidden = Counts("discord", "5000", since, user="42", hidden=True)
    assert render_user(hidden) == (
        "Nothing is shown for discord:5000:42: they opted out or asked to be forgotten."
    )
    # The counters keep WINDOW_DAYS days: a longer look back reads what there is.
    now = datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    assert len(_days(since, now)) == WINDOW_DAYS
    assert len(_days(datetime(2026, 11, 30, 23, tzinfo=UTC), now)) == 2

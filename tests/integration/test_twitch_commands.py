"""Twitch moderator commands end to end: the bot on the fake Twitch IRC server and the real
Postgres. A strike the actioner wrote for a user of a channel (its room-id) is read by a
moderator's ``!warden strikes``, survives a viewer's ``!warden pardon`` (ignored, no reply), and
is cleared by a moderator's ``!warden pardon``, recorded as ``twitch:<id> (bot command)``."""

from __future__ import annotations

import asyncio
import uuid

from fakes.twitch_irc import TwitchIrcServer
from pydantic import SecretStr

from actioners.bots.moderation import BotCommands
from actioners.bots.twitch import TwitchBot
from actioners.database import Database
from actioners.strikes import NewStrike, add
from core.settings import Settings
from schemas.events import Feedback


class NoFeedback:
    async def send(self, feedback: Feedback) -> None:
        raise AssertionError("the Twitch bot takes no disputes")


async def test_moderators_read_and_pardon_strikes_others_are_ignored(
    migrated: Settings, db: Database
) -> None:
    room, viewer, mod = (str(uuid.uuid4().int % 10**12 + n) for n in (0, 1, 2))
    message_id = f"tw-{uuid.uuid4()}"
    async with db.transaction() as cur:
        await add(
            cur,
            [NewStrike("twitch", room, viewer, message_id, 2, False, "policy: HIGH", "p@v1", 30.0)],
        )
    irc = TwitchIrcServer()
    await irc.start()
    settings = migrated.model_copy(deep=True)
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
    common = {"room_id": room}
    moderator = {"login": "mod1", "user_id": mod, "badges": "moderator/1", **common}
    try:
        await asyncio.wait_for(bot.connected.wait(), 10)
        await irc.wait_for(lambda s: bool(s.lines("JOIN")))
        await irc.say("streamer", "hello", login="viewer", user_id=viewer, **common)
        await irc.say(
            "streamer", "!warden pardon @viewer lol", login="vip", badges="vip/1", **common
        )
        await irc.say("streamer", "!warden strikes @viewer", **moderator)
        await irc.wait_for(lambda s: len(s.said("streamer")) == 1)
        strikes = irc.said("streamer")[0]
        assert strikes.startswith("@mod1 @viewer has 2 active strike(s)"), strikes
        assert "policy: HIGH" in strikes

        await irc.say("streamer", "!warden pardon @viewer false positive", **moderator)
        await irc.wait_for(lambda s: len(s.said("streamer")) == 2)
        assert irc.said("streamer")[1] == "@mod1 Pardoned @viewer: 2 strike(s) cleared."
        async with db.transaction() as cur:
            await cur.execute(
                "SELECT pardoned_by, pardon_reason FROM strikes WHERE message_id = %s",
                (message_id,),
            )
            assert await cur.fetchall() == [(f"twitch:{mod} (bot command)", "false positive")]
        assert len(irc.said("streamer")) == 2  # the viewer's pardon got no reply
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await irc.stop()

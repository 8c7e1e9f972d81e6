"""The Twitch moderator-command bot without a database: command parsing, who counts as a
moderator, the public one-line replies, the reply limit, the start-up checks, and over the
fake Twitch IRC server that a non-moderator's command gets no reply and touches nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fakes.twitch_irc import TwitchIrcServer, privmsg

from actioners.bots.moderation import BotCommands
from actioners.bots.twitch import (
    USAGE,
    Chatters,
    ReplyLimiter,
    TwitchBot,
    TwitchCommands,
    command_words,
    is_moderator,
    one_line,
    twitch_bot,
)
from actioners.database import Database
from actioners.review.web import create_app
from core.errors import ConfigError
from core.settings import Settings
from core.twitch_irc import login_lines, parse_line, user_roles
from schemas.events import Feedback


class NoFeedback:
    async def send(self, feedback: Feedback) -> None:
        raise AssertionError("the Twitch bot takes no disputes")


class Untouched:
    """A database getter that fails the test when any command reaches the database."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Database:
        self.calls += 1
        raise AssertionError("a command reached the database")


def bot_settings(url: str = "ws://127.0.0.1:1/", **bots: object) -> Settings:
    return Settings.model_validate(
        {
            "platforms": {
                "twitch": {
                    "irc_url": url,
                    "nick": "wardenbot",
                    "token": "oauth:abc",
                    "channels": ["streamer"],
                }
            },
            "bots": {"twitch_commands": True, **bots},
        }
    )


def test_commands_long_and_short_forms_and_replies() -> None:
    assert command_words("!warden strikes @viewer") == ("strikes", ["@viewer"])
    assert command_words("  !WARDEN Pardon @v spam was fine ") == (
        "pardon",
        ["@v", "spam", "was", "fine"],
    )
    assert command_words("!strikes @viewer") == ("strikes", ["@viewer"])
    assert command_words("!warden") == ("help", [])
    assert command_words("!dispute please") is None
    assert command_words("hello !warden strikes @x") is None
    # Twitch starts a reply's text with the replied-to login.
    assert command_words("@viewer !warden strikes", has_reply_parent=True) == ("strikes", [])
    assert command_words("@viewer !warden strikes") is None


def test_only_moderator_or_broadcaster_tags_count() -> None:
    def tags(**kw: object) -> dict[str, str]:
        return parse_line(privmsg("streamer", "!warden strikes @x", **kw)).tags

    assert is_moderator(tags(badges="moderator/1"))
    assert is_moderator(tags(badges="broadcaster/1,subscriber/12"))
    assert is_moderator(tags(mod=True))  # mod=1 with the badge hidden
    assert not is_moderator(tags(badges="vip/1,subscriber/3"))
    assert not is_moderator(tags())
    assert user_roles({"badges": "", "mod": "1"}) == ["moderator"]


def test_replies_are_one_public_line_without_the_users_words() -> None:
    chatters = Chatters()
    chatters.saw("5000", "Viewer", "1001")
    answer = "<@1001> has 2 active strike(s).\n- 2026-11-30 20:00 2 pt: policy HIGH\n"
    assert one_line(answer, chatters) == (
        "@viewer has 2 active strike(s). | - 2026-11-30 20:00 2 pt: policy HIGH"
    )
    explained = "Message m1: HIGH (rule r).\nReason: x\nWords: idiot +0.80.\n- timeout: done"
    assert one_line(explained, chatters) == "Message m1: HIGH (rule r). | - timeout: done"
    assert one_line("<@77> ok", chatters) == "user 77 ok"
    assert chatters.user_id("5000", "VIEWER") == "1001" and chatters.user_id("9", "viewer") is None


def test_chatters_and_replies_are_bounded() -> None:
    chatters = Chatters(kept=2)
    for n in range(3):
        chatters.saw("1", f"u{n}", str(n))
    assert chatters.user_id("1", "u0") is None and chatters.login("0") is None
    assert chatters.user_id("1", "u2") == "2"
    now = [0.0]
    limiter = ReplyLimiter(2, 30.0, clock=lambda: now[0])
    assert limiter.take() and limiter.take() and not limiter.take()
    now[0] = 30.0
    assert limiter.take()


async def test_commands_name_their_user_or_answer_why_not() -> None:
    handler = TwitchCommands(BotCommands(Untouched(), NoFeedback(), Settings()))

    async def answer(text: str, **kw: object) -> str | None:
        return await handler.answer(parse_line(privmsg("streamer", text, **kw)))

    mod = {"login": "mod1", "user_id": "2002", "badges": "moderator/1"}
    assert await answer("!warden", **mod) == USAGE
    assert await answer("!warden strikes @nobody", **mod) == (
        "I have not seen @nobody chat here since I started; give their user id"
    )
    bad_name = await answer("!warden pardon @x;y r", **mod)
    assert bad_name == "name the user as @login or their user id"
    assert await answer("!warden shadow maybe", **mod) == "!warden shadow on | !warden shadow off"
    assert await answer("!warden explain", **mod) == "give the message id (or reply to the line)"
    assert await answer("just chatting", **mod) is None
    # Sent as a Twitch reply, the replied-to user is the target unless one is named.
    handler.chatters.saw("5000", "viewer", "1001")
    reply = {"reply-parent-user-id": "1001"}
    assert handler._target("5000", ["false", "positive"], reply) == ("1001", ["false", "positive"])
    assert handler._target("5000", ["@Viewer", "ok"], reply) == ("1001", ["ok"])
    assert handler._target("5000", ["42", "ok"], {}) == ("42", ["ok"])


def test_the_bot_refuses_to_start_without_its_login() -> None:
    assert twitch_bot(Settings(), Untouched(), NoFeedback()) is None
    no_token = bot_settings().model_copy(deep=True)
    no_token.platforms.twitch.token = None
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__TWITCH__TOKEN"):
        twitch_bot(no_token, Untouched(), NoFeedback())
    anonymous = bot_settings().model_copy(deep=True)
    anonymous.platforms.twitch.nick = "justinfan123"
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__TWITCH__NICK"):
        twitch_bot(anonymous, Untouched(), NoFeedback())
    review = Settings.model_validate(
        {"review": {"session_secret": "s" * 40}, "bots": {"twitch_commands": True}}
    )
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__TWITCH__TOKEN"):
        create_app(review)  # at start, before anything connects
    assert login_lines("bot", "abc", ["a", "b"]) == [
        "CAP REQ :twitch.tv/tags twitch.tv/commands",
        "PASS oauth:abc",
        "NICK bot",
        "JOIN #a,#b",
    ]


@pytest_asyncio.fixture
async def irc() -> AsyncIterator[TwitchIrcServer]:
    server = TwitchIrcServer()
    await server.start()
    yield server
    await server.stop()


async def test_over_irc_only_moderators_get_answers(irc: TwitchIrcServer) -> None:
    db = Untouched()
    bot = TwitchBot(bot_settings(irc.url), BotCommands(db, NoFeedback(), Settings()))
    task = asyncio.create_task(bot.run())
    try:
        await asyncio.wait_for(bot.connected.wait(), 10)
        await irc.wait_for(lambda s: len(s.lines("JOIN")) == 1)
        assert irc.lines("PASS") == ["PASS oauth:abc"] and irc.lines("NICK") == ["NICK wardenbot"]
        # A viewer (VIP, subscriber: not a moderator) tries to pardon; then a moderator asks.
        await irc.say("streamer", "!warden pardon @viewer because", login="vip", badges="vip/1")
        await irc.say("streamer", "!strikes", login="someone", user_id="3003")
        asked = await irc.say(
            "streamer", "!warden", login="mod1", display_name="Mod1", badges="moderator/1"
        )
        await irc.send(":tmi.twitch.tv PING :tmi.twitch.tv")
        await irc.wait_for(lambda s: bool(s.said("streamer")) and bool(s.lines("PONG")))
        assert irc.said("streamer") == [f"@mod1 {USAGE}"]
        assert [line.split(" ", 1)[0] for line in irc.lines("@reply-parent-msg-id=" + asked)]
        assert db.calls == 0  # the viewer's pardon never reached the database
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

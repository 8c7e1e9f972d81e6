"""Moderator commands in Twitch chat: a bot on Twitch IRC (over WebSocket) that answers
``!warden strikes @user``, ``!warden pardon @user <reason>``, ``!warden explain <message id>``,
``!warden policy show``, ``!warden policy preset <name>`` and ``!warden shadow on|off`` (and
the short forms ``!strikes @user``, ``!pardon ...``, ``!explain ...``, ``!policy``, ``!shadow``).

Privacy: anyone may send ``!warden forget`` (their data in this channel is deleted),
``!warden optout`` and ``!warden optin`` (about themself); a moderator may ``!warden forget
@user``. ``!warden stats @user`` and ``!warden leaderboard`` are moderators'. None of these has
a short form: ``!stats`` and the like belong to many other bots.

Who may: only a line whose IRCv3 tags carry the ``moderator`` or ``broadcaster`` badge, or
``mod=1`` (the privacy commands above: anyone). Those tags are set by Twitch's server (a
client can send only ``+``-prefixed client tags), so they are the platform's own permission
check. Anyone else's command is ignored without a reply: a reply to everyone would let any
viewer make the bot talk (and spend its reply budget).

Where: the community is the line's ``room-id`` tag (the broadcaster's user id), as the ingest
adapter writes it into every ChatMessage, so the commands read and clear the very strikes the
actioner wrote. Users are Twitch user ids; ``@login`` is resolved from the logins the bot has
seen chat in that channel since it started (the ``user-id`` tag of their lines), a bare
number is taken as the user id, and a command sent as a reply (Twitch's "Reply" button)
targets the replied-to user or message (``reply-parent-user-id``, ``reply-parent-msg-id``).

Replies: Twitch has no ephemeral replies, so an answer is public: ``@<mod> <answer>`` on one
line of at most ``MAX_REPLY`` characters, threaded to the command. It never repeats a user's
chat text (the explanation's weighted words are left out; ``/explain`` on Discord or Slack and
the review app show them). At most ``WARDEN_BOTS__TWITCH_REPLY_LIMIT`` replies per 30 s are
sent (Twitch silences a bot that sends more); beyond it a reply is dropped and logged.

A pardon is recorded as by ``twitch:<moderator's user id> (bot command)``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable

import aiohttp

from actioners.bots.feedback import FeedbackSink
from actioners.bots.moderation import MESSAGE_ID, BadArgument, BotCommands
from actioners.database import Database
from core.errors import ConfigError
from core.settings import Settings
from core.twitch_irc import IrcClient, IrcLine, Reconnect, parse_line, user_roles

logger = logging.getLogger(__name__)

PLATFORM = "twitch"
PREFIX = "!warden"
SUBCOMMANDS = frozenset({"strikes", "pardon", "explain", "policy", "shadow"})
USAGE = (
    "usage: !warden strikes @user | pardon @user <reason> | explain <message id> | "
    "policy show | policy preset <name> | shadow on|off | stats @user | leaderboard | "
    "forget [@user] | optout | optin"
)
# Anyone's, about themself (actioners.bots.privacy).
PRIVACY_COMMANDS = frozenset({"forget", "optout", "opt-out", "optin", "opt-in"})
MODERATOR_ROLES = frozenset({"moderator", "broadcaster"})
# Twitch refuses a chat line over 500 characters.
MAX_REPLY = 500
# A command line longer than this is not read (nothing a moderator types needs more).
MAX_COMMAND = 600
WINDOW_S = 30.0
CHATTERS_KEPT = 20_000
LOGIN = re.compile(r"^@?([A-Za-z0-9_]{1,25})$")
MENTION = re.compile(r"<@([^>\s]{1,64})>")
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class ReplyLimiter:
    """At most ``limit`` replies per sliding ``window_s``; ``take`` says whether one may go."""

    def __init__(
        self, limit: int, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.sent: deque[float] = deque()

    def take(self) -> bool:
        """Count one reply now; False (and nothing counted) when the window is full."""
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.window_s:
            self.sent.popleft()
        if len(self.sent) >= self.limit:
            return False
        self.sent.append(now)
        return True


class Chatters:
    """The user id of each login seen chatting in a channel (room), newest ``kept`` only."""

    def __init__(self, kept: int = CHATTERS_KEPT) -> None:
        self.kept = kept
        self.ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.logins: dict[str, str] = {}

    def saw(self, room: str, login: str, user_id: str) -> None:
        key = (room, login.lower())
        self.ids[key] = user_id
        self.ids.move_to_end(key)
        self.logins[user_id] = login.lower()
        while len(self.ids) > self.kept:
            (_, old), old_id = self.ids.popitem(last=False)
            if self.logins.get(old_id) == old:
                del self.logins[old_id]

    def user_id(self, room: str, login: str) -> str | None:
        return self.ids.get((room, login.lower()))

    def login(self, user_id: str) -> str | None:
        return self.logins.get(user_id)


def is_moderator(tags: dict[str, str]) -> bool:
    """Whether the line's tags say its sender moderates the channel (or owns it)."""
    return not MODERATOR_ROLES.isdisjoint(user_roles(tags))


def command_words(text: str, has_reply_parent: bool = False) -> tuple[str, list[str]] | None:
    """(sub-command, arguments) of a ``!warden ...`` line or a short form (``!strikes ...``);
    None for any other line. A Twitch reply's text starts with ``@<replied-to login>``."""
    words = text.strip()[:MAX_COMMAND].split()
    if has_reply_parent and words and words[0].startswith("@"):
        words = words[1:]
    if not words:
        return None
    head = words[0].lower()
    if head == PREFIX:
        if len(words) < 2:
            return "help", []
        return words[1].lower(), words[2:]
    if head.startswith("!") and head[1:] in SUBCOMMANDS:
        return head[1:], words[1:]
    return None


def one_line(answer: str, chatters: Chatters) -> str:
    """A BotCommands answer as one public chat line: ``<@id>`` as the login when known, no
    explanation words (they are the user's own chat text), lines joined with `` | ``."""

    def name(match: re.Match[str]) -> str:
        login = chatters.login(match.group(1))
        return f"@{login}" if login else f"user {match.group(1)}"

    kept = [
        MENTION.sub(name, part).strip()
        for part in answer.splitlines()
        if part.strip() and not part.startswith(("Words:", "Reason:"))
    ]
    return CONTROL.sub(" ", " | ".join(kept))


class TwitchCommands:
    """Turns a moderator's PRIVMSG into the reply text (None: no reply at all)."""

    def __init__(self, commands: BotCommands, chatters: Chatters | None = None) -> None:
        self.commands = commands
        self.chatters = chatters or Chatters()

    async def answer(self, line: IrcLine) -> str | None:
        """The reply to one PRIVMSG: None unless it is a command from a moderator."""
        if line.command != "PRIVMSG" or len(line.params) < 2:
            return None
        tags = line.tags
        room, user = tags.get("room-id", ""), tags.get("user-id", "")
        if not room or not user:
            return None
        if line.nick:
            self.chatters.saw(room, line.nick, user)
        parsed = command_words(line.params[1], bool(tags.get("reply-parent-msg-id")))
        if parsed is None:
            return None
        name, words = parsed
        moderator = is_moderator(tags)
        if name in PRIVACY_COMMANDS:
            try:
                answer = await self._privacy(name, words, room, user, tags, moderator)
            except BadArgument as exc:
                answer = str(exc)
            return one_line(answer, self.chatters)
        if not moderator:
            logger.info("Twitch command from non-moderator %s in %s ignored", user, room)
            return None
        try:
            answer = await self._run(name, words, room, tags, f"twitch:{user} (bot command)")
        except BadArgument as exc:
            answer = str(exc)
        return one_line(answer, self.chatters)

    def _target(self, room: str, words: list[str], tags: dict[str, str]) -> tuple[str, list[str]]:
        """(user id, the words after the user): the user named first (``@login``, a login or a
        user id), or, for a command sent as a reply, the replied-to user."""
        parent = tags.get("reply-parent-user-id", "")
        named = bool(words) and (words[0].startswith("@") or words[0].isdigit() or not parent)
        if not named:
            if parent.isdigit():
                return parent, words
            raise BadArgument("name the user: @login (or reply to one of their lines)")
        match = LOGIN.match(words[0])
        if not match:
            raise BadArgument("name the user as @login or their user id")
        found = self.chatters.user_id(room, match.group(1))
        if found is None and match.group(1).isdigit():
            found = match.group(1)
        if found is None:
            raise BadArgument(
                f"I have not seen @{match.group(1)} chat here since I started; give their user id"
            )
        return found, words[1:]

    async def _privacy(
        self,
        name: str,
        words: list[str],
        room: str,
        user: str,
        tags: dict[str, str],
        moderator: bool,
    ) -> str:
        """``!warden forget [@user]``, ``optout``, ``optin``: the sender's own data (a
        moderator may name someone else to forget)."""
        if name in ("optout", "opt-out", "optin", "opt-in"):
            return await self.commands.opt(PLATFORM, room, user, out="out" in name)
        target = None
        if words or tags.get("reply-parent-user-id"):
            # Named (or replied to): a viewer naming anyone but themself is refused.
            target, _ = self._target(room, words, tags)
        return await self.commands.forget(PLATFORM, room, user, target, moderator=moderator)

    async def _run(
        self, name: str, words: list[str], room: str, tags: dict[str, str], moderator: str
    ) -> str:
        first = words[0].lower() if words else ""
        if name == "strikes":
            user, _ = self._target(room, words, tags)
            return await self.commands.strikes(PLATFORM, room, user)
        if name == "pardon":
            user, reason = self._target(room, words, tags)
            return await self.commands.pardon(
                PLATFORM, room, user, moderator=moderator, reason=" ".join(reason)
            )
        if name == "explain":
            message = words[0] if words else tags.get("reply-parent-msg-id", "")
            if not MESSAGE_ID.match(message):
                raise BadArgument("give the message id (or reply to the line)")
            return await self.commands.explain(PLATFORM, room, message)
        if name == "policy":
            if first in ("", "show"):
                return await self.commands.policy_show(PLATFORM, room)
            if first == "preset" and len(words) == 2:
                return await self.commands.policy_preset(PLATFORM, room, words[1], moderator)
            raise BadArgument("!warden policy show | !warden policy preset <name>")
        if name == "stats":
            user, _ = self._target(room, words, tags)
            return await self.commands.user_stats(PLATFORM, room, user)
        if name == "leaderboard":
            return await self.commands.leaderboard(PLATFORM, room)
        if name == "shadow":
            if first not in ("on", "off"):
                raise BadArgument("!warden shadow on | !warden shadow off")
            return await self.commands.shadow(PLATFORM, room, first == "on", moderator)
        return USAGE


def require_login(settings: Settings) -> None:
    """``ConfigError`` naming the variable when the bot could not log in and join."""
    twitch = settings.platforms.twitch
    if twitch.token is None:
        raise ConfigError(
            "WARDEN_PLATFORMS__TWITCH__TOKEN: needed for WARDEN_BOTS__TWITCH_COMMANDS "
            "(a user token of the bot account with chat:read and chat:edit)"
        )
    if twitch.nick.startswith("justinfan"):
        raise ConfigError(
            "WARDEN_PLATFORMS__TWITCH__NICK: the bot account's login, not the anonymous "
            f"{twitch.nick!r}, for WARDEN_BOTS__TWITCH_COMMANDS"
        )
    if not twitch.channels:
        raise ConfigError(
            "WARDEN_PLATFORMS__TWITCH__CHANNELS: no channels for WARDEN_BOTS__TWITCH_COMMANDS"
        )


class TwitchBot(IrcClient):
    """Connects to Twitch IRC, reads the channels' chat and answers moderators' commands;
    reconnects until cancelled (at once on ``RECONNECT``, else with a growing back-off)."""

    name = "Twitch bot"

    def __init__(self, settings: Settings, commands: BotCommands) -> None:
        require_login(settings)
        twitch = settings.platforms.twitch
        channels = [c.lower().lstrip("#") for c in twitch.channels]
        super().__init__(twitch, channels, twitch.nick.lower())
        self.handler = TwitchCommands(commands)
        self.limiter = ReplyLimiter(settings.bots.twitch_reply_limit)

    async def handle(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> None:
        """One IRC line: PING, RECONNECT, a moderator's command; everything else is ignored."""
        try:
            line = parse_line(raw)
        except ValueError:
            logger.debug("unreadable IRC line ignored (%d chars)", len(raw))
            return
        if line.command == "PING":
            await ws.send_str("PONG :" + (line.params[0] if line.params else "tmi.twitch.tv"))
        elif line.command == "RECONNECT":
            raise Reconnect
        elif line.command == "NOTICE":
            logger.warning("Twitch notice: %s", line.params[-1] if line.params else "")
        elif line.command == "PRIVMSG" and (line.nick or "").lower() != self.nick:
            await self._answer(ws, line)

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, line: IrcLine) -> None:
        try:
            answer = await self.handler.answer(line)
        except asyncio.CancelledError:
            raise
        except Exception:
            # One bad command (a database hiccup) must not end the bot's connection.
            logger.exception("Twitch command in %s failed", line.params[0])
            answer = "that did not work; try again in a minute"
        if answer is None:
            return
        if not self.limiter.take():
            logger.warning("Twitch reply in %s dropped: over the reply limit", line.params[0])
            return
        head = f"@{line.nick} "
        text = head + answer[: MAX_REPLY - len(head)]
        parent = line.tags.get("id", "")
        tag = f"@reply-parent-msg-id={parent} " if MESSAGE_ID.match(parent) else ""
        await ws.send_str(f"{tag}PRIVMSG {line.params[0]} :{text}")


def twitch_bot(
    settings: Settings, db: Database | Callable[[], Database], feedback: FeedbackSink
) -> TwitchBot | None:
    """The bot when ``WARDEN_BOTS__TWITCH_COMMANDS`` is on (``ConfigError`` naming what is
    missing when it cannot log in), else None."""
    if not settings.bots.twitch_commands:
        return None
    return TwitchBot(settings, BotCommands(db, feedback, settings))

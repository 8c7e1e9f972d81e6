"""Twitch chat: IRC over WebSocket with IRCv3 tags, every PRIVMSG to ``chat.messages.v1``.

The client requests the ``twitch.tv/tags`` and ``twitch.tv/commands`` capabilities, logs in
(``PASS oauth:<token>`` and ``NICK``, or anonymously as ``justinfan...``), joins the configured
channels and then reads. It answers ``PING`` with ``PONG``, reconnects at once on ``RECONNECT``
(Twitch's notice before a server restarts) and with a growing back-off when the connection
drops, and re-joins its channels each time.

A PRIVMSG becomes a ChatMessage:

============  ===========================================================================
field         from
============  ===========================================================================
message_id    the ``id`` tag (Twitch's message UUID; the one a moderator deletes by)
community     the ``room-id`` tag (the broadcaster's user id, stable across renames)
channel       ``#<channel login>``
user          the ``user-id`` tag; ``user_name`` the ``display-name`` tag (or the login)
user_roles    badge names from ``badges`` (``broadcaster``, ``moderator``, ``vip``,
              ``subscriber``, ...)
reply_to      the ``reply-parent-msg-id`` tag
attachments   one per emote in ``emotes``: the emote's image URL, ``content_type``
              ``image/png`` and ``filename`` the emote's text
sent_at       the ``tmi-sent-ts`` tag (ms since the epoch)
============  ===========================================================================

``/me`` actions (CTCP ``ACTION``) keep their text without the CTCP framing.

Disputes: a line ``!dispute [reason]`` is published as chat like any other line (so an abusive
dispute is moderated too) and also as a ``Feedback(kind=dispute, source="twitch")`` on
``moderation.feedback.v1``, with ``message_id`` the ``!dispute`` line's own id and ``user`` its
author: Twitch has no way to point at an earlier message, so the review side attaches it to
the user's latest action in that channel. Each user may dispute ``dispute_limit`` times per
``dispute_window_s`` (``WARDEN_BOTS__*``); beyond it a line is not taken as a dispute, and no
reply is sent (a reply per refused line would let one user make the bot flood the chat).
When the adapter is logged in (``WARDEN_PLATFORMS__TWITCH__TOKEN``) it acknowledges a dispute
with a reply in the channel (``@reply-parent-msg-id``; the token needs ``chat:edit``). Read
anonymously (``justinfan``) it cannot send, and disputes are taken without a reply. Whispers
are not IRC any more (Helix only, with a verified phone number), so replies are in-channel.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from pydantic import ValidationError

from core.disputes import DisputeLimiter, limiter_key, new_dispute
from core.errors import ConfigError, TransientError
from core.settings import BotSettings, TwitchSettings
from ingest.publisher import Publisher
from schemas.events import Attachment, ChatMessage, Platform, utcnow

logger = logging.getLogger(__name__)

EMOTE_URL = "https://static-cdn.jtvnw.net/emoticons/v2/{id}/default/dark/1.0"
_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
ACTION_PREFIX = "\x01ACTION "
DISPUTE_COMMAND = "!dispute"


class Reconnect(Exception):
    """The server asked us to reconnect (``RECONNECT``)."""


@dataclass(frozen=True)
class IrcLine:
    """One parsed IRC line: IRCv3 tags, prefix, command and parameters."""

    command: str
    params: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None

    @property
    def nick(self) -> str | None:
        if self.prefix is None:
            return None
        return self.prefix.split("!", 1)[0]


def unescape_tag(value: str) -> str:
    """Undo IRCv3 tag value escapes (``\\:`` is ``;``, ``\\s`` a space, and so on)."""
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        nxt = next(chars, "")
        out.append(_TAG_ESCAPES.get(nxt, nxt))
    return "".join(out)


def parse_line(line: str) -> IrcLine:
    """Parse one IRC line (without CRLF); raises ValueError for an empty or malformed one."""
    rest = line.rstrip("\r\n")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        for item in raw_tags.split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = unescape_tag(value)
    rest = rest.lstrip(" ")
    prefix = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    rest = rest.lstrip(" ")
    trailing = None
    if " :" in rest:
        rest, trailing = rest.split(" :", 1)
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = rest.split()
    if not words:
        raise ValueError(f"not an IRC line: {line!r}")
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return IrcLine(command=words[0].upper(), params=params, tags=tags, prefix=prefix)


def badge_roles(badges: str) -> list[str]:
    """``broadcaster/1,subscriber/12`` -> ``["broadcaster", "subscriber"]``."""
    return [b.split("/", 1)[0] for b in badges.split(",") if b.split("/", 1)[0]]


def emote_attachments(emotes: str, text: str) -> list[Attachment]:
    """``25:0-4,12-16/1902:6-10`` -> one attachment per emote (first position names it)."""
    attachments = []
    for item in emotes.split("/"):
        emote_id, _, ranges = item.partition(":")
        if not emote_id or not ranges:
            continue
        start, _, end = ranges.split(",", 1)[0].partition("-")
        # Positions count Unicode code points, as Python strings do.
        name = text[int(start) : int(end) + 1] if start.isdigit() and end.isdigit() else None
        attachments.append(
            Attachment(url=EMOTE_URL.format(id=emote_id), content_type="image/png", filename=name)
        )
    return attachments


def to_chat_message(line: IrcLine, received_at: datetime | None = None) -> ChatMessage:
    """A PRIVMSG line as a ChatMessage; ValueError when a tag the mapping needs is missing."""
    if line.command != "PRIVMSG" or len(line.params) < 2:
        raise ValueError(f"not a PRIVMSG with text: {line.command}")
    tags = line.tags
    missing = [t for t in ("id", "user-id", "room-id") if not tags.get(t)]
    if missing:
        raise ValueError(f"PRIVMSG without tag(s) {', '.join(missing)} (is twitch.tv/tags on?)")
    text = line.params[1]
    if text.startswith(ACTION_PREFIX):
        text = text[len(ACTION_PREFIX) :].rstrip("\x01")
    received = received_at or utcnow()
    sent_ms = tags.get("tmi-sent-ts", "")
    sent = datetime.fromtimestamp(int(sent_ms) / 1000, UTC) if sent_ms.isdigit() else received
    roles = badge_roles(tags.get("badges", ""))
    if tags.get("mod") == "1" and "moderator" not in roles:
        roles.append("moderator")
    return ChatMessage(
        message_id=tags["id"],
        platform=Platform.TWITCH,
        community=tags["room-id"],
        channel=line.params[0],
        user=tags["user-id"],
        user_name=tags.get("display-name") or line.nick,
        user_roles=roles,
        text=text,
        attachments=emote_attachments(
            tags.get("emotes", ""), line.params[1].removeprefix(ACTION_PREFIX)
        ),
        reply_to=tags.get("reply-parent-msg-id") or None,
        sent_at=sent,
        received_at=received,
    )


class TwitchChat:
    """Reads Twitch chat and publishes every PRIVMSG; reconnects until cancelled."""

    def __init__(
        self, settings: TwitchSettings, publisher: Publisher, bots: BotSettings | None = None
    ) -> None:
        if not settings.channels:
            raise ConfigError("no Twitch channels to join (WARDEN_PLATFORMS__TWITCH__CHANNELS)")
        self.settings = settings
        self.publisher = publisher
        self.channels = [c.lower().lstrip("#") for c in settings.channels]
        self.connections = 0
        self.connected = asyncio.Event()
        bots = bots or BotSettings()
        self.disputes = DisputeLimiter(bots.dispute_limit, bots.dispute_window_s)

    async def run(self) -> None:
        """Connect, read, and reconnect (immediately on RECONNECT, else with back-off)."""
        backoff = 1.0
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self._session(session)
                    backoff = 1.0  # a clean close by the server: reconnect at once
                except Reconnect:
                    logger.info("Twitch asked for a reconnect")
                    backoff = 1.0
                    continue
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    logger.warning("Twitch connection lost (%r); again in %.0f s", exc, backoff)
                finally:
                    self.connected.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.reconnect_max_s)

    async def _session(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(self.settings.irc_url, heartbeat=60) as ws:
            token = self.settings.token
            await ws.send_str("CAP REQ :twitch.tv/tags twitch.tv/commands")
            if token is not None:
                secret = token.get_secret_value()
                await ws.send_str(
                    f"PASS {secret if secret.startswith('oauth:') else 'oauth:' + secret}"
                )
            await ws.send_str(f"NICK {self.settings.nick}")
            await ws.send_str("JOIN " + ",".join(f"#{c}" for c in self.channels))
            self.connections += 1
            self.connected.set()
            logger.info("connected to %s, joined %s", self.settings.irc_url, self.channels)
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    for raw in frame.data.split("\r\n"):
                        if raw:
                            await self.handle(ws, raw)
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    raise aiohttp.ClientError(f"WebSocket error: {ws.exception()!r}")

    async def handle(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> None:
        """One IRC line: answer PING, honour RECONNECT, publish PRIVMSG, ignore the rest."""
        try:
            line = parse_line(raw)
        except ValueError as exc:
            await self.publisher.reject(raw.encode(), exc, "twitch")
            return
        if line.command == "PING":
            await ws.send_str("PONG :" + (line.params[0] if line.params else "tmi.twitch.tv"))
        elif line.command == "RECONNECT":
            raise Reconnect
        elif line.command == "PRIVMSG":
            try:
                message = to_chat_message(line)
            except ValueError as exc:
                channel = line.params[0] if line.params else "?"
                await self.publisher.reject(raw.encode(), exc, f"twitch:{channel}")
                return
            await self.publisher.publish(message)
            if dispute_reason(message.text) is not None:
                await self.dispute(ws, message)
        elif line.command == "NOTICE":
            logger.warning("Twitch notice: %s", line.params[-1] if line.params else "")

    async def dispute(self, ws: aiohttp.ClientWebSocketResponse, message: ChatMessage) -> bool:
        """Publish a ``!dispute`` line as a dispute and acknowledge it; False when refused."""
        reason = dispute_reason(message.text) or ""
        key = limiter_key(Platform.TWITCH.value, message.community, message.user)
        if self.disputes.take(key) is not None:
            logger.info("dispute from %s refused: over the dispute limit", key)
            return False
        try:
            feedback = new_dispute(
                platform=Platform.TWITCH,
                community=message.community,
                message_id=message.message_id,
                user=message.user,
                reason=reason,
                source="twitch",
            )
            self.publisher.offer_feedback(feedback)
        except (ValidationError, TransientError) as exc:
            logger.warning("dispute %s not taken: %s", message.message_id, exc)
            return False
        if self.settings.token is not None:
            name = message.user_name or message.user
            await ws.send_str(
                f"@reply-parent-msg-id={message.message_id} PRIVMSG {message.channel} "
                f":@{name} your dispute is recorded; a moderator will review your latest "
                "moderation here."
            )
        return True


def dispute_reason(text: str) -> str | None:
    """The reason of a ``!dispute [reason]`` line ("" without one); None for any other line."""
    head, _, rest = text.strip().partition(" ")
    if head.lower() != DISPUTE_COMMAND:
        return None
    return rest.strip()

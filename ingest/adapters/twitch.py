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

import logging
from datetime import UTC, datetime

import aiohttp
from pydantic import ValidationError

from core.disputes import DisputeLimiter, limiter_key, new_dispute
from core.errors import ConfigError, TransientError
from core.settings import BotSettings, TwitchSettings
from core.twitch_irc import (  # re-exported: the parsing moved to core (the bot shares it)
    IrcClient,
    IrcLine,
    Reconnect,
    badge_roles,
    parse_line,
    unescape_tag,
    user_roles,
)
from ingest.publisher import Publisher
from schemas.events import Attachment, ChatMessage, Platform, utcnow

logger = logging.getLogger(__name__)

EMOTE_URL = "https://static-cdn.jtvnw.net/emoticons/v2/{id}/default/dark/1.0"
ACTION_PREFIX = "\x01ACTION "
DISPUTE_COMMAND = "!dispute"


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
    roles = user_roles(tags)
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


class TwitchChat(IrcClient):
    """Reads Twitch chat and publishes every PRIVMSG; reconnects until cancelled."""

    def __init__(
        self, settings: TwitchSettings, publisher: Publisher, bots: BotSettings | None = None
    ) -> None:
        if not settings.channels:
            raise ConfigError("no Twitch channels to join (WARDEN_PLATFORMS__TWITCH__CHANNELS)")
        super().__init__(
            settings, [c.lower().lstrip("#") for c in settings.channels], settings.nick
        )
        self.settings = settings
        self.publisher = publisher
        bots = bots or BotSettings()
        self.disputes = DisputeLimiter(bots.dispute_limit, bots.dispute_window_s)

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


__all__ = [
    "IrcLine",
    "Reconnect",
    "TwitchChat",
    "badge_roles",
    "dispute_reason",
    "emote_attachments",
    "parse_line",
    "to_chat_message",
    "unescape_tag",
]

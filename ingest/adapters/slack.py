"""Slack: ``message`` events from the Events API (HTTP) or Socket Mode, through slack-bolt.

Over HTTP, Bolt verifies every request's ``X-Slack-Signature`` with the signing secret and
refuses timestamps more than five minutes off (401), and answers Slack's URL verification.
Socket Mode needs no public endpoint: an app-level token opens a WebSocket to Slack
(``apps.connections.open``) and envelopes are acknowledged on it.

The listener runs before the acknowledgement (``process_before_response``): Slack hears "got
it" only once the message is in the publisher's buffer. While that buffer is full the listener
waits, Slack times out and retries later; retries (``X-Slack-Retry-Num``) of an event already
taken are recognised by their ``event_id`` and acknowledged without a second publish.

A ``message`` event becomes a ChatMessage:

============  ============================================================================
field         from
============  ============================================================================
message_id    ``<channel>:<ts>`` (``ts`` is unique only within a channel; ``chat.delete``
              takes the channel and the part after the last ``:``)
community     the workspace (``team``, else the envelope's ``team_id``)
channel       ``channel``; ``user`` the author's user id
reply_to      ``<channel>:<thread_ts>`` for a thread reply (``thread_ts`` != ``ts``)
attachments   ``files``: ``url_private``, ``mimetype``, ``name``
edited        ``True`` for ``message_changed`` (the new text, ``sent_at`` = the edit time)
============  ============================================================================

Bot messages, joins, deletions and link-unfurl updates (``message_changed`` without an
``edited`` mark) are not chat and are skipped.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from core.errors import ConfigError
from core.settings import SlackSettings
from ingest.publisher import Publisher
from schemas.events import Attachment, ChatMessage, Platform, utcnow

logger = logging.getLogger(__name__)

# Subtypes that are a person writing in the channel; every other subtype is skipped.
CHAT_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})
EDIT = "message_changed"


def _ts(value: str) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def to_chat_message(
    event: dict[str, Any], team_id: str | None, received_at: datetime | None = None
) -> ChatMessage | None:
    """A Slack ``message`` event as a ChatMessage; None for events that are not chat.

    Raises ValueError (pydantic's ValidationError is one) for a chat event that lacks what a
    ChatMessage needs.
    """
    subtype = event.get("subtype")
    channel = event.get("channel")
    edited = subtype == EDIT
    if edited:
        message = event.get("message") or {}
        if message.get("subtype") not in CHAT_SUBTYPES or not message.get("edited"):
            return None  # an unfurl, a tombstone, a bot's edit
        sent_at = _ts(message["edited"]["ts"])
    elif subtype in CHAT_SUBTYPES:
        message = event
        sent_at = _ts(event["ts"])
    else:
        return None
    if message.get("bot_id") or not message.get("user"):
        return None
    if not channel:
        raise ValueError("a message event without a channel")
    ts = message["ts"]
    thread_ts = message.get("thread_ts")
    community = event.get("team") or message.get("team") or team_id
    if not community:
        raise ValueError("a message event without a workspace (team)")
    attachments = [
        Attachment(
            url=f["url_private"],
            content_type=f.get("mimetype"),
            filename=f.get("name"),
            size=f["size"] if isinstance(f.get("size"), int) and f["size"] >= 0 else None,
        )
        for f in message.get("files") or []
        if f.get("url_private")
    ]
    return ChatMessage(
        message_id=f"{channel}:{ts}",
        platform=Platform.SLACK,
        community=community,
        channel=channel,
        user=message["user"],
        text=message.get("text") or "",
        attachments=attachments,
        reply_to=f"{channel}:{thread_ts}" if thread_ts and thread_ts != ts else None,
        edited=edited,
        sent_at=sent_at,
        received_at=received_at or utcnow(),
    )


class SeenEvents:
    """Event ids taken recently, so that Slack's retries are acknowledged but not republished."""

    def __init__(self, max_size: int = 50_000, ttl_s: float = 3600.0) -> None:
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._seen: OrderedDict[str, float] = OrderedDict()

    def claim(self, event_id: str) -> bool:
        """True the first time ``event_id`` is seen (within the TTL), False after."""
        now = time.monotonic()
        while self._seen and (
            len(self._seen) >= self.max_size or next(iter(self._seen.values())) < now - self.ttl_s
        ):
            self._seen.popitem(last=False)
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        return True


def build_app(settings: SlackSettings, publisher: Publisher) -> AsyncApp:
    """A Bolt app whose ``message`` listener publishes; shareable with later slash commands."""
    token = settings.bot_token.get_secret_value() if settings.bot_token else None
    socket = settings.mode == "socket"
    if not socket and settings.signing_secret is None:
        raise ConfigError(
            "the Events API needs WARDEN_PLATFORMS__SLACK__SIGNING_SECRET to verify requests"
        )
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=settings.api_base_url),
        signing_secret=settings.signing_secret.get_secret_value()
        if settings.signing_secret
        else "",
        request_verification_enabled=not socket,
        process_before_response=True,
        name="chatwarden",
    )
    seen = SeenEvents()

    @app.event("message")
    async def on_message(body: dict[str, Any], event: dict[str, Any]) -> None:
        event_id = body.get("event_id")
        if event_id and not seen.claim(event_id):
            logger.debug("event %s already taken (a Slack retry)", event_id)
            return
        raw = json.dumps(event).encode()
        try:
            message = to_chat_message(event, body.get("team_id"))
        except (ValueError, KeyError, TypeError) as exc:
            await publisher.reject(raw, exc, f"slack:{event.get('channel', '?')}")
            return
        if message is not None:
            await publisher.publish(message)

    return app

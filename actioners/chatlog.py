"""The user's recent lines per community, for the review page's "previous messages".

The actioner sees every verdict (flagged or not), so it keeps the last ``review.chat_lines``
lines of each user per community in Redis: one capped list per user (``LPUSH`` + ``LTRIM``),
expiring ``review.chat_ttl_s`` after the user's last line, written in one pipeline per verdict
batch. That costs one round trip per batch and a bounded amount of memory per active user,
and nothing is kept for users who stopped talking. Postgres would need a row per message
(every message, not only the decided ones) for a page a moderator opens now and then.

It is display data only: writing it is best effort. A Redis that is slow or away never holds up
a verdict (each write waits ``WRITE_TIMEOUT_S`` at most, and after a failure the log is not
written for ``RETRY_AFTER_S``); a line missing from the list costs a moderator some context,
never a decision. A verdict delivered twice may be pushed twice: readers drop repeats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from core.settings import Settings
from schemas.events import Verdict

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 0.25
RETRY_AFTER_S = 30.0
# A line is cut to this many characters in the log (a review page shows context, not essays).
LINE_MAX = 500


def chat_key(platform: str, community: str, user: str) -> str:
    """The Redis list of a user's recent lines in a community."""
    return f"warden:chat:{platform}:{community}:{user}"


@dataclass(frozen=True)
class ChatLine:
    message_id: str
    channel: str
    text: str
    sent_at: datetime | None
    flagged: bool


class ChatLog:
    """Writes (the actioner) and reads (the review service) the recent-lines lists."""

    def __init__(self, settings: Settings, client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.lines = settings.review.chat_lines
        self.ttl_s = settings.review.chat_ttl_s
        self._client = client
        self._retry_at = 0.0

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            from core.clients import redis_client

            self._client = redis_client(self.settings.redis)
        return self._client

    async def record(self, verdicts: Sequence[Verdict]) -> None:
        """Push each verdict's line onto its user's list (best effort; see the module)."""
        if not verdicts or self.lines <= 0 or time.monotonic() < self._retry_at:
            return
        try:
            await asyncio.wait_for(self._write(verdicts), timeout=WRITE_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:  # display data: never stop a verdict
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            logger.warning(
                "recent lines not kept for %.0f s (Redis: %s: %s)",
                RETRY_AFTER_S,
                type(exc).__name__,
                str(exc)[:200],
            )

    async def _write(self, verdicts: Sequence[Verdict]) -> None:
        pipe = self.client.pipeline(transaction=False)
        keys: set[str] = set()
        for verdict in verdicts:
            key = chat_key(verdict.platform.value, verdict.community, verdict.user)
            line = {
                "m": verdict.message_id,
                "c": verdict.channel,
                "t": verdict.text[:LINE_MAX],
                "at": verdict.sent_at.isoformat(),
                "f": verdict.flagged,
            }
            pipe.lpush(key, json.dumps(line, ensure_ascii=False))
            keys.add(key)
        for key in keys:
            pipe.ltrim(key, 0, self.lines - 1)
            pipe.expire(key, self.ttl_s)
        await pipe.execute()

    async def recent(self, platform: str, community: str, user: str) -> list[ChatLine]:
        """The user's kept lines in the community, oldest first, each once."""
        key = chat_key(platform, community, user)
        raw: list[Any] = await self.client.lrange(key, 0, self.lines - 1)  # type: ignore[misc]
        out: list[ChatLine] = []
        seen: set[str] = set()
        for item in reversed(raw):
            line = _parse(item)
            if line is not None and line.message_id not in seen:
                seen.add(line.message_id)
                out.append(line)
        return out

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _parse(item: Any) -> ChatLine | None:
    try:
        data = json.loads(item)
        sent = data.get("at")
        return ChatLine(
            message_id=str(data["m"]),
            channel=str(data.get("c", "")),
            text=str(data.get("t", "")),
            sent_at=datetime.fromisoformat(sent) if isinstance(sent, str) else None,
            flagged=bool(data.get("f", False)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None

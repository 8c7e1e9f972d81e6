"""Users who opted out of moderation analytics are dropped at ingest, before anything is stored.

The publisher asks an :class:`OptOutFilter` about every message. The default,
:class:`RedisOptOut`, reads a Redis set of user keys (``platform:community:user``, the same key
the topics use), re-reading it in the background so that no message waits on Redis; the bots'
``opt-out`` and ``warden privacy opt-out`` add to it. ``WARDEN_INGEST__OPT_OUT=none`` lets
everything through (:class:`NoOptOut`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

from schemas.events import ChatMessage

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from core.settings import Settings

logger = logging.getLogger(__name__)


class OptOutFilter(Protocol):
    """Decides, per message, whether its author opted out (then it is never published)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def excludes(self, message: ChatMessage) -> bool: ...


class NoOptOut:
    """Everyone is in (``WARDEN_INGEST__OPT_OUT=none``)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def excludes(self, message: ChatMessage) -> bool:
        return False


class RedisOptOut:
    """A Redis set of opted-out user keys, mirrored in memory and refreshed every few seconds.

    A refresh that fails keeps the last copy (and logs): Redis being briefly away must neither
    stop ingest nor let the set be forgotten. The first read happens in ``start()``, so that an
    adapter never publishes a message of an opted-out user because it started a moment early.
    """

    def __init__(self, client: aioredis.Redis, key: str, refresh_s: float = 5.0) -> None:
        self.client = client
        self.key = key
        self.refresh_s = refresh_s
        self.users: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        members: set[bytes | str] = await self.client.smembers(self.key)  # type: ignore[misc]
        self.users = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def start(self) -> None:
        try:
            await self.refresh()
        except (OSError, ConnectionError, TimeoutError) as exc:
            logger.warning("opt-out set %s unreadable at start-up: %s", self.key, exc)
        except Exception as exc:  # noqa: BLE001 - redis-py's own errors; retried by the loop
            logger.warning("opt-out set %s unreadable at start-up: %r", self.key, exc)
        self._task = asyncio.create_task(self._refresh_loop(), name="opt-out refresh")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the last copy; try again later
                logger.warning("opt-out set %s not refreshed: %r", self.key, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    def excludes(self, message: ChatMessage) -> bool:
        return message.key in self.users


def opt_out_filter(settings: Settings) -> OptOutFilter:
    """The filter the settings name (``WARDEN_INGEST__OPT_OUT``)."""
    if settings.ingest.opt_out == "redis":
        from core.clients import redis_client

        return RedisOptOut(
            redis_client(settings.redis),
            settings.ingest.opt_out_key,
            settings.ingest.opt_out_refresh_s,
        )
    return NoOptOut()

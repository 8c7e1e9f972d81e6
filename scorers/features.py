"""Per-user and per-channel context features in Redis, over a sliding 7-day window.

Layout (all keys expire 8 days after their last update, so memory stays bounded):

    wf:u:<platform:community:user>      hash  n:<day>, bad:<day>, v:<day>   messages, toxic ones
                                              and violations (flagged) per UTC day;
                                              last = epoch seconds of the latest message;
                                              c:<channel> = 1 once the user wrote there
    wf:c:<platform:community:channel>   hash  n:<day>, bad:<day>

A batch costs two round trips: one pipeline of HMGETs before scoring, and one Lua script after
it that applies every message of the batch atomically (and drops day fields that left the
window). Messages of one user inside one batch all see the context from before the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from schemas.events import ChatMessage
from warden import metrics

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)
SERVICE = "scorer"

WINDOW_DAYS = 7
TTL_SECONDS = (WINDOW_DAYS + 1) * 86_400

# ARGV: now, day, ttl, cutoff_day, then per message 5 values:
#   n_user_key_index (1-based into KEYS), channel_key_index, channel, bad, violation
# Each message names its user hash and channel hash by their position in KEYS.
_UPDATE = """
local now, day, ttl, cutoff = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local touched = {}
local i = 5
while i <= #ARGV do
  local ukey, ckey = KEYS[tonumber(ARGV[i])], KEYS[tonumber(ARGV[i + 1])]
  local channel, bad, violation = ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  redis.call('HINCRBY', ukey, 'n:' .. day, 1)
  redis.call('HINCRBY', ckey, 'n:' .. day, 1)
  if bad == 1 then
    redis.call('HINCRBY', ukey, 'bad:' .. day, 1)
    redis.call('HINCRBY', ckey, 'bad:' .. day, 1)
  end
  if violation == 1 then redis.call('HINCRBY', ukey, 'v:' .. day, 1) end
  redis.call('HSET', ukey, 'last', now, 'c:' .. channel, 1)
  touched[ukey] = true
  touched[ckey] = true
  i = i + 5
end
for key in pairs(touched) do
  redis.call('EXPIRE', key, ttl)
  local fields = redis.call('HKEYS', key)
  for _, field in ipairs(fields) do
    local d = tonumber(string.match(field, '^%a+:(%d+)$'))
    if d and d < cutoff then redis.call('HDEL', key, field) end
  end
end
return #ARGV
"""


def day_number(epoch_s: float) -> int:
    """Days since the epoch (UTC): the window's buckets."""
    return int(epoch_s // 86_400)


def channel_key(message: ChatMessage) -> str:
    return f"{message.platform.value}:{message.community}:{message.channel}"


@dataclass(frozen=True)
class Outcome:
    """What the scorer decided about one message, for the counters."""

    bad: bool
    violation: bool


def _sum(values: Sequence[Any]) -> int:
    return sum(int(v) for v in values if v is not None)


class FeatureStore:
    """Reads and updates context features; one instance per worker."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._update = client.register_script(_UPDATE)

    async def read(
        self, messages: Sequence[ChatMessage], now: float | None = None
    ) -> list[dict[str, float | None]]:
        """Context features for each message, in order (one pipelined round trip)."""
        now = time.time() if now is None else now
        today = day_number(now)
        days = range(today - WINDOW_DAYS + 1, today + 1)
        day_fields = [f"{kind}:{d}" for kind in ("n", "bad", "v") for d in days]
        users = sorted({m.key for m in messages})
        channels = sorted({channel_key(m) for m in messages})
        wanted_channels = sorted({f"c:{m.channel}" for m in messages})
        async with self.client.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.hmget(f"wf:u:{user}", [*day_fields, "last", *wanted_channels])
            for channel in channels:
                pipe.hmget(f"wf:c:{channel}", day_fields[: 2 * WINDOW_DAYS])
            replies = await pipe.execute()
        per_user = dict(zip(users, replies[: len(users)], strict=True))
        per_channel = dict(zip(channels, replies[len(users) :], strict=True))
        seen_index = {field: 3 * WINDOW_DAYS + 1 + i for i, field in enumerate(wanted_channels)}

        contexts = []
        for message in messages:
            user = per_user[message.key]
            n = _sum(user[:WINDOW_DAYS])
            bad = _sum(user[WINDOW_DAYS : 2 * WINDOW_DAYS])
            violations = _sum(user[2 * WINDOW_DAYS : 3 * WINDOW_DAYS])
            last = user[3 * WINDOW_DAYS]
            channel = per_channel[channel_key(message)]
            channel_n = _sum(channel[:WINDOW_DAYS])
            channel_bad = _sum(channel[WINDOW_DAYS:])
            contexts.append(
                {
                    "user_bad_ratio_7d": bad / n if n else None,
                    "violation_count_7d": float(violations) if n else None,
                    "channel_toxicity_ratio": channel_bad / channel_n if channel_n else None,
                    "hours_since_last_msg": (
                        max(0.0, (now - float(last)) / 3600) if last is not None else None
                    ),
                    "is_new_to_channel": (
                        0.0 if user[seen_index[f"c:{message.channel}"]] is not None else 1.0
                    ),
                }
            )
        return contexts

    async def update(
        self,
        messages: Sequence[ChatMessage],
        outcomes: Sequence[Outcome],
        now: float | None = None,
    ) -> None:
        """Count the batch's messages into the window, atomically (one round trip)."""
        if not messages:
            return
        now = time.time() if now is None else now
        today = day_number(now)
        keys: list[str] = []
        index: dict[str, int] = {}

        def slot(key: str) -> int:
            if key not in index:
                keys.append(key)
                index[key] = len(keys)
            return index[key]

        args: list[Any] = [f"{now:.3f}", today, TTL_SECONDS, today - WINDOW_DAYS + 1]
        for message, outcome in zip(messages, outcomes, strict=True):
            args += [
                slot(f"wf:u:{message.key}"),
                slot(f"wf:c:{channel_key(message)}"),
                message.channel,
                int(outcome.bad),
                int(outcome.violation),
            ]
        await self._update(keys=keys, args=args)


class ContextReader:
    """Feature reads and updates that degrade instead of failing.

    When Redis does not answer, messages are scored with every context feature missing and
    their verdicts say ``degraded``; for ``retry_after_s`` no further call waits on Redis, then
    the next batch tries again, so the worker recovers by itself when Redis is back.
    """

    def __init__(self, store: FeatureStore | None, retry_after_s: float = 1.0) -> None:
        self.store = store
        self.retry_after_s = retry_after_s
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return self.store is not None and time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: Exception) -> None:
        if self._down_until == 0.0:
            logger.warning("Redis %s failed (%s); scoring without context", op, exc)
        self._down_until = time.monotonic() + self.retry_after_s

    async def read(
        self, messages: Sequence[ChatMessage]
    ) -> tuple[list[dict[str, float | None]] | None, bool]:
        """(contexts, degraded): contexts is None when Redis could not be read."""
        if not messages:
            return [], False
        if self.store is None or not self.available:
            return None, True
        started = time.perf_counter()
        try:
            contexts = await self.store.read(messages)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("read", exc)
            return None, True
        metrics.REDIS_SECONDS.labels(SERVICE, "read").observe(time.perf_counter() - started)
        if self._down_until:
            logger.info("Redis answers again; context features are back")
            self._down_until = 0.0
        return contexts, False

    async def update(self, messages: Sequence[ChatMessage], outcomes: Sequence[Outcome]) -> None:
        if self.store is None or not self.available or not messages:
            return
        started = time.perf_counter()
        try:
            await self.store.update(messages, outcomes)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("update", exc)
            return
        metrics.REDIS_SECONDS.labels(SERVICE, "update").observe(time.perf_counter() - started)

"""Per-user and per-channel context features in Redis, over a sliding 7-day window.

Layout (all keys expire 8 days after their last update, so memory stays bounded):

    wf:u:<platform:community:user>      hash  n:<day>, bad:<day>, v:<day>   messages, toxic ones
                                              and violations (flagged) per UTC day;
                                              last = epoch seconds of the latest message;
                                              c:<channel> = sent_at ms of the user's first
                                              message there (older data: 1, long ago)
    wf:c:<platform:community:channel>   hash  n:<day>, bad:<day>
    (both)                                    pruned = the day old day fields were last dropped;
                                              off:<topic>:<partition> = the highest offset of
                                              that partition counted into this hash

Exactly once in effect: a batch replayed after a crash is not counted again. A user's messages
are on one partition, in offset order, and a channel's come from several partitions, each in
order: so each hash keeps, per source partition, the highest offset it counted, and a message
at or below it is skipped. (Recreating the source topic under the same name restarts its
offsets: drop the wf: keys with it.) First-seen is the minimum sent_at, which a replay cannot
move. A replayed batch's context features may include its own messages once (they were counted
by the first run), never twice.

A batch costs two round trips, each one Lua script: a read before scoring that sums the window
server-side and answers a few numbers per user, channel and message (parsing 20-odd day fields
per user in Python was most of the read's time), and an update after it that applies every
message of the batch atomically (and drops day fields that left the window). Messages of one
user inside one batch all see the context from before the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core import metrics
from schemas.events import ChatMessage

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)
SERVICE = "scorer"

WINDOW_DAYS = 7
TTL_SECONDS = (WINDOW_DAYS + 1) * 86_400
# A hash lives TTL_SECONDS to TTL_SECONDS + this after its last write (see _UPDATE).
TTL_SLACK_SECONDS = 86_400
ITEM = "\x1e"  # between the items of a list passed as one script argument

# Lua: the items of a list passed as one argument, split at \x1e or at ``sep`` (empty items
# kept; "" is no items).
SPLIT = """
local function split(s, sep)
  local out, from = {}, 1
  if s == '' then return out end
  sep = sep or '\\30'
  while true do
    local at = string.find(s, sep, from, true)
    if not at then out[#out + 1] = string.sub(s, from) return out end
    out[#out + 1] = string.sub(s, from, at - 1)
    from = at + 1
  end
end
"""

# ARGV: first day of the window, today, the batch's users (their keys' suffixes), its channels,
# and per distinct (user, channel) pair the user's position (1-based) and the channel's name,
# each list one argument with its items joined by \x1e (redis-py packs every argument one by
# one in Python, which cost more than splitting them here; ids have no control characters).
# Answers per user n, bad, violations, last (a string, or false); per channel n, bad; then per
# pair the sent_at ms of the user's first line there (or false). The window's field names are
# built once per call: every hash of a batch asks for the same days.
_READ = (
    SPLIT
    + """
local first, today = tonumber(ARGV[1]), tonumber(ARGV[2])
local users, channels, links = split(ARGV[3]), split(ARGV[4]), split(ARGV[5])
local span = today - first + 1
local user_fields, channel_fields = {}, {}
for _, kind in ipairs({'n', 'bad', 'v'}) do
  for d = first, today do user_fields[#user_fields + 1] = kind .. ':' .. d end
end
for i = 1, 2 * span do channel_fields[i] = user_fields[i] end
user_fields[#user_fields + 1] = 'last'
local out = {}
local function sums(key, fields, kinds)
  local values = redis.call('HMGET', key, unpack(fields))
  for k = 0, kinds - 1 do
    local total = 0
    for j = k * span + 1, (k + 1) * span do total = total + (tonumber(values[j]) or 0) end
    out[#out + 1] = total
  end
  return values
end
for _, user in ipairs(users) do
  local values = sums('wf:u:' .. user, user_fields, 3)
  out[#out + 1] = values[3 * span + 1]
end
for _, channel in ipairs(channels) do sums('wf:c:' .. channel, channel_fields, 2) end
for i = 1, #links, 2 do
  out[#out + 1] = redis.call('HGET', 'wf:u:' .. users[tonumber(links[i])], 'c:' .. links[i + 1])
end
return out
"""
)

# ARGV: now, day, ttl, cutoff_day, then the batch's messages as one argument (see _READ), 8
# items per message: user key suffix, channel key suffix, channel, bad, violation, sent ms,
# source partition field ("off:<topic>:<partition>", "" = unknown), offset.
# A message at or below the offset a hash already counted for its partition is a replay: that
# hash skips it (first-seen still takes the minimum, which a replay cannot move).
# The batch's counts are summed here and written once per hash and field, and each hash's
# other fields go in one HSET: every write of a script is a command in Redis's append-only
# file, and a channel's counter took one a message.
_UPDATE = (
    SPLIT
    + """
local now, day, ttl, cutoff = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local m = split(ARGV[5])
local n_day, bad_day, v_day = 'n:' .. day, 'bad:' .. day, 'v:' .. day
local adds, sets, marks, firsts = {}, {}, {}, {}
local function field_set(key)
  local f = sets[key]
  if not f then f = {} sets[key] = f end
  return f
end
local function add(key, field)
  local a = adds[key]
  if not a then a = {} adds[key] = a end
  a[field] = (a[field] or 0) + 1
end
local function fresh(key, part, offset)
  if part == '' then return true end
  local mark = key .. '\\31' .. part
  local done = marks[mark]
  if done == nil then done = tonumber(redis.call('HGET', key, part)) or -1 end
  if offset <= done then marks[mark] = done return false end
  marks[mark] = offset
  field_set(key)[part] = offset
  return true
end
local i = 1
while i <= #m do
  local ukey, ckey = 'wf:u:' .. m[i], 'wf:c:' .. m[i + 1]
  local channel, bad, violation = m[i + 2], tonumber(m[i + 3]), tonumber(m[i + 4])
  local sent, part, offset = tonumber(m[i + 5]), m[i + 6], tonumber(m[i + 7])
  field_set(ukey)
  field_set(ckey)
  if fresh(ukey, part, offset) then
    add(ukey, n_day)
    if bad == 1 then add(ukey, bad_day) end
    if violation == 1 then add(ukey, v_day) end
    sets[ukey]['last'] = now
  end
  if fresh(ckey, part, offset) then
    add(ckey, n_day)
    if bad == 1 then add(ckey, bad_day) end
  end
  local pair = ukey .. '\\31' .. channel
  local first = firsts[pair]
  if first == nil or sent < first[3] then firsts[pair] = {ukey, 'c:' .. channel, sent} end
  i = i + 8
end
for _, f in pairs(firsts) do
  local seen = tonumber(redis.call('HGET', f[1], f[2]))
  if not seen or f[3] < seen then sets[f[1]][f[2]] = f[3] end
end
for key, fields in pairs(adds) do
  for field, n in pairs(fields) do redis.call('HINCRBY', key, field, n) end
end
for key, fields in pairs(sets) do
  local args = {}
  for field, value in pairs(fields) do
    args[#args + 1] = field
    args[#args + 1] = value
  end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
  -- At least ttl more; moved only when it would not (every EXPIRE is a command in the
  -- append-only file), to ttl + TTL_SLACK_SECONDS: about once a day per hash.
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl + TTL_SLACK_SECONDS) end
  -- Day fields that left the window go once a day per hash, not on every batch.
  if redis.call('HGET', key, 'pruned') ~= ARGV[2] then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      local d = tonumber(string.match(field, '^%a+:(%d+)$'))
      if d and d < cutoff then redis.call('HDEL', key, field) end
    end
    redis.call('HSET', key, 'pruned', ARGV[2])
  end
end
return #m / 8
""".replace("TTL_SLACK_SECONDS", str(TTL_SLACK_SECONDS))
)


def day_number(epoch_s: float) -> int:
    """Days since the epoch (UTC): the window's buckets."""
    return int(epoch_s // 86_400)


def channel_key(message: ChatMessage) -> str:
    return f"{message.platform.value}:{message.community}:{message.channel}"


@dataclass(frozen=True)
class Position:
    """Where a message was consumed from: the key of the exactly-once marks."""

    topic: str
    partition: int
    offset: int


def sent_ms(message: ChatMessage) -> int:
    return int(message.sent_at.timestamp() * 1000)


@dataclass(frozen=True)
class Outcome:
    """What the scorer decided about one message, for the counters."""

    bad: bool
    violation: bool


class FeatureStore:
    """Reads and updates context features; one instance per worker."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._read = client.register_script(_READ)
        self._update = client.register_script(_UPDATE)

    async def read(
        self, messages: Sequence[ChatMessage], now: float | None = None
    ) -> list[dict[str, float | None]]:
        """Context features for each message, in order (one round trip)."""
        now = time.time() if now is None else now
        today = day_number(now)
        keys = [m.key for m in messages]  # a property that builds the string
        chans = [channel_key(m) for m in messages]
        users = list(dict.fromkeys(keys))
        channels = list(dict.fromkeys(chans))
        user_slot = {user: i for i, user in enumerate(users)}
        channel_slot = {channel: i for i, channel in enumerate(channels)}
        pairs = list(dict.fromkeys(zip(keys, (m.channel for m in messages), strict=True)))
        # The batch's earliest line per pair: a user is new to a channel when nothing of theirs
        # there is older than this batch (and a replay, which finds this batch's own first-seen,
        # agrees).
        earliest: dict[tuple[str, str], int] = {}
        for key, m in zip(keys, messages, strict=True):
            pair, sent = (key, m.channel), sent_ms(m)
            earliest[pair] = min(earliest.get(pair, sent), sent)
        reply = await self._read(
            keys=[],
            args=[
                today - WINDOW_DAYS + 1,
                today,
                ITEM.join(users),
                ITEM.join(channels),
                ITEM.join(f"{user_slot[user] + 1}{ITEM}{channel}" for user, channel in pairs),
            ],
        )
        seen_at = 4 * len(users) + 2 * len(channels)
        seen = {pair: reply[seen_at + i] for i, pair in enumerate(pairs)}
        contexts = []
        for key, chan, message in zip(keys, chans, messages, strict=True):
            u = 4 * user_slot[key]
            n, bad, violations, last = reply[u : u + 4]
            c = 4 * len(users) + 2 * channel_slot[chan]
            channel_n, channel_bad = reply[c : c + 2]
            contexts.append(
                {
                    "user_bad_ratio_7d": bad / n if n else None,
                    "violation_count_7d": float(violations) if n else None,
                    "channel_toxicity_ratio": channel_bad / channel_n if channel_n else None,
                    "hours_since_last_msg": (
                        max(0.0, (now - float(last)) / 3600) if last is not None else None
                    ),
                    "is_new_to_channel": 1.0
                    if seen[key, message.channel] is None
                    or int(seen[key, message.channel]) >= earliest[key, message.channel]
                    else 0.0,
                }
            )
        return contexts

    async def update(
        self,
        messages: Sequence[ChatMessage],
        outcomes: Sequence[Outcome],
        now: float | None = None,
        positions: Sequence[Position | None] | None = None,
    ) -> None:
        """Count the batch's messages into the window, atomically (one round trip).

        With ``positions`` (where each message was consumed), a message already counted is
        not counted again: a replayed batch changes nothing.
        """
        if not messages:
            return
        now = time.time() if now is None else now
        today = day_number(now)
        items: list[str] = []
        where = positions if positions is not None else [None] * len(messages)
        for message, outcome, position in zip(messages, outcomes, where, strict=True):
            items += (
                message.key,
                channel_key(message),
                message.channel,
                "1" if outcome.bad else "0",
                "1" if outcome.violation else "0",
                str(sent_ms(message)),
                f"off:{position.topic}:{position.partition}" if position is not None else "",
                str(position.offset) if position is not None else "0",
            )
        args: list[str | int] = [
            f"{now:.3f}",
            today,
            TTL_SECONDS,
            today - WINDOW_DAYS + 1,
            ITEM.join(items),
        ]
        await self._update(keys=[], args=args)


class ContextReader:
    """Feature reads and updates that degrade instead of failing.

    When Redis does not answer, messages are scored with every context feature missing and
    their verdicts say ``degraded``; for ``retry_after_s`` no further call waits on Redis, then
    the next batch tries again, so the worker recovers by itself when Redis is back.
    """

    def __init__(
        self, store: FeatureStore | None, retry_after_s: float = 1.0, *, writes: bool = True
    ) -> None:
        self.store = store
        self.retry_after_s = retry_after_s
        # False for a challenger in shadow: it reads the counters and never counts into them.
        self.writes = writes
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return self.store is not None and time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: Exception) -> None:
        if self._down_until == 0.0:
            logger.warning("Redis %s failed (%s); scoring without context", op, exc)
        metrics.DEPENDENCY_UP.labels(SERVICE, "redis").set(0)
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
            metrics.DEPENDENCY_UP.labels(SERVICE, "redis").set(1)
            self._down_until = 0.0
        return contexts, False

    async def update(
        self,
        messages: Sequence[ChatMessage],
        outcomes: Sequence[Outcome],
        positions: Sequence[Position | None] | None = None,
    ) -> None:
        if self.store is None or not self.writes or not self.available or not messages:
            return
        started = time.perf_counter()
        try:
            await self.store.update(messages, outcomes, positions=positions)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("update", exc)
            return
        metrics.REDIS_SECONDS.labels(SERVICE, "update").observe(time.perf_counter() - started)

"""The stream detectors' windows in Redis: one Lua call per batch, exactly once in effect.

Windows are on event time (``sent_at``, in ms) and their members are idempotent: a message is
added under its own id, so a replayed batch adds nothing new, and every count is taken over
``[sent_at - window, sent_at]``, so a replay gets the same answers (a message from another
partition that arrives in between with an earlier ``sent_at`` is the only thing that can
change a count, and then the count is the more correct one). Raid decisions, which depend on
lines from several partitions, are remembered per line, so a replayed line keeps its label; and
once a raid is known, a line belongs to it when it was written at or after the line that
crossed the threshold.

Layout (``<user>`` = platform:community:user, ``<channel>`` = platform:community:channel,
``<fp>`` = a 16-hex fingerprint; each key expires no sooner than its window + ``GRACE_S`` after
the last write, and at most half as long again: its expiry is moved only when it comes nearer
than that, since every ``PEXPIRE`` is a command in Redis's append-only file):

    wd:f:<user>              zset  member "<message id>\\x1f<fp>\\x1f<short text>", score sent_at
                                   ms: flood counts it; split evasion reads the short lines that
                                   end with the message
    wd:s:<user>              zset  score 0, member "<fp>\\x1f<sent ms, 13 digits>\\x1f<message id>":
                                   near-identical lines are one lexicographic range (ZLEXCOUNT);
                                   trimmed with the flood key it mirrors
    wd:ra:<channel>:<fp>     zset  member user id, score = the user's first such line (ZADD LT):
                                   first-time chatters posting this raid line
    wd:rm:<channel>:<fp>     zset  member message id: their lines
    wd:rd:<channel>:<fp>     hash  id, start, trig, tt, last, pub: the raid, once one crossed the
                                   threshold (first line's id and time, the crossing line's id and
                                   time, the latest line, published); per first-time line
                                   m:<message id> = "sent, user, harmful, labels, text" (for the
                                   RaidEvent) and r:<message id> = its raid decision (1/0)
    wf:u:<user>              (scorers.context_store) c:<channel> = first sent_at ms there; read
                                   here to tell first-time chatters

Members older than the newest one by window + ``GRACE_S`` are trimmed: a replay within the
grace period sees exactly what the first run saw.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from redis.exceptions import RedisError

from schemas.detection import (
    DEFAULT_VERSION,
    DETECTORS_FIELD,
    UNVERSIONED,
    VERSION_FIELD,
    DetectorThresholds,
    policy_key,
)
from schemas.events import ChatMessage, RaidEvent
from scorers.context_store import SPLIT, channel_key, sent_ms

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

# How long a window's members outlive the window: a batch replayed this long after its first
# run still counts exactly what the first run counted.
GRACE_S = 300
DETAIL_CAP = 1000
ACCOUNTS_CAP = 1000
SEP = "\x1f"
FIELD = "\x1e"
RECORD = "\x1d"
# What ``schemas.events.Id`` accepts: a mirrored policy version becomes a verdict's.
_ID = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,200}")

# ARGV: grace ms, the number of threshold profiles, 5 values per profile (flood, spam, split
# and raid windows in ms, raid minimum accounts), then the messages in one value: a record each,
# records joined by \x1d, a record's fields by \x1e: user key, raid key ("<channel key>:<raid
# fp>", "" = no raid), message id, user id, channel, sent ms, fingerprint ("" = spam off), short
# text, profile, raid detail. One argument for the batch, and key names built here from it:
# redis-py packs every argument and key one by one in Python, on the event loop, which cost
# more than splitting them here. (Keys are named in the script, not in KEYS: a batch spans
# users, and so hash slots, whatever it declares; the context store's scripts do the same on one
# Redis.) Answers per message {lines, repeats, short pieces, raid 0/1, raid size, raid id, event
# or 0}.
_APPLY = (
    SPLIT
    + """
local grace, nprof = tonumber(ARGV[1]), tonumber(ARGV[2])
local prof, p = {}, 3
for n = 1, nprof do
  prof[n] = {tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]),
             tonumber(ARGV[p + 3]), tonumber(ARGV[p + 4])}
  p = p + 5
end
local rows = {}
for _, record in ipairs(split(ARGV[p], '\\29')) do
  local f = split(record)
  local u, r = f[1], f[2]
  local raid = r ~= ''
  rows[#rows + 1] = {'wd:f:' .. u, 'wd:s:' .. u, 'wf:u:' .. u,
                     raid and 'wd:ra:' .. r, raid and 'wd:rm:' .. r, raid and 'wd:rd:' .. r,
                     f[3], f[4], f[5], tonumber(f[6]), f[7], f[8], prof[tonumber(f[9])], f[10]}
end
local keep, newbie, seen, fields = {}, {}, {}, {}
local function touch(key, t, w, zset, fresh)
  local k = keep[key]
  if not k then keep[key] = {t, w, zset, false, fresh}
  else
    if t > k[1] then k[1] = t end
    if w > k[2] then k[2] = w end
  end
end
local function stamp(t) return string.format('%013d', t) end
-- Lives at least ms more; moved (one append-only file command) only when it would not.
local function keep_for(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms + math.floor(ms / 2)) end
end
for m, r in ipairs(rows) do
  local fk, sk, uh, ra, rm, rd, id, user, channel, t, fp, short, pr = unpack(r)
  redis.call('ZADD', fk, t, id .. '\\31' .. fp .. '\\31' .. short)
  touch(fk, t, math.max(pr[1], pr[2], pr[3]), true)
  keep[fk][4] = sk
  if fp ~= '' then
    redis.call('ZADD', sk, 0, fp .. '\\31' .. stamp(t) .. '\\31' .. id)
  end
  if ra then
    local pair = uh .. '\\31' .. channel
    local fs = seen[pair]
    if fs == nil then fs = tonumber(redis.call('HGET', uh, 'c:' .. channel) or t) end
    if t < fs then fs = t end
    seen[pair] = fs
    if fs >= t - pr[4] then
      newbie[m] = true
      -- The raid's hash counts its fields (m: and r:, about two a line) against the caps; none
      -- means a raid line new to this channel, whose three keys this batch creates (they are
      -- created, moved and dropped together): their expiry is set without asking, and there
      -- is nothing old in them to trim.
      local n = fields[rd]
      if n == nil then n = redis.call('HLEN', rd) end
      local fresh = n == 0 or (keep[rd] ~= nil and keep[rd][5])
      redis.call('ZADD', ra, 'LT', t, user)
      redis.call('ZADD', rm, t, id)
      if n < 2 * DETAIL_CAP then
        redis.call('HSET', rd, 'm:' .. id, r[14])
        n = n + 1
      end
      fields[rd] = n
      touch(ra, t, pr[4], true, fresh)
      touch(rm, t, pr[4], true, fresh)
      touch(rd, t, pr[4], false, fresh)
    end
  end
end
-- Answers in event-time order (ties in batch order), whatever order the partitions came in.
local order = {}
for m, r in ipairs(rows) do order[m] = {r[10], m} end
table.sort(order, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
local out = {}
for _, o in ipairs(order) do
  local m = o[2]
  local fk, sk, uh, ra, rm, rd, id, user, channel, t, fp, short, pr = unpack(rows[m])
  local lines = redis.call('ZCOUNT', fk, t - pr[1], t)
  local repeats, pieces = 0, {}
  if fp ~= '' then
    repeats = redis.call('ZLEXCOUNT', sk, '[' .. fp .. '\\31' .. stamp(t - pr[2]),
                         '(' .. fp .. '\\31' .. stamp(t) .. '\\32')
  end
  if short ~= '' then
    -- The user's latest lines up to this one, newest first: the short ones that end with it.
    local recent = redis.call('ZREVRANGEBYSCORE', fk, t, t - pr[3], 'LIMIT', 0, 24)
    local mine, at = id .. '\\31', nil
    for j = 1, #recent do
      if string.sub(recent[j], 1, #mine) == mine then at = j break end
    end
    if at then
      for j = at, math.min(#recent, at + 7) do
        local piece = string.match(recent[j], '\\31[^\\31]*\\31(.*)$')
        if piece == nil or piece == '' then break end
        table.insert(pieces, 1, piece)
      end
    end
  end
  local raid, size, rid, event = 0, 0, '', 0
  if ra and newbie[m] then
    local rw = pr[4]
    size = redis.call('ZCOUNT', ra, t - rw, t)
    local st = redis.call('HMGET', rd, 'id', 'tt', 'last', 'trig', 'pub', 'start',
                          'r:' .. id)
    -- Once a raid is known, its lines are those from the crossing on: a replay (or a line
    -- from another partition arriving late) gets the answer the first run gave.
    local known = st[1] and tonumber(st[3]) >= t - rw
    -- A line decided before keeps its decision: lines of a raid come from several partitions,
    -- and one scored before the crossing stays unlabelled when it is replayed after it.
    local decided
    if st[7] then decided = st[7] == '1'
    else
      decided = (known and tonumber(st[2]) <= t) or (not known and size >= pr[5])
      if fields[rd] < 20 * DETAIL_CAP then
        redis.call('HSET', rd, 'r:' .. id, decided and '1' or '0')
        fields[rd] = fields[rd] + 1
      end
    end
    if decided then
      raid = 1
      if not known then
        local head = redis.call('ZRANGEBYSCORE', rm, t - rw, t, 'WITHSCORES',
                                'LIMIT', 0, 1)
        st = {head[1], tostring(t), tostring(t), id, false, head[2]}
        redis.call('HSET', rd, 'id', st[1], 'tt', t, 'last', t, 'trig', id,
                   'start', st[6])
        redis.call('HDEL', rd, 'pub')
      elseif t > tonumber(st[3]) then
        redis.call('HSET', rd, 'last', t)
      end
      rid = st[1]
      if st[4] == id and st[5] ~= '1' then
        local start = tonumber(st[6])
        local accounts = redis.call('ZRANGEBYSCORE', ra, t - rw, t, 'LIMIT', 0,
                                    ACCOUNTS_CAP)
        local lines_in = redis.call('ZCOUNT', rm, start, t)
        local details = {}
        for _, value in ipairs(redis.call('HVALS', rd)) do
          local sent = tonumber(string.match(value, '^(%d+)\\31'))
          if sent and sent >= start and sent <= t then details[#details + 1] = value end
        end
        event = {rid, tostring(start), tostring(t), size, lines_in, accounts, details}
      end
    end
  end
  out[m] = {lines, repeats, pieces, raid, size, rid, event}
end
for key, k in pairs(keep) do
  local ms = k[2] + grace
  if k[5] then
    -- Created by this batch: nothing in it to trim, and no expiry to ask about.
    redis.call('PEXPIRE', key, ms + math.floor(ms / 2))
  else
    local cut = '(' .. (k[1] - k[2] - grace)
    if k[4] then
      -- The user's spam index holds the same lines as its flood window: drop those leaving it.
      local old = redis.call('ZRANGEBYSCORE', key, '-inf', cut, 'WITHSCORES')
      for j = 1, #old, 2 do
        local id, fp = string.match(old[j], '^([^\\31]*)\\31([^\\31]*)\\31')
        if fp and fp ~= '' then
          redis.call('ZREM', k[4], fp .. '\\31' .. stamp(tonumber(old[j + 1])) .. '\\31' .. id)
        end
      end
      keep_for(k[4], ms)
    end
    if k[3] then redis.call('ZREMRANGEBYSCORE', key, '-inf', cut) end
    keep_for(key, ms)
  end
end
return out
"""
)
for _name, _value in (
    ("DETAIL_CAP", DETAIL_CAP),
    ("ACCOUNTS_CAP", ACCOUNTS_CAP),
):
    _APPLY = _APPLY.replace(_name, str(_value))


@dataclass(frozen=True)
class Entry:
    """What the state needs of one message's text (from ``scorers.detectors.Traits``)."""

    fingerprint: str
    raid_fingerprint: str
    raid_letters: int
    short: str


@dataclass(frozen=True)
class Windows:
    """One message's window answers."""

    lines: int = 0  # the user's lines in the flood window, this one included
    repeats: int = 0  # near-identical lines from the user in the spam window
    pieces: tuple[str, ...] = ()  # the user's consecutive short lines ending with this one
    raid: bool = False
    raid_size: int = 0
    raid_id: str = ""


@dataclass(frozen=True)
class RaidLine:
    sent_ms: int
    user: str
    harmful: bool
    labels: tuple[str, ...]
    text: str


@dataclass
class RaidSeen:
    """A raid whose event this batch publishes (it crossed the threshold in it, or a replay
    of that batch finds it not yet published)."""

    index: int  # the message that crossed the threshold
    state_key: str
    raid_id: str
    started_ms: int
    ended_ms: int
    size: int
    messages: int
    accounts: list[str]
    lines: list[RaidLine] = field(default_factory=list)
    event: RaidEvent | None = None  # built by scorers.detectors from the lines


def raid_id(channel: str, first_message_id: str) -> str:
    """The raid's id: its channel and the burst's first message (hashed if that is too long)."""
    plain = f"{channel}:{first_message_id}"
    if len(plain) <= 200:
        return plain
    return "raid-" + hashlib.sha256(plain.encode()).hexdigest()[:40]


def _detail(message: ChatMessage, sent: int, harmful: bool, labels: Sequence[str]) -> str:
    text = message.text[:300].replace(SEP, " ").replace(FIELD, " ").replace(RECORD, " ")
    return SEP.join((str(sent), message.user, str(int(harmful)), ",".join(labels), text))


def _line(detail: bytes | str) -> RaidLine | None:
    value = detail.decode() if isinstance(detail, bytes) else detail
    parts = value.split(SEP, 4)
    if len(parts) != 5:
        return None
    sent, user, harmful, labels, text = parts
    return RaidLine(int(sent), user, harmful == "1", tuple(filter(None, labels.split(","))), text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StreamState:
    """Applies a batch to the detectors' windows and reads their answers (one round trip)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._apply = client.register_script(_APPLY)

    async def apply(
        self,
        messages: Sequence[ChatMessage],
        entries: Sequence[Entry],
        limits: Sequence[DetectorThresholds],
        harm: Sequence[tuple[bool, list[str]]],
    ) -> tuple[list[Windows], list[RaidSeen]]:
        """Count ``messages`` into their windows (idempotently) and answer per message."""
        profiles: dict[tuple[int, ...], int] = {}
        header: list[Any] = []
        body: list[Any] = []
        for message, entry, limit, (harmful, labels) in zip(
            messages, entries, limits, harm, strict=True
        ):
            profile = (
                limit.flood_window_s * 1000,
                limit.spam_window_s * 1000,
                limit.split_window_s * 1000,
                limit.raid_window_s * 1000,
                limit.raid_min_accounts,
            )
            if profile not in profiles:
                profiles[profile] = len(profiles) + 1
                header += profile
            raid = (
                f"{channel_key(message)}:{entry.raid_fingerprint}"
                if limit.is_on("raid")
                and entry.raid_fingerprint
                and entry.raid_letters >= limit.raid_min_chars
                else ""
            )
            short = entry.short if len(entry.short) <= limit.split_max_chars else ""
            sent = sent_ms(message)
            fields = (
                message.key,
                raid,
                message.message_id,
                message.user,
                message.channel,
                str(sent),
                entry.fingerprint if limit.is_on("spam") else "",
                short if limit.is_on("split_evasion") else "",
                str(profiles[profile]),
                _detail(message, sent, harmful, labels) if raid else "",
            )
            body.append(FIELD.join(fields))
        reply = await self._apply(
            keys=[], args=[GRACE_S * 1000, len(profiles), *header, RECORD.join(body)]
        )
        windows: list[Windows] = []
        raids: list[RaidSeen] = []
        for i, row in enumerate(reply):
            lines, repeats, pieces, raid, size, rid, event = row
            windows.append(
                Windows(
                    lines=int(lines),
                    repeats=int(repeats),
                    pieces=tuple(_text(p) for p in pieces),
                    raid=bool(raid),
                    raid_size=int(size),
                    raid_id=_text(rid),
                )
            )
            if event and event != 0:
                first, start, end, size_at, count, accounts, details = event
                message = messages[i]
                state = f"wd:rd:{channel_key(message)}:{entries[i].raid_fingerprint}"
                raids.append(
                    RaidSeen(
                        index=i,
                        state_key=state,
                        raid_id=raid_id(channel_key(message), _text(first)),
                        started_ms=int(_text(start)),
                        ended_ms=int(_text(end)),
                        size=int(size_at),
                        messages=int(count),
                        accounts=[_text(a) for a in accounts],
                        lines=[line for line in map(_line, details) if line is not None],
                    )
                )
        return windows, raids

    async def mark_published(self, raids: Iterable[RaidSeen]) -> None:
        """Record that these raids' events are on the broker (one round trip)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for raid in raids:
                pipe.hset(raid.state_key, "pub", "1")
            await pipe.execute()


@dataclass(frozen=True)
class AppliedPolicy:
    """A community's detector thresholds and the policy version they belong to."""

    thresholds: DetectorThresholds = field(default_factory=DetectorThresholds)
    version: str = DEFAULT_VERSION


class PolicyCache:
    """Each community's detector thresholds, read from Redis at most every ``ttl_s``.

    The actioner mirrors a community's policy section to ``schemas.detection.policy_key``, with
    the policy version's id; a community with none (or a malformed one, logged) gets the
    defaults, under the version ``schemas.detection.DEFAULT_VERSION``.
    """

    def __init__(self, client: aioredis.Redis, ttl_s: float = 30.0) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, AppliedPolicy]] = {}
        self._bad: set[tuple[str, str, str]] = set()

    async def applied(
        self, communities: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], AppliedPolicy]:
        """(platform, community) -> thresholds and their policy version; one round trip for
        those not cached."""
        now = time.monotonic()
        wanted = list(communities)
        stale = [c for c in wanted if c not in self._cache or self._cache[c][0] <= now]
        if stale:
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for platform, name in stale:
                        pipe.hmget(policy_key(platform, name), [DETECTORS_FIELD, VERSION_FIELD])
                    values: list[Any] = await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("detector thresholds not read (%s); using the last known", exc)
                values = [self._cache[c][1] if c in self._cache else None for c in stale]
            for key, value in zip(stale, values, strict=True):
                self._cache[key] = (now + self.ttl_s, self._parse(key, value))
        if len(self._cache) > 100_000:  # communities come and go; keep what this batch needs
            self._cache = {c: self._cache[c] for c in wanted}
        return {c: self._cache[c][1] for c in wanted}

    def _parse(self, community: tuple[str, str], value: Any) -> AppliedPolicy:
        if isinstance(value, AppliedPolicy):
            return value
        raw, version = value if isinstance(value, list | tuple) else (value, None)
        if raw is None:
            return AppliedPolicy()
        try:
            thresholds = DetectorThresholds.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            mark = (*community, str(raw)[:200])
            if mark not in self._bad:  # once per distinct bad value, not once per batch
                self._bad.add(mark)
                logger.warning(
                    "detector thresholds of %s:%s invalid (%s); using the defaults",
                    *community,
                    str(exc).splitlines()[0],
                )
            return AppliedPolicy()
        if isinstance(version, bytes):
            version = version.decode("utf-8", "replace")
        if version and not _ID.fullmatch(version):  # it goes into Verdict.policy_version, an id
            logger.warning("policy version of %s:%s is not an id; left out", *community)
            version = None
        return AppliedPolicy(thresholds, version or UNVERSIONED)

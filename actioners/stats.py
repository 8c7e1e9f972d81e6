"""Per-community moderation statistics: ``warden stats``, ``/stats @user`` and ``/leaderboard``.

Where each number comes from:

- **messages**, **toxic**: the scorer's context counters in Redis (``wf:c:<channel>`` per
  channel, ``wf:u:<user>`` per user: messages and toxic ones per UTC day). They cover the last
  ``WINDOW_DAYS`` days at most (older days are dropped), so a longer ``--since`` counts
  messages over that window only, and says so.
- **flags**: decisions (PostgreSQL ``decisions``): messages the policy acted on or would have
  (in shadow mode).
- **actions**: the audit (``action_audit``) by kind and status: done, skipped (shadow mode,
  exempt users) or failed.
- **most-actioned users**: the users with the most actions done on them (warn, delete,
  timeout, kick, ban, hold), channel-level actions (raid mode) and reversals left out.

Privacy: a user who opted out (the ingest opt-out set), asked to be forgotten
(``data_deletions``) or whose rows are pseudonymised (``anon-...``) is never named: not on the
leaderboard, and ``/stats`` of them answers that nothing is shown. Their rows still count in
the community's totals, which name nobody.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.privacy import PSEUDONYM_PREFIX, glob_escape, opted_out, user_key

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from psycopg import AsyncCursor

    from core.settings import Settings

# scorers.context_store: the day fields of its hashes cover this many days.
WINDOW_DAYS = 7
CHANNEL_PREFIX, USER_PREFIX = "wf:c:", "wf:u:"
USER_KINDS = ("warn", "delete", "timeout", "kick", "ban", "hold")
TOP = 10

_ACTIONS = (
    "SELECT kind, status, count(*) FROM action_audit"
    " WHERE platform = %(p)s AND community = %(c)s AND recorded_at >= %(since)s"
    " GROUP BY kind, status"
)
_USER_ACTIONS = (
    "SELECT kind, status, count(*) FROM action_audit"
    " WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s"
    " AND recorded_at >= %(since)s GROUP BY kind, status"
)
_FLAGS = (
    "SELECT count(*), count(*) FILTER (WHERE shadow) FROM decisions"
    " WHERE platform = %(p)s AND community = %(c)s AND decided_at >= %(since)s"
)
_USER_FLAGS = (
    "SELECT count(*), count(*) FILTER (WHERE shadow) FROM decisions"
    " WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s"
    " AND decided_at >= %(since)s"
)
_STRIKES = (
    "SELECT coalesce(sum(points), 0) FROM strikes WHERE platform = %(p)s AND community = %(c)s"
    " AND user_id = %(u)s AND NOT shadow AND pardoned_at IS NULL AND expires_at > now()"
)
_TOP = (
    "SELECT user_id, count(*) AS n FROM action_audit"
    " WHERE platform = %(p)s AND community = %(c)s AND recorded_at >= %(since)s"
    " AND status = 'done' AND kind = ANY(%(kinds)s::text[])"
    " AND user_id NOT LIKE %(anon)s AND NOT (user_id = ANY(%(hidden)s::text[]))"
    " AND NOT EXISTS (SELECT 1 FROM data_deletions d WHERE d.platform = %(p)s"
    " AND d.community = %(c)s AND d.user_id = action_audit.user_id)"
    " GROUP BY user_id ORDER BY n DESC, user_id LIMIT %(top)s"
)
_DELETED = (
    "SELECT 1 FROM data_deletions WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s"
)


@dataclass
class Counts:
    """What happened in a community (or to one user) since ``since``."""

    platform: str
    community: str
    since: datetime
    messages: int = 0
    toxic: int = 0
    # The days the message counters covered (at most WINDOW_DAYS).
    message_days: int = 0
    flags: int = 0
    shadow_flags: int = 0
    # (kind, status) -> count
    actions: dict[tuple[str, str], int] = field(default_factory=dict)
    top: list[tuple[str, int]] = field(default_factory=list)
    user: str | None = None
    active_strikes: int = 0
    hidden: bool = False

    def by_status(self, status: str) -> int:
        return sum(n for (_, s), n in self.actions.items() if s == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "community": self.community,
            "user": self.user,
            "since": self.since.isoformat(),
            "hidden": self.hidden,
            "messages": self.messages,
            "toxic": self.toxic,
            "message_days": self.message_days,
            "flags": self.flags,
            "shadow_flags": self.shadow_flags,
            "actions": {f"{k}:{s}": n for (k, s), n in sorted(self.actions.items())},
            "active_strikes": self.active_strikes,
            "top": [{"user": u, "actions": n} for u, n in self.top],
        }


def _days(since: datetime, now: float) -> list[int]:
    today = int(now // 86_400)
    first = max(int(since.timestamp() // 86_400), today - WINDOW_DAYS + 1)
    return list(range(first, today + 1))


async def _window(client: aioredis.Redis, keys: list[str], days: list[int]) -> tuple[int, int]:
    """Messages and toxic ones over ``days`` in the context hashes ``keys``."""
    fields = [f"n:{d}" for d in days] + [f"bad:{d}" for d in days]
    messages = toxic = 0
    for key in keys:
        values = await client.hmget(key, fields)  # type: ignore[misc]
        numbers = [int(v) if v is not None else 0 for v in values]
        messages += sum(numbers[: len(days)])
        toxic += sum(numbers[len(days) :])
    return messages, toxic


async def hidden_users(
    client: aioredis.Redis, settings: Settings, platform: str, community: str
) -> list[str]:
    """The user ids of this community that opted out."""
    head = f"{platform}:{community}:"
    return [k.removeprefix(head) for k in await opted_out(client, settings) if k.startswith(head)]


async def community_stats(
    cur: AsyncCursor[Any],
    client: aioredis.Redis,
    settings: Settings,
    platform: str,
    community: str,
    since: timedelta,
    top: int = TOP,
) -> Counts:
    """The community's counts and its most-actioned users (nobody who opted out or was
    forgotten)."""
    now = time.time()
    start = datetime.fromtimestamp(now, UTC) - since
    counts = Counts(platform, community, start)
    pattern = f"{CHANNEL_PREFIX}{glob_escape(platform)}:{glob_escape(community)}:*"
    channels = [_key(k) async for k in client.scan_iter(match=pattern, count=500)]
    days = _days(start, now)
    counts.message_days = len(days)
    counts.messages, counts.toxic = await _window(client, channels, days)
    hidden = await hidden_users(client, settings, platform, community)
    args = {"p": platform, "c": community, "since": start}
    await _flags_and_actions(cur, counts, _FLAGS, _ACTIONS, args)
    await cur.execute(
        _TOP,
        {
            **args,
            "kinds": list(USER_KINDS),
            "anon": PSEUDONYM_PREFIX + "%",
            "hidden": hidden,
            "top": top,
        },
    )
    counts.top = [(str(u), int(n)) for u, n in await cur.fetchall()]
    return counts


async def user_stats(
    cur: AsyncCursor[Any],
    client: aioredis.Redis,
    settings: Settings,
    platform: str,
    community: str,
    user: str,
    since: timedelta,
) -> Counts:
    """One user's counts, or ``hidden`` (and nothing else) for a user who opted out or was
    forgotten."""
    key = user_key(platform, community, user)
    now = time.time()
    start = datetime.fromtimestamp(now, UTC) - since
    counts = Counts(platform, community, start, user=user)
    args = {"p": platform, "c": community, "u": user, "since": start}
    await cur.execute(_DELETED, args)
    forgotten = await cur.fetchone() is not None
    if forgotten or user in await hidden_users(client, settings, platform, community):
        counts.hidden = True
        return counts
    days = _days(start, now)
    counts.message_days = len(days)
    counts.messages, counts.toxic = await _window(client, [USER_PREFIX + key], days)
    await _flags_and_actions(cur, counts, _USER_FLAGS, _USER_ACTIONS, args)
    await cur.execute(_STRIKES, args)
    row = await cur.fetchone()
    counts.active_strikes = int(row[0]) if row else 0
    return counts


async def _flags_and_actions(
    cur: AsyncCursor[Any], counts: Counts, flags: Any, actions: Any, args: dict[str, Any]
) -> None:
    await cur.execute(flags, args)
    row = await cur.fetchone()
    counts.flags, counts.shadow_flags = (int(row[0]), int(row[1])) if row else (0, 0)
    await cur.execute(actions, args)
    counts.actions = {(str(k), str(s)): int(n) for k, s, n in await cur.fetchall()}


def _key(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _age(since: datetime) -> str:
    return f"since {since:%Y-%m-%d %H:%M} UTC"


def _actions_line(counts: Counts) -> str:
    done = {k: n for (k, s), n in counts.actions.items() if s == "done"}
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(done.items(), key=lambda kv: -kv[1]))
    line = f"Actions done: {sum(done.values())}" + (f" ({kinds})" if kinds else "")
    skipped, failed = counts.by_status("skipped"), counts.by_status("failed")
    if skipped or failed:
        line += f"; {skipped} skipped (shadow or exempt), {failed} failed"
    return line + "."


def _messages_line(counts: Counts) -> str:
    return (
        f"Messages: {counts.messages} ({counts.toxic} toxic) in the last"
        f" {counts.message_days} day(s) the counters cover."
    )


def render_community(counts: Counts, mention: bool = False) -> str:
    """The community's numbers as lines of text (``mention``: users as ``<@id>``)."""
    lines = [
        f"{counts.platform}:{counts.community} {_age(counts.since)}:",
        _messages_line(counts),
        f"Flags: {counts.flags}"
        + (f" ({counts.shadow_flags} in shadow mode)." if counts.shadow_flags else "."),
        _actions_line(counts),
    ]
    if counts.top:
        lines.append("Most actioned:")
        for rank, (user, n) in enumerate(counts.top, 1):
            name = f"<@{user}>" if mention else user
            lines.append(f"{rank}. {name}: {n} action(s)")
    else:
        lines.append("Most actioned: nobody yet.")
    return "\n".join(lines)


def render_user(counts: Counts, mention: bool = False) -> str:
    """One user's numbers as lines of text."""
    name = f"<@{counts.user}>" if mention else f"{counts.platform}:{counts.community}:{counts.user}"
    if counts.hidden:
        return f"Nothing is shown for {name}: they opted out or asked to be forgotten."
    return "\n".join(
        [
            f"{name} {_age(counts.since)}:",
            _messages_line(counts),
            f"Flags: {counts.flags}"
            + (f" ({counts.shadow_flags} in shadow mode)." if counts.shadow_flags else "."),
            _actions_line(counts),
            f"Active strikes: {counts.active_strikes}.",
        ]
    )

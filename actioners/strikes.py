"""Strikes per user per community: added by decisions, expiring with decay, cleared by pardons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from actioners.database import Database

UserKey = tuple[str, str, str]  # platform, community, user


@dataclass(frozen=True)
class Strike:
    id: int
    message_id: str | None
    points: int
    shadow: bool
    reason: str
    policy_version: str
    created_at: datetime
    expires_at: datetime
    pardoned_at: datetime | None
    pardoned_by: str | None
    pardon_reason: str | None


@dataclass(frozen=True)
class NewStrike:
    platform: str
    community: str
    user: str
    message_id: str
    points: int
    shadow: bool
    reason: str
    policy_version: str
    decay_days: float


@dataclass(frozen=True)
class Pardon:
    platform: str
    community: str
    user: str
    moderator: str
    reason: str
    strikes_cleared: int


async def active_counts(
    cur: psycopg.AsyncCursor[Any], users: Iterable[UserKey]
) -> dict[UserKey, tuple[int, int]]:
    """(real, shadow) active strike points per user, for every user asked about."""
    keys = sorted(set(users))
    counts: dict[UserKey, tuple[int, int]] = dict.fromkeys(keys, (0, 0))
    if not keys:
        return counts
    await cur.execute(
        "SELECT s.platform, s.community, s.user_id,"
        " COALESCE(SUM(s.points) FILTER (WHERE NOT s.shadow), 0),"
        " COALESCE(SUM(s.points) FILTER (WHERE s.shadow), 0)"
        " FROM strikes s JOIN unnest(%s::text[], %s::text[], %s::text[]) AS u(p, c, id)"
        " ON s.platform = u.p AND s.community = u.c AND s.user_id = u.id"
        " WHERE s.pardoned_at IS NULL AND s.expires_at > now()"
        " GROUP BY s.platform, s.community, s.user_id",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    )
    for platform, community, user, real, shadow in await cur.fetchall():
        counts[(platform, community, user)] = (int(real), int(shadow))
    return counts


async def add(cur: psycopg.AsyncCursor[Any], strikes: Sequence[NewStrike]) -> None:
    """Record strikes; a message's strike is recorded once however often it is decided."""
    if not strikes:
        return
    await cur.executemany(
        "INSERT INTO strikes (platform, community, user_id, message_id, points, shadow, reason,"
        " policy_version, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
        " ON CONFLICT (message_id) DO NOTHING",
        [
            (
                s.platform,
                s.community,
                s.user,
                s.message_id,
                s.points,
                s.shadow,
                s.reason,
                s.policy_version,
                s.decay_days * 86400.0,
            )
            for s in strikes
        ],
    )


class StrikeBook:
    """Strikes as moderators see them (``warden strikes``, ``warden pardon``, bot commands)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def of(
        self, platform: str, community: str, user: str, *, include_inactive: bool = False
    ) -> list[Strike]:
        """The user's strikes, newest first: active ones, or all when ``include_inactive``."""
        async with self.db.transaction() as cur:
            await cur.execute(
                "SELECT id, message_id, points, shadow, reason, policy_version, created_at,"
                " expires_at, pardoned_at, pardoned_by, pardon_reason FROM strikes"
                " WHERE platform = %s AND community = %s AND user_id = %s"
                " AND (%s OR (pardoned_at IS NULL AND expires_at > now()))"
                " ORDER BY created_at DESC, id DESC",
                (platform, community, user, include_inactive),
            )
            rows = await cur.fetchall()
        return [Strike(*row) for row in rows]

    async def active(self, platform: str, community: str, user: str) -> int:
        """Active (real) strike points."""
        async with self.db.transaction() as cur:
            counts = await active_counts(cur, [(platform, community, user)])
        return counts[(platform, community, user)][0]

    async def pardon(
        self, platform: str, community: str, user: str, *, moderator: str, reason: str
    ) -> Pardon:
        """Clear every active strike of the user (shadow ones too), and record who and why."""
        if not reason.strip():
            raise ValueError("a pardon needs a reason")
        async with self.db.transaction() as cur:
            await cur.execute(
                "UPDATE strikes SET pardoned_at = now(), pardoned_by = %s, pardon_reason = %s"
                " WHERE platform = %s AND community = %s AND user_id = %s"
                " AND pardoned_at IS NULL AND expires_at > now()"
                " RETURNING points",
                (moderator, reason, platform, community, user),
            )
            cleared = sum(row[0] for row in await cur.fetchall())
            await cur.execute(
                "INSERT INTO pardons (platform, community, user_id, moderator, reason,"
                " strikes_cleared) VALUES (%s, %s, %s, %s, %s, %s)",
                (platform, community, user, moderator, reason, cleared),
            )
        return Pardon(platform, community, user, moderator, reason, cleared)


async def pardon_message(
    cur: psycopg.AsyncCursor[Any], message_id: str, *, moderator: str, reason: str
) -> int:
    """Clear the strike a message brought (an overturned decision), inside the caller's
    transaction, and record who and why in ``pardons``. A strike pardoned before is left as it
    is (the review itself records the overturn). Returns the points cleared."""
    if not reason.strip():
        raise ValueError("a pardon needs a reason")
    await cur.execute(
        "UPDATE strikes SET pardoned_at = now(), pardoned_by = %s, pardon_reason = %s"
        " WHERE message_id = %s AND pardoned_at IS NULL"
        " RETURNING platform, community, user_id, points",
        (moderator, reason, message_id),
    )
    rows = await cur.fetchall()
    if rows:
        platform, community, user = rows[0][0], rows[0][1], rows[0][2]
        cleared = sum(row[3] for row in rows)
        await cur.execute(
            "INSERT INTO pardons (platform, community, user_id, moderator, reason,"
            " strikes_cleared) VALUES (%s, %s, %s, %s, %s, %s)",
            (platform, community, user, moderator, reason, cleared),
        )
        return int(cleared)
    return 0

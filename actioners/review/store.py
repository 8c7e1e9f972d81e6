"""What the review pages read: the queue and one message's page.

Every query takes the moderator's communities and filters by them in SQL (a join on the
granted (platform, community) pairs), so a page never holds a row of a community its reader
does not moderate; a message of another community reads as not found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from actioners.database import Database
from actioners.ledger import Entry, Ledger
from core.settings import ReviewSettings

Community = tuple[str, str]


def _grant_args(communities: Sequence[Community]) -> tuple[list[str], list[str]]:
    return [p for p, _ in communities], [c for _, c in communities]


async def _rows(cur: psycopg.AsyncCursor[Any]) -> list[dict[str, Any]]:
    names = [c.name for c in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


@dataclass
class Queue:
    disputes: list[dict[str, Any]]
    holds: list[dict[str, Any]]
    sample: list[dict[str, Any]]


async def queue(db: Database, communities: Sequence[Community], settings: ReviewSettings) -> Queue:
    """Open disputes (most disputed first, then oldest), unreviewed holds (oldest first), and a
    stable sample of recent borderline and high-impact automated decisions nobody reviewed."""
    if not communities:
        return Queue([], [], [])
    grants = _grant_args(communities)
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT d.id, d.message_id, d.platform, d.community, d.user_id, d.count, d.reason,"
            " d.source, d.opened_at, d.last_at, d.action_id, dec.severity, dec.rule,"
            " dec.p_toxic, left(dec.text, 200) AS text"
            " FROM disputes d JOIN unnest(%s::text[], %s::text[]) AS g(p, c)"
            " ON d.platform = g.p AND d.community = g.c"
            " LEFT JOIN decisions dec ON dec.message_id = d.message_id"
            " WHERE d.state = 'open' ORDER BY d.count DESC, d.opened_at LIMIT 200",
            grants,
        )
        disputes = await _rows(cur)
        await cur.execute(
            "SELECT h.message_id, h.platform, h.community, h.user_id, left(h.text, 200) AS text,"
            " h.severity, h.p_toxic, h.held_action, h.held_at"
            " FROM holds h JOIN unnest(%s::text[], %s::text[]) AS g(p, c)"
            " ON h.platform = g.p AND h.community = g.c"
            " WHERE h.reviewed_at IS NULL AND NOT h.shadow ORDER BY h.held_at LIMIT 200",
            grants,
        )
        holds = await _rows(cur)
        low = settings.flag_threshold - settings.borderline_margin
        high = settings.flag_threshold + settings.borderline_margin
        # md5 order: a stable sample (the page does not reshuffle on reload), spread over
        # users and time rather than the newest only.
        await cur.execute(
            "SELECT dec.message_id, dec.platform, dec.community, dec.user_id, dec.severity,"
            " dec.rule, dec.p_toxic, left(dec.text, 200) AS text, dec.decided_at,"
            " (dec.p_toxic BETWEEN %s AND %s) AS borderline,"
            " (SELECT array_agg(DISTINCT l.kind) FROM action_ledger l"
            "   WHERE l.message_id = dec.message_id AND l.kind IN ('ban', 'timeout', 'kick'))"
            "   AS impact"
            " FROM decisions dec JOIN unnest(%s::text[], %s::text[]) AS g(p, c)"
            " ON dec.platform = g.p AND dec.community = g.c"
            " WHERE dec.decided_at > now() - make_interval(secs => %s) AND NOT dec.shadow"
            " AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.message_id = dec.message_id)"
            " AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.message_id = dec.message_id)"
            " AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.message_id = dec.message_id"
            "   AND h.reviewed_at IS NULL)"
            " AND ((dec.p_toxic BETWEEN %s AND %s) OR EXISTS (SELECT 1 FROM action_ledger l"
            "   WHERE l.message_id = dec.message_id AND l.kind IN ('ban', 'timeout', 'kick')))"
            " ORDER BY md5(dec.message_id) LIMIT %s",
            (low, high, *grants, settings.sample_days * 86400, low, high, settings.sample_size),
        )
        sample = await _rows(cur)
    return Queue(disputes, holds, sample)


@dataclass
class MessagePage:
    decision: dict[str, Any]
    actions: list[Entry]
    strikes: list[dict[str, Any]]
    active_strikes: int
    explanation: dict[str, Any] | None
    dispute: dict[str, Any] | None
    dispute_reports: list[dict[str, Any]]
    reviews: list[dict[str, Any]]
    hold: dict[str, Any] | None
    chat: list[Any] = field(default_factory=list)

    @property
    def overturned(self) -> bool:
        return any(r["outcome"] == "overturned" for r in self.reviews)


async def decision_of(
    db: Database, message_id: str, communities: Sequence[Community]
) -> dict[str, Any] | None:
    """The decision row of a message in one of ``communities`` (None: none, or not theirs)."""
    if not communities:
        return None
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT dec.* FROM decisions dec"
            " JOIN unnest(%s::text[], %s::text[]) AS g(p, c)"
            " ON dec.platform = g.p AND dec.community = g.c"
            " WHERE dec.message_id = %s",
            (*_grant_args(communities), message_id),
        )
        rows = await _rows(cur)
    return rows[0] if rows else None


async def message_page(
    db: Database, message_id: str, communities: Sequence[Community]
) -> MessagePage | None:
    """Everything the page of one decided message shows (None: not found for this reader)."""
    decision = await decision_of(db, message_id, communities)
    if decision is None:
        return None
    key = (decision["platform"], decision["community"], decision["user_id"])
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT id, points, shadow, reason, created_at, expires_at, pardoned_at,"
            " pardoned_by, pardon_reason FROM strikes WHERE message_id = %s",
            (message_id,),
        )
        strikes = await _rows(cur)
        await cur.execute(
            "SELECT COALESCE(SUM(points), 0) FROM strikes WHERE platform = %s"
            " AND community = %s AND user_id = %s AND NOT shadow AND pardoned_at IS NULL"
            " AND expires_at > now()",
            key,
        )
        row = await cur.fetchone()
        active = int(row[0]) if row else 0
        await cur.execute("SELECT document FROM explanations WHERE message_id = %s", (message_id,))
        found = await cur.fetchone()
        explanation = found[0] if found else None
        await cur.execute(
            "SELECT * FROM disputes WHERE message_id = %s AND platform = %s AND community = %s",
            (message_id, key[0], key[1]),
        )
        disputes = await _rows(cur)
        dispute = disputes[0] if disputes else None
        reports: list[dict[str, Any]] = []
        if dispute is not None:
            await cur.execute(
                "SELECT feedback_id, disputed_message_id, reason, source, created_at"
                " FROM dispute_feedback WHERE dispute_id = %s ORDER BY created_at LIMIT 50",
                (dispute["id"],),
            )
            reports = await _rows(cur)
        await cur.execute(
            "SELECT id, moderator, outcome, note, reversals, created_at FROM reviews"
            " WHERE message_id = %s ORDER BY created_at, id",
            (message_id,),
        )
        reviews = await _rows(cur)
        await cur.execute("SELECT * FROM holds WHERE message_id = %s", (message_id,))
        holds = await _rows(cur)
    actions = await Ledger(db).entries([message_id])
    return MessagePage(
        decision=decision,
        actions=actions,
        strikes=strikes,
        active_strikes=active,
        explanation=explanation,
        dispute=dispute,
        dispute_reports=reports,
        reviews=reviews,
        hold=holds[0] if holds else None,
    )


def weighted_words(text: str, weights: Sequence[dict[str, Any]]) -> list[tuple[str, float]]:
    """``text`` split into (piece, weight) for highlighting: each word LIME weighed gets its
    weight, everything else 0. Matching is by whole word, case-insensitive."""
    import re

    by_token: dict[str, float] = {}
    for item in weights:
        token = str(item.get("token", "")).lower()
        if token and token not in by_token:
            by_token[token] = float(item.get("weight") or 0.0)
    pieces: list[tuple[str, float]] = []
    for piece in re.split(r"(\w+)", text):
        if piece:
            pieces.append((piece, by_token.get(piece.lower(), 0.0)))
    return pieces

"""The retention job: PostgreSQL rows older than their table's setting are deleted.

What is kept how long is one setting per table (``WARDEN_PRIVACY__<TABLE>_DAYS``; defaults in
``core.settings.PrivacySettings``: 28 days for message-level data, a year for the audit). Each
table's rule says which timestamp counts and what is never purged:

- ``strikes`` count from ``expires_at``: an active strike is never purged, whatever its age.
- ``action_ledger`` keeps open entries (pending, in flight, not yet published, or due later):
  the actioner still needs them.
- ``reviews`` keeps those whose Feedback is not yet published; a dispute that goes first
  leaves its review without the link (``dispute_id``), not without the review.
- ``explanations`` has no community column: a scoped purge reads the document's.

Rows go in batches of ``purge_batch`` (``DELETE ... WHERE ctid IN (SELECT ... LIMIT n)``), each
its own transaction, so a first purge of a large backlog never holds long locks. The actioner
runs the job every ``purge_every_s`` (:func:`run_periodically`); several actioners take turns
through a PostgreSQL advisory lock, so one purges at a time. ``warden privacy purge`` runs it
once (``--dry-run`` counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, LiteralString

from psycopg import sql

from core.clients import postgres_connection

if TYPE_CHECKING:
    import psycopg

    from core.settings import PrivacySettings, Settings

logger = logging.getLogger(__name__)

# pg_try_advisory_lock's key: "warden retention" in a bigint, the same for every actioner.
LOCK_KEY = 0x7761_7264_656E_7201


@dataclass(frozen=True)
class Rule:
    """A table, the setting that ages it, and which of its rows are expired past ``%(cutoff)s``."""

    table: LiteralString
    setting: str
    expired: LiteralString
    # The rows of one community (%(p)s, %(c)s).
    scope: LiteralString = " AND platform = %(p)s AND community = %(c)s"


RULES: tuple[Rule, ...] = (
    Rule("decisions", "decisions_days", "decided_at < %(cutoff)s"),
    Rule("holds", "holds_days", "held_at < %(cutoff)s"),
    Rule(
        "explanations",
        "explanations_days",
        "created_at < %(cutoff)s",
        " AND document->>'platform' = %(p)s AND document->>'community' = %(c)s",
    ),
    Rule("disputes", "disputes_days", "last_at < %(cutoff)s"),
    Rule("strikes", "strikes_days", "expires_at < %(cutoff)s"),
    Rule(
        "action_ledger",
        "ledger_days",
        "created_at < %(cutoff)s AND state IN ('done', 'skipped', 'failed') AND published"
        " AND (due_at IS NULL OR due_at < %(cutoff)s)",
    ),
    Rule("action_audit", "audit_days", "recorded_at < %(cutoff)s"),
    Rule("pardons", "pardons_days", "created_at < %(cutoff)s"),
    Rule("reviews", "reviews_days", "created_at < %(cutoff)s AND published"),
)


def cutoff_age(privacy: PrivacySettings, rule: Rule) -> timedelta:
    return timedelta(days=float(getattr(privacy, rule.setting)))


async def purge(
    conn: psycopg.AsyncConnection[Any],
    privacy: PrivacySettings,
    *,
    dry_run: bool = False,
    community: tuple[str, str] | None = None,
) -> dict[str, int]:
    """Delete (``dry_run``: count) every table's expired rows; rows per table.

    ``community`` = (platform, community) purges that community's rows only.
    """
    await conn.set_autocommit(True)
    counts: dict[str, int] = {}
    for rule in RULES:
        async with conn.cursor() as cur:
            await cur.execute("SELECT now() - %s::interval", (cutoff_age(privacy, rule),))
            row = await cur.fetchone()
        args: dict[str, Any] = {"cutoff": row[0] if row else None, "n": privacy.purge_batch}
        where: LiteralString = rule.expired
        if community is not None:
            args["p"], args["c"] = community
            where = where + rule.scope
        counts[rule.table] = await (_count if dry_run else _delete)(conn, rule, where, args)
    return counts


async def _count(
    conn: psycopg.AsyncConnection[Any], rule: Rule, where: LiteralString, args: dict[str, Any]
) -> int:
    async with conn.cursor() as cur:
        await cur.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                sql.Identifier(rule.table), sql.SQL(where)
            ),
            args,
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _delete(
    conn: psycopg.AsyncConnection[Any], rule: Rule, where: LiteralString, args: dict[str, Any]
) -> int:
    total = 0
    while True:
        async with conn.transaction(), conn.cursor() as cur:
            if rule.table == "disputes":
                # reviews.dispute_id has no ON DELETE: the reviews stay, without the link.
                await cur.execute(
                    sql.SQL(
                        "UPDATE reviews SET dispute_id = NULL"
                        " WHERE dispute_id IN (SELECT id FROM disputes WHERE {})"
                    ).format(sql.SQL(where)),
                    args,
                )
            table = sql.Identifier(rule.table)
            await cur.execute(
                sql.SQL(
                    "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} WHERE {w} LIMIT %(n)s)"
                ).format(t=table, w=sql.SQL(where)),
                args,
            )
            done = max(cur.rowcount, 0)
        total += done
        if done < args["n"]:
            return total


async def purge_once(
    settings: Settings, *, dry_run: bool = False, community: tuple[str, str] | None = None
) -> dict[str, int] | None:
    """One purge on a connection of its own; None when another process holds the turn."""
    conn = await postgres_connection(settings.postgres)
    try:
        await conn.set_autocommit(True)
        async with conn.cursor() as cur:
            await cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
            row = await cur.fetchone()
        if not row or not row[0]:
            return None
        try:
            return await purge(conn, settings.privacy, dry_run=dry_run, community=community)
        finally:
            async with conn.cursor() as cur:
                await cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        await conn.close()


async def run_periodically(
    settings: Settings, stop: asyncio.Event, *, community: tuple[str, str] | None = None
) -> None:
    """Purge every ``purge_every_s`` until ``stop`` (the actioner's side task).

    A failed purge (PostgreSQL away) is logged and tried again at the next turn: retention is
    a bound on age, not a deadline to the second.
    """
    every = settings.privacy.purge_every_s
    if every <= 0:
        return
    while not stop.is_set():
        try:
            counts = await purge_once(settings, community=community)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: log, try again next turn
            logger.warning("retention purge failed: %r; trying again in %.0f s", exc, every)
        else:
            if counts is None:
                logger.debug("retention purge skipped: another process is purging")
            elif any(counts.values()):
                logger.info(
                    "retention purge: %s",
                    ", ".join(f"{n} {table}" for table, n in counts.items() if n),
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)

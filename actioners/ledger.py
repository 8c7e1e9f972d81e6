"""The action ledger: the intent is written before the platform is called, so nothing is done twice.

An entry moves ``pending -> in_flight -> done | skipped | failed``, keyed by the deterministic
``action_id`` (message id + action kind). The decision that created it, its strikes and its
entries are written in one transaction, so a verdict decided again finds them all and adds
nothing. An entry found ``in_flight`` (the actioner died between the platform call and the
bookkeeping) is reconciled by the executor, never blindly repeated. The audit row is written
in the same transaction as the final state; ``published`` records that the ActionResult reached
``moderation.actions.v1``.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from actioners import audit
from actioners.database import Database
from actioners.executors import HELD
from schemas.events import ActionRequest, ActionResult, ActionStatus, Verdict, utcnow

if TYPE_CHECKING:
    from actioners.policy import Decision


class State(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


FINAL = {
    State.DONE: ActionStatus.DONE,
    State.SKIPPED: ActionStatus.SKIPPED,
    State.FAILED: ActionStatus.FAILED,
}
STATE_OF = {status: state for state, status in FINAL.items()}


@dataclass(frozen=True)
class Source:
    """Where the verdict behind an entry was read: its partition is whose actioner owns it."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Entry:
    request: ActionRequest
    state: State
    source: Source
    detail: str = ""
    executor: str = ""
    attempts: int = 0
    published: bool = False
    started_at: datetime | None = None
    completed_at: datetime | None = None
    # Not to be carried out before this (a raid mode's RAID_MODE_OFF); see ``Ledger.due``.
    due_at: datetime | None = None

    @property
    def action_id(self) -> str:
        return self.request.action_id

    @property
    def open(self) -> bool:
        return self.state in (State.PENDING, State.IN_FLIGHT)

    @property
    def waiting(self) -> bool:
        """Pending until its ``due_at``: only ``Ledger.due`` hands it out to be carried out."""
        return self.state is State.PENDING and self.due_at is not None

    def result(self) -> ActionResult:
        """The ActionResult of a finished entry."""
        if self.open:
            raise ValueError(f"action {self.action_id} is not finished ({self.state})")
        return result_of(
            self.request,
            executor=self.executor or "none",
            status=FINAL[self.state],
            detail=self.detail,
            completed_at=self.completed_at or utcnow(),
        )


REVIEW_QUEUE = "review-queue"
"""The executor recorded for a HOLD: no platform is called, the line waits in ``holds``."""


def hold_entry(request: ActionRequest, skip: str | None, source: Source, now: datetime) -> Entry:
    """A HOLD's ledger entry, finished as it is decided (skipped, "held for review", as every
    executor answers a hold): the line is in the review queue (the ``holds`` table, written
    in the same transaction) and no platform is called, so nothing is left to dispatch."""
    return Entry(
        request=request,
        state=State.SKIPPED,
        source=source,
        detail=f"not done: {skip}" if skip else HELD,
        executor=REVIEW_QUEUE,
        completed_at=now,
    )


def result_of(
    request: ActionRequest,
    *,
    executor: str,
    status: ActionStatus,
    detail: str,
    completed_at: datetime,
) -> ActionResult:
    return ActionResult(
        action_id=request.action_id,
        message_id=request.message_id,
        platform=request.platform,
        community=request.community,
        channel=request.channel,
        user=request.user,
        kind=request.kind,
        status=status,
        executor=executor,
        detail=detail,
        reason=request.reason,
        severity=request.severity,
        p_toxic=request.p_toxic,
        model_version=request.model_version,
        policy_version=request.policy_version,
        sent_at=request.sent_at,
        requested_at=request.requested_at,
        completed_at=completed_at,
        duration_s=request.duration_s,
        modes=request.modes,
    )


_SELECT = (
    "SELECT request, state, source_topic, source_partition, source_offset, detail, executor,"
    " attempts, published, started_at, completed_at, due_at FROM action_ledger"
)


def _entry(row: tuple[Any, ...]) -> Entry:
    request, state, topic, partition, offset, detail, executor, attempts, published, *times = row
    return Entry(
        request=ActionRequest.model_validate(request),
        state=State(state),
        source=Source(topic, partition, offset),
        detail=detail,
        executor=executor,
        attempts=attempts,
        published=published,
        started_at=times[0],
        completed_at=times[1],
        due_at=times[2],
    )


async def decided(cur: psycopg.AsyncCursor[Any], message_ids: Sequence[str]) -> set[str]:
    """The messages among ``message_ids`` that already have a decision."""
    if not message_ids:
        return set()
    await cur.execute(
        "SELECT message_id FROM decisions WHERE message_id = ANY(%s)", (list(message_ids),)
    )
    return {row[0] for row in await cur.fetchall()}


@dataclass(frozen=True)
class DecisionRow:
    message_id: str
    platform: str
    community: str
    channel: str
    user: str
    policy_version: str
    model_version: str
    severity: str
    rule: str
    strikes_added: int
    strikes_active: int
    shadow: bool
    reason: str
    labels: tuple[str, ...] = ()
    # The verdict as the review page shows it (text, score, features, label scores, reasons).
    text: str | None = None
    p_toxic: float | None = None
    features: dict[str, float | None] | None = None
    label_scores: dict[str, float] | None = None
    reasons: dict[str, str] | None = None
    # What a replay needs (``warden replay-decision``): the whole verdict as JSON, and the
    # user's real and shadow strike points before the decision.
    verdict: dict[str, Any] | None = None
    strikes_before: int | None = None
    shadow_strikes_before: int | None = None


def decision_row(
    verdict: Verdict,
    decision: Decision,
    *,
    active_strikes: int | None = None,
    shadow_strikes: int | None = None,
) -> DecisionRow:
    """The ``decisions`` row of a verdict the policy acted on (or held), with the verdict's
    snapshot, so a moderator reviewing it later sees what the model saw, and with what
    ``evaluate`` was given (the whole verdict, ``active_strikes`` and ``shadow_strikes``), so
    the decision can be made again and compared."""
    return DecisionRow(
        # One decision per verdict: an image verdict's is kept beside its message's text one.
        message_id=verdict.decision_id,
        platform=verdict.platform.value,
        community=verdict.community,
        channel=verdict.channel,
        user=verdict.user,
        policy_version=decision.policy_version,
        model_version=verdict.model_version,
        severity=decision.severity.value,
        rule=decision.rule,
        strikes_added=decision.strikes_added,
        strikes_active=decision.strikes_after,
        shadow=decision.shadow,
        reason=decision.reason,
        labels=decision.labels,
        text=verdict.text,
        p_toxic=verdict.p_toxic,
        features={k: _finite(v) for k, v in verdict.features.items()},
        label_scores=dict(verdict.label_scores),
        reasons=dict(verdict.reasons) or None,
        verdict=verdict_document(verdict),
        strikes_before=active_strikes,
        shadow_strikes_before=shadow_strikes,
    )


def verdict_document(verdict: Verdict) -> dict[str, Any]:
    """The verdict as jsonb takes it (``Verdict.model_validate`` reads it back)."""
    document = verdict.model_dump(mode="json")
    document["text"] = audit.storable(verdict.text)
    document["features"] = {k: _finite(v) for k, v in verdict.features.items()}
    return document


def _finite(value: float | None) -> float | None:
    # jsonb has no NaN or infinity; a feature that is neither is shown as missing.
    return value if value is None or math.isfinite(value) else None


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


@dataclass(frozen=True)
class HoldRow:
    """A line held for a moderator's review (the ``holds`` table, the review queue)."""

    request: ActionRequest
    text: str
    labels: tuple[str, ...]
    held_action: str
    shadow: bool


async def record_decisions(
    cur: psycopg.AsyncCursor[Any],
    decisions: Sequence[DecisionRow],
    entries: Sequence[Entry],
    holds: Sequence[HoldRow] = (),
) -> None:
    """Write decisions, their holds and their ledger entries (finished ones with their audit
    rows), each once per message however often it is decided."""
    if holds:
        await cur.executemany(
            "INSERT INTO holds (message_id, action_id, platform, community, channel, user_id,"
            " text, labels, severity, p_toxic, held_action, shadow, reason, policy_version,"
            " model_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (message_id) DO NOTHING",
            [
                (
                    h.request.message_id,
                    h.request.action_id,
                    h.request.platform.value,
                    h.request.community,
                    h.request.channel,
                    h.request.user,
                    h.text,
                    list(h.labels),
                    h.request.severity.value,
                    h.request.p_toxic,
                    h.held_action,
                    h.shadow,
                    h.request.reason,
                    h.request.policy_version,
                    h.request.model_version,
                )
                for h in holds
            ],
        )
    if decisions:
        await cur.executemany(
            "INSERT INTO decisions (message_id, platform, community, channel, user_id,"
            " policy_version, model_version, severity, rule, strikes_added, strikes_active,"
            " shadow, reason, labels, text, p_toxic, features, label_scores, reasons,"
            " verdict, strikes_before, shadow_strikes_before)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (message_id) DO NOTHING",
            [
                (
                    d.message_id,
                    d.platform,
                    d.community,
                    d.channel,
                    d.user,
                    d.policy_version,
                    d.model_version,
                    d.severity,
                    d.rule,
                    d.strikes_added,
                    d.strikes_active,
                    d.shadow,
                    d.reason,
                    list(d.labels),
                    None if d.text is None else audit.storable(d.text),
                    d.p_toxic,
                    _json(d.features),
                    _json(d.label_scores),
                    _json(d.reasons),
                    _json(d.verdict),
                    d.strikes_before,
                    d.shadow_strikes_before,
                )
                for d in decisions
            ],
        )
    if not entries:
        return
    await cur.executemany(
        "INSERT INTO action_ledger (action_id, message_id, platform, community, user_id, kind,"
        " severity, state, request, detail, executor, source_topic, source_partition,"
        " source_offset, completed_at, due_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (action_id) DO NOTHING",
        [
            (
                e.action_id,
                e.request.message_id,
                e.request.platform.value,
                e.request.community,
                e.request.user,
                e.request.kind.value,
                e.request.severity.value,
                e.state.value,
                Jsonb(e.request.model_dump(mode="json")),
                e.detail,
                e.executor,
                e.source.topic,
                e.source.partition,
                e.source.offset,
                e.completed_at,
                e.due_at,
            )
            for e in entries
        ],
    )
    await audit.insert(cur, [e.result() for e in entries if not e.open])


class Ledger:
    """The ledger as the dispatcher and the actioner use it.

    Every method goes through ``Database.run``: when PostgreSQL is away it waits and tries
    again after a reconnect instead of failing, and every one of them is idempotent, since a
    transaction cut off at its commit may have committed (see each method).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def entries(self, message_ids: Sequence[str]) -> list[Entry]:
        """Every entry of these messages, in the order they were decided."""
        if not message_ids:
            return []

        async def read(cur: psycopg.AsyncCursor[Any]) -> list[tuple[Any, ...]]:
            await cur.execute(
                _SELECT + " WHERE message_id = ANY(%s) ORDER BY created_at, action_id",
                (list(message_ids),),
            )
            return await cur.fetchall()

        return [_entry(row) for row in await self.db.run(read)]

    async def unfinished(self, topic: str, partitions: Sequence[int]) -> list[Entry]:
        """Entries of these partitions not finished or not yet published (after a restart).

        Pending entries with a ``due_at`` are left out: ``due`` hands them out when their time
        has come (with what they restore), never before."""

        async def read(cur: psycopg.AsyncCursor[Any]) -> list[tuple[Any, ...]]:
            await cur.execute(
                _SELECT + " WHERE source_topic = %s AND source_partition = ANY(%s)"
                " AND (state IN ('pending', 'in_flight') OR NOT published)"
                " AND NOT (state = 'pending' AND due_at IS NOT NULL)"
                " ORDER BY source_partition, source_offset, created_at",
                (topic, list(partitions)),
            )
            return await cur.fetchall()

        return [_entry(row) for row in await self.db.run(read)]

    async def start(self, entries: Sequence[Entry], executor: str) -> list[Entry]:
        """Mark entries in flight: from here on, a crash leaves them to be reconciled.

        Returns the entries to carry out: the pending ones this call moved to in flight, and
        those already in flight (to reconcile). A pending entry that is not pending in the
        ledger any more was taken by someone else and is left out. The claim carries a token of
        this call, so that trying again after a commit whose answer was lost still finds the
        entries this call took.
        """
        pending = [e.action_id for e in entries if e.state is State.PENDING]
        started: set[str] = set()
        if pending:
            claim = f"in flight (claim {uuid.uuid4().hex})"

            async def claim_pending(cur: psycopg.AsyncCursor[Any]) -> set[str]:
                await cur.execute(
                    "UPDATE action_ledger SET state = 'in_flight', started_at = now(),"
                    " executor = %s, detail = %s WHERE action_id = ANY(%s)"
                    " AND (state = 'pending' OR (state = 'in_flight' AND detail = %s))"
                    " RETURNING action_id",
                    (executor, claim, pending, claim),
                )
                return {row[0] for row in await cur.fetchall()}

            started = await self.db.run(claim_pending)
        now = utcnow()
        out: list[Entry] = []
        for entry in entries:
            if entry.state is State.IN_FLIGHT:
                out.append(entry)
            elif entry.action_id in started:
                out.append(replace(entry, state=State.IN_FLIGHT, started_at=now, executor=executor))
        return out

    async def finish(
        self,
        entry: Entry,
        result: ActionResult,
        attempts: int,
        restore: dict[str, Any] | None = None,
    ) -> Entry:
        """Record the outcome and its audit row together (once: an entry no longer in flight
        keeps the outcome it has, and its audit row is written once), with what undoing it
        restores (``restore``: kept for a RAID_MODE_OFF, see ``due``)."""
        state = STATE_OF[result.status]

        async def record(cur: psycopg.AsyncCursor[Any]) -> None:
            await cur.execute(
                "UPDATE action_ledger SET state = %s, detail = %s, executor = %s,"
                " attempts = attempts + %s, completed_at = %s, restore = COALESCE(%s, restore)"
                " WHERE action_id = %s AND state = 'in_flight'",
                (
                    state.value,
                    audit.storable(result.detail),
                    result.executor,
                    attempts,
                    result.completed_at,
                    _json(restore),
                    entry.action_id,
                ),
            )
            await audit.insert(cur, [result])

        await self.db.run(record)
        return replace(
            entry,
            state=state,
            detail=result.detail,
            executor=result.executor,
            attempts=entry.attempts + attempts,
            completed_at=result.completed_at,
        )

    async def due(
        self, topic: str, partitions: Sequence[int], limit: int = 100
    ) -> list[tuple[Entry, str | None]]:
        """Pending entries of these partitions whose ``due_at`` has passed, each with the state
        of the entry it reverses (None: none).

        What that entry's executor said to restore is copied into the request first (in the
        same statement), so the undo carries it whoever runs it, also after a restart that
        finds it in flight (``unfinished``)."""

        async def read(cur: psycopg.AsyncCursor[Any]) -> list[tuple[Any, ...]]:
            await cur.execute(
                "WITH due AS (SELECT d.action_id, o.state AS original, o.restore"
                " FROM action_ledger d LEFT JOIN action_ledger o"
                " ON o.action_id = d.request->>'reverses'"
                " WHERE d.source_topic = %s AND d.source_partition = ANY(%s)"
                " AND d.state = 'pending' AND d.due_at IS NOT NULL AND d.due_at <= now()"
                " ORDER BY d.due_at LIMIT %s)"
                " UPDATE action_ledger l SET request = jsonb_set(l.request, '{restore}',"
                " COALESCE(due.restore, 'null'::jsonb))"
                " FROM due WHERE l.action_id = due.action_id"
                " RETURNING l.request, l.state, l.source_topic, l.source_partition,"
                " l.source_offset, l.detail, l.executor, l.attempts, l.published,"
                " l.started_at, l.completed_at, l.due_at, due.original",
                (topic, list(partitions), limit),
            )
            return await cur.fetchall()

        return [(_entry(row[:-1]), row[-1]) for row in await self.db.run(read)]

    async def mark_published(self, action_ids: Sequence[str]) -> None:
        """Record that these results reached the broker (tried through reconnects, so that a
        PostgreSQL outage after the send does not publish them again)."""
        if not action_ids:
            return

        async def mark(cur: psycopg.AsyncCursor[Any]) -> None:
            await cur.execute(
                "UPDATE action_ledger SET published = true WHERE action_id = ANY(%s)",
                (list(action_ids),),
            )

        await self.db.run(mark)

"""A moderator's decision on a message: uphold, overturn, approve or dismiss a hold.

Each is one Postgres transaction that locks the message's decision row (so two moderators, or
one clicking twice, are served one after the other), writes the review (the audit of who
decided what and why), resolves the dispute and the hold, and, for an overturn or an approved
hold, writes the platform actions as pending ledger entries of the actioner's ledger. Only
after the commit are they carried out, by the actioner's dispatcher and executors
(``actioners.dispatch``, built from ``WARDEN_ACTIONER__EXECUTOR``), so the ledger's rules hold:

- exactly once: a reversal's ``action_id`` is ``<undone action_id>:undo`` and a hold's action is
  ``<message>:<kind>``, inserted once (a second overturn is refused, and would find the entry
  anyway); an entry is claimed (pending -> in flight) before the platform is called;
- a restart in the middle loses nothing: entries whose source is this service
  (``source_topic`` = the feedback topic, partition 0, offset = the review id) and that are
  unfinished or unpublished are settled when the service starts (in-flight ones reconciled, not
  repeated), and reviews whose Feedback is not yet on the topic are published then.

What an overturn undoes: a done timeout (UNTIMEOUT) and a done ban (UNBAN); the message's
strike is pardoned. A delete, a warning and a kick cannot be undone (the page says so). Every
reversal's ActionResult goes to moderation.actions.v1 (and its audit row to ``action_audit``);
the review's ``Feedback`` (kind review, ``label_toxic`` false and ``overturned`` true for an
overturn, true/false for an uphold) goes to moderation.feedback.v1 for retraining.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from actioners import ledger as ledgers
from actioners import strikes as strike_book
from actioners.database import Database
from actioners.dispatch import Dispatcher
from actioners.executors import Router
from actioners.ledger import Entry, Ledger, Source, State
from actioners.publisher import Outgoing, Publisher
from actioners.review.store import Community
from core import metrics
from core.errors import WardenError
from core.settings import Settings
from schemas.events import ActionKind, ActionRequest, Feedback, FeedbackKind, Platform, utcnow
from schemas.topics import ACTIONS, FEEDBACK

logger = logging.getLogger(__name__)

REVERSALS = {ActionKind.TIMEOUT: ActionKind.UNTIMEOUT, ActionKind.BAN: ActionKind.UNBAN}
CANNOT_UNDO = {
    ActionKind.DELETE: "a deleted message cannot be restored",
    ActionKind.WARN: "a warning cannot be taken back",
    ActionKind.KICK: "a kick cannot be undone (the user may rejoin)",
    ActionKind.RAID_MODE: "raid mode ends by itself after its duration (or on the platform)",
}
STRONGEST = ("ban", "kick", "timeout", "warn", "delete")
NOTE_MAX = 2000


class ResolutionError(WardenError):
    """A decision that cannot be taken (shown to the moderator as it is)."""

    exit_code = 4


class NotFound(ResolutionError):
    """No such decided message in the moderator's communities."""


@dataclass(frozen=True)
class Resolution:
    review_id: int
    outcome: str
    entries: tuple[Entry, ...]
    strikes_cleared: int = 0
    platform: str = ""
    community: str = ""


def undo_request(original: ActionRequest, *, moderator: str, note: str) -> ActionRequest:
    """The reversal of a done timeout or ban (deterministic id: ``<action_id>:undo``)."""
    return original.model_copy(
        update={
            "action_id": f"{original.action_id}:undo",
            "kind": REVERSALS[original.kind],
            "duration_s": None,
            "notice": None,
            "reverses": original.action_id,
            "requested_at": utcnow(),
            "reason": f"overturned by {moderator}: {note}"[:NOTE_MAX],
        }
    )


def check_note(note: str) -> str:
    note = note.strip()
    if not note:
        raise ResolutionError("a note saying why is required")
    if len(note) > NOTE_MAX:
        raise ResolutionError(f"the note is over {NOTE_MAX} characters")
    return note


class Resolver:
    def __init__(
        self, settings: Settings, db: Database, executor: Router, publisher: Publisher
    ) -> None:
        suffix = settings.kafka.topic_suffix
        self.settings = settings
        self.db = db
        self.publisher = publisher
        self.ledger = Ledger(db)
        self.dispatcher = Dispatcher(executor, self.ledger, settings.actioner)
        # The "source" of the ledger entries this service writes: what it resumes at start.
        self.source_topic = FEEDBACK.name_for(suffix)
        self.feedback_topic = FEEDBACK.name_for(suffix)
        self.actions_topic = ACTIONS.name_for(suffix)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- decisions ---------------------------------------------------------------------------

    async def overturn(
        self, moderator: str, message_id: str, communities: Sequence[Community], note: str
    ) -> Resolution:
        note = check_note(note)

        async def work(cur: psycopg.AsyncCursor[Any]) -> Resolution:
            decision = await _lock_decision(cur, message_id, communities)
            if await _outcomes(cur, message_id) & {"overturned"}:
                raise ResolutionError("already overturned")
            review_id, _, _ = await _review(
                cur, decision, moderator, "overturned", note, self.feedback_topic
            )
            originals = await _done_actions(cur, message_id)
            undo = [
                Entry(
                    request=undo_request(o, moderator=moderator, note=note),
                    state=State.PENDING,
                    source=Source(self.source_topic, 0, review_id),
                )
                for o in originals
                if o.kind in REVERSALS
            ]
            await ledgers.record_decisions(cur, [], undo)
            cleared = await strike_book.pardon_message(
                cur, message_id, moderator=f"review:{moderator}", reason=note
            )
            await cur.execute(
                "UPDATE holds SET reviewed_at = now(), reviewed_by = %s, outcome = 'overturned'"
                " WHERE message_id = %s AND reviewed_at IS NULL",
                (moderator, message_id),
            )
            await cur.execute(
                "UPDATE reviews SET reversals = %s WHERE id = %s",
                ([e.action_id for e in undo], review_id),
            )
            where = {"platform": decision["platform"], "community": decision["community"]}
            return Resolution(review_id, "overturned", tuple(undo), cleared, **where)

        resolution = await self._decide(work)
        await self._carry_out(resolution)
        return resolution

    async def uphold(
        self, moderator: str, message_id: str, communities: Sequence[Community], note: str
    ) -> Resolution:
        note = check_note(note)

        async def work(cur: psycopg.AsyncCursor[Any]) -> Resolution:
            decision = await _lock_decision(cur, message_id, communities)
            done = await _outcomes(cur, message_id)
            if "overturned" in done:
                raise ResolutionError("already overturned")
            if "upheld" in done:
                raise ResolutionError("already upheld")
            review_id, _, _ = await _review(
                cur, decision, moderator, "upheld", note, self.feedback_topic
            )
            where = {"platform": decision["platform"], "community": decision["community"]}
            return Resolution(review_id, "upheld", (), **where)

        resolution = await self._decide(work)
        await self._carry_out(resolution)
        return resolution

    async def resolve_hold(
        self,
        moderator: str,
        message_id: str,
        communities: Sequence[Community],
        note: str,
        *,
        approve: bool,
    ) -> Resolution:
        """Approve (run the held action: the ban, or for a line held for review, its delete)
        or dismiss a hold nobody has reviewed yet."""
        note = check_note(note)
        outcome = "hold_approved" if approve else "hold_dismissed"

        async def work(cur: psycopg.AsyncCursor[Any]) -> Resolution:
            decision = await _lock_decision(cur, message_id, communities)
            await cur.execute(
                "SELECT action_id, held_action, shadow, reviewed_at FROM holds"
                " WHERE message_id = %s",
                (message_id,),
            )
            hold = await cur.fetchone()
            if hold is None:
                raise ResolutionError("nothing was held for this message")
            hold_action, held, shadow, reviewed = hold
            if reviewed is not None:
                raise ResolutionError("the hold was reviewed already")
            if approve and shadow:
                raise ResolutionError("a shadow decision's hold: nothing to run")
            review_id, _, _ = await _review(
                cur, decision, moderator, outcome, note, self.feedback_topic
            )
            entries: list[Entry] = []
            if approve:
                await cur.execute(
                    "SELECT request FROM action_ledger WHERE action_id = %s", (hold_action,)
                )
                row = await cur.fetchone()
                if row is None:
                    raise ResolutionError("the hold's ledger entry is missing")
                kind = ActionKind.BAN if held == "ban" else ActionKind.DELETE
                template = ActionRequest.model_validate(row[0])
                request = template.model_copy(
                    update={
                        "action_id": f"{message_id}:{kind.value}",
                        "kind": kind,
                        "requested_at": utcnow(),
                        "reason": f"hold approved by {moderator}: {note}"[:NOTE_MAX],
                    }
                )
                entries.append(
                    Entry(request, State.PENDING, Source(self.source_topic, 0, review_id))
                )
                await ledgers.record_decisions(cur, [], entries)
            await cur.execute(
                "UPDATE holds SET reviewed_at = now(), reviewed_by = %s, outcome = %s"
                " WHERE message_id = %s",
                (moderator, "approved" if approve else "dismissed", message_id),
            )
            await cur.execute(
                "UPDATE reviews SET reversals = %s WHERE id = %s",
                ([e.action_id for e in entries], review_id),
            )
            where = {"platform": decision["platform"], "community": decision["community"]}
            return Resolution(review_id, outcome, tuple(entries), **where)

        resolution = await self._decide(work)
        await self._carry_out(resolution)
        return resolution

    async def _decide(self, work: Any) -> Resolution:
        try:
            async with self.db.transaction() as cur:
                result: Resolution = await work(cur)
        except psycopg.errors.UniqueViolation as exc:
            raise ResolutionError("someone decided this message at the same moment") from exc
        community = metrics.COMMUNITIES(result.platform, result.community)
        metrics.REVIEWS.labels(community, result.outcome).inc()  # once committed
        return result

    # -- carrying out ------------------------------------------------------------------------

    async def _carry_out(self, resolution: Resolution) -> None:
        """Settle the new entries and publish the Feedback, in the background; wait up to
        ``review.reversal_wait_s`` so the page usually shows them done."""
        task = asyncio.create_task(self._settle(resolution.entries, [resolution.review_id]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.wait({task}, timeout=self.settings.review.reversal_wait_s)

    async def resume(self) -> None:
        """At start: settle this service's unfinished or unpublished ledger entries and
        publish the reviews not yet published (a restart in the middle of an overturn)."""
        entries = await self.ledger.unfinished(self.source_topic, [0])

        async def unpublished(cur: psycopg.AsyncCursor[Any]) -> list[int]:
            # Only this environment's (its feedback topic): another one sharing the database
            # publishes its own.
            await cur.execute(
                "SELECT id FROM reviews WHERE NOT published"
                " AND (feedback_topic = %s OR feedback_topic IS NULL) ORDER BY id",
                (self.feedback_topic,),
            )
            return [row[0] for row in await cur.fetchall()]

        reviews = await self.db.run(unpublished)
        if entries or reviews:
            logger.info(
                "resuming %d unfinished review actions and %d unpublished reviews",
                len(entries),
                len(reviews),
            )
        await self._settle(entries, reviews)

    async def _settle(self, entries: Sequence[Entry], review_ids: Sequence[int]) -> None:
        try:
            finished = await self.dispatcher.run(entries) if entries else []
            unpublished = [e for e in finished if not e.published and not e.open]
            outgoing = [
                Outgoing(self.actions_topic, e.result().to_json_bytes(), e.request.key.encode())
                for e in unpublished
            ]
            feedback = await self._feedback(review_ids)
            outgoing.extend(
                Outgoing(self.feedback_topic, f.to_json_bytes(), f.message_id.encode())
                for f in feedback
            )
            if outgoing:
                await self.publisher.send_all(outgoing)
            await self.ledger.mark_published([e.action_id for e in unpublished])
            if feedback:

                async def mark(cur: psycopg.AsyncCursor[Any]) -> None:
                    await cur.execute(
                        "UPDATE reviews SET published = true WHERE id = ANY(%s)",
                        (list(review_ids),),
                    )

                await self.db.run(mark)
        except asyncio.CancelledError:
            raise
        except Exception:  # the background work's boundary: left to the next start
            logger.exception("settling review actions failed; resumed at the next start")

    async def _feedback(self, review_ids: Sequence[int]) -> list[Feedback]:
        if not review_ids:
            return []

        async def read(cur: psycopg.AsyncCursor[Any]) -> list[tuple[Any, ...]]:
            await cur.execute(
                "SELECT id, message_id, platform, community, moderator, outcome, note,"
                " action_id, created_at FROM reviews WHERE id = ANY(%s) AND NOT published",
                (list(review_ids),),
            )
            return await cur.fetchall()

        out: list[Feedback] = []
        for (
            rid,
            message_id,
            platform,
            community,
            moderator,
            outcome,
            note,
            action,
            at,
        ) in await self.db.run(read):
            out.append(
                Feedback(
                    feedback_id=f"review:{rid}",
                    kind=FeedbackKind.REVIEW,
                    message_id=message_id,
                    platform=Platform(platform),
                    community=community,
                    user=moderator,
                    reason=note,
                    label_toxic=outcome in ("upheld", "hold_approved"),
                    overturned=outcome == "overturned",
                    created_at=at,
                    action_id=action,
                    source="review",
                )
            )
        return out

    async def close(self) -> None:
        """Give the background work a moment; what is left is resumed at the next start."""
        if self._tasks:
            _, left = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)


async def _lock_decision(
    cur: psycopg.AsyncCursor[Any], message_id: str, communities: Sequence[Community]
) -> dict[str, Any]:
    if not communities:
        raise NotFound(message_id)
    await cur.execute(
        "SELECT dec.message_id, dec.platform, dec.community, dec.user_id FROM decisions dec"
        " JOIN unnest(%s::text[], %s::text[]) AS g(p, c)"
        " ON dec.platform = g.p AND dec.community = g.c"
        " WHERE dec.message_id = %s FOR UPDATE OF dec",
        ([p for p, _ in communities], [c for _, c in communities], message_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(message_id)
    return {"message_id": row[0], "platform": row[1], "community": row[2], "user_id": row[3]}


async def _outcomes(cur: psycopg.AsyncCursor[Any], message_id: str) -> set[str]:
    await cur.execute("SELECT DISTINCT outcome FROM reviews WHERE message_id = %s", (message_id,))
    return {row[0] for row in await cur.fetchall()}


async def _review(
    cur: psycopg.AsyncCursor[Any],
    decision: dict[str, Any],
    moderator: str,
    outcome: str,
    note: str,
    feedback_topic: str,
) -> tuple[int, int | None, str | None]:
    """Resolve the open dispute (upheld or overturned) and write the review row."""
    dispute_id: int | None = None
    action_id: str | None = None
    if outcome in ("upheld", "overturned"):
        await cur.execute(
            "UPDATE disputes SET state = %s, resolved_by = %s, resolved_at = now(), note = %s"
            " WHERE message_id = %s AND platform = %s AND community = %s AND state = 'open'"
            " RETURNING id, action_id",
            (
                outcome,
                moderator,
                note,
                decision["message_id"],
                decision["platform"],
                decision["community"],
            ),
        )
        row = await cur.fetchone()
        if row is not None:
            dispute_id, action_id = row
    if action_id is None:
        await cur.execute(
            "SELECT action_id, kind FROM action_ledger WHERE message_id = %s AND kind = ANY(%s)",
            (decision["message_id"], list(STRONGEST)),
        )
        kinds = {kind: action for action, kind in await cur.fetchall()}
        action_id = next((kinds[k] for k in STRONGEST if k in kinds), None)
    await cur.execute(
        "INSERT INTO reviews (message_id, platform, community, moderator, outcome, note,"
        " dispute_id, action_id, feedback_topic) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            decision["message_id"],
            decision["platform"],
            decision["community"],
            moderator,
            outcome,
            note,
            dispute_id,
            action_id,
            feedback_topic,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), dispute_id, action_id


async def _done_actions(cur: psycopg.AsyncCursor[Any], message_id: str) -> list[ActionRequest]:
    """The message's actions the platform carried out (reversals aside)."""
    await cur.execute(
        "SELECT request FROM action_ledger WHERE message_id = %s AND state = 'done'"
        " AND kind = ANY(%s) ORDER BY created_at, action_id",
        (message_id, [k.value for k in (*REVERSALS, *CANNOT_UNDO)]),
    )
    return [ActionRequest.model_validate(row[0]) for row in await cur.fetchall()]

"""The review service's consumers: disputes (moderation.feedback.v1) and explanations
(moderation.explanations.v1) into Postgres, in the consumer group ``<prefix>.review``.

Disputes. A ``Feedback`` of kind ``dispute`` names the message disputed. When that message has
a decision in the community, the dispute is about it (only its author may dispute it: a
dispute by anyone else is dropped and logged). When it has none, but the user has an action in
the community, the dispute is attached to the user's latest action: Twitch's ``!dispute`` chat
command sends the id of the command line itself, since a Twitch user has no other handle on
the line that was deleted. A dispute matching neither is dropped (nothing to dispute). All
disputes of one decided message are one row (``disputes``) whose ``count`` grows once per
``feedback_id``: a redelivered record counts once. Reviews (kind ``review``) are what this
service publishes itself: skipped.

Explanations: the latest per message (``explanations``), an older one never replacing a newer.

Records that do not decode (or that Postgres refuses for their data) go to the dead-letter
topic with the reason, as every consumer does; offsets are committed after the writes, so a
crash re-reads and the writes are idempotent. PostgreSQL being away is waited out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from actioners import audit
from actioners.database import Database, is_unavailable
from actioners.publisher import Outgoing, Publisher
from core import metrics
from core.clients import group_id, kafka_consumer
from core.settings import Settings
from schemas.events import DeadLetter, Explanation, Feedback, FeedbackKind
from schemas.topics import DEADLETTER, EXPLANATIONS, FEEDBACK

logger = logging.getLogger(__name__)
SERVICE = "review"
# Reversals and their severity rank: a dispute names the strongest action of its message.
IMPACT = ("ban", "kick", "timeout", "warn", "delete")


async def take_dispute(cur: psycopg.AsyncCursor[Any], feedback: Feedback) -> str:
    """Record one dispute; returns what became of it (for logs and tests)."""
    await cur.execute(
        "SELECT 1 FROM dispute_feedback WHERE feedback_id = %s", (feedback.feedback_id,)
    )
    if await cur.fetchone() is not None:
        return "repeat"
    platform = feedback.platform.value
    await cur.execute(
        "SELECT user_id FROM decisions WHERE message_id = %s AND platform = %s AND community = %s",
        (feedback.message_id, platform, feedback.community),
    )
    row = await cur.fetchone()
    message_id = feedback.message_id
    if row is not None:
        if row[0] != feedback.user:
            logger.warning(
                "dispute %s of message %s dropped: not by its author",
                feedback.feedback_id,
                message_id,
            )
            return "not the author"
    else:
        # Not a decided message (Twitch's !dispute line): the user's latest action here.
        await cur.execute(
            "SELECT message_id FROM action_ledger WHERE platform = %s AND community = %s"
            " AND user_id = %s AND kind = ANY(%s)"
            # One batch's entries share created_at: the later message is the later offset (a
            # user's verdicts share a partition).
            " ORDER BY created_at DESC, source_offset DESC LIMIT 1",
            (platform, feedback.community, feedback.user, list(IMPACT)),
        )
        latest = await cur.fetchone()
        if latest is None:
            logger.info(
                "dispute %s dropped: %s has no action in %s:%s",
                feedback.feedback_id,
                feedback.user,
                platform,
                feedback.community,
            )
            return "nothing to dispute"
        message_id = str(latest[0])
    await cur.execute(
        "SELECT action_id, kind FROM action_ledger WHERE message_id = %s AND kind = ANY(%s)",
        (message_id, list(IMPACT)),
    )
    kinds = {kind: action for action, kind in await cur.fetchall()}
    action_id = next((kinds[k] for k in IMPACT if k in kinds), None)
    if feedback.action_id and feedback.action_id in kinds.values():
        action_id = feedback.action_id
    reason = audit.storable(feedback.reason)
    await cur.execute(
        "INSERT INTO disputes (message_id, action_id, platform, community, user_id, reason,"
        " source) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (platform, community, message_id) DO UPDATE"
        " SET count = disputes.count + 1, last_at = now(),"
        " reason = CASE WHEN disputes.reason = '' THEN EXCLUDED.reason ELSE disputes.reason END"
        " RETURNING id, count",
        (
            message_id,
            action_id,
            platform,
            feedback.community,
            feedback.user,
            reason,
            feedback.source or "",
        ),
    )
    dispute = await cur.fetchone()
    assert dispute is not None
    await cur.execute(
        "INSERT INTO dispute_feedback (feedback_id, dispute_id, disputed_message_id, reason,"
        " source, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (
            feedback.feedback_id,
            dispute[0],
            feedback.message_id,
            reason,
            feedback.source or "",
            feedback.created_at,
        ),
    )
    return "opened" if dispute[1] == 1 else "counted"


async def take_explanation(cur: psycopg.AsyncCursor[Any], explanation: Explanation) -> None:
    """Keep the latest explanation of a message (an older one never replaces a newer)."""
    await cur.execute(
        "INSERT INTO explanations (message_id, document, created_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document,"
        " created_at = EXCLUDED.created_at WHERE explanations.created_at <= EXCLUDED.created_at",
        (
            explanation.message_id,
            Jsonb(explanation.model_dump(mode="json")),
            explanation.created_at,
        ),
    )


class Intake:
    """Reads both topics and writes what they carry; one record at a time, committed after."""

    def __init__(self, settings: Settings, db: Database, publisher: Publisher) -> None:
        suffix = settings.kafka.topic_suffix
        self.settings = settings
        self.db = db
        self.publisher = publisher
        self.feedback_topic = FEEDBACK.name_for(suffix)
        self.explanations_topic = EXPLANATIONS.name_for(suffix)
        self.deadletter_topic = DEADLETTER.name_for(suffix)
        self.consumer: AIOKafkaConsumer | None = None

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Write each record (dead-lettering the ones that cannot be written)."""
        letters: list[DeadLetter] = []
        for record in records:
            metrics.MESSAGES_IN.labels(SERVICE, record.topic).inc()
            try:
                taken = await self.db.run(functools.partial(self._one, record=record))
                if taken is not None:  # counted once committed (db.run may run _one again)
                    platform, community, outcome = taken
                    community = metrics.COMMUNITIES(platform, community)
                    metrics.DISPUTES.labels(community, outcome.replace(" ", "_")).inc()
            except asyncio.CancelledError:
                raise
            except (ValidationError, ValueError, psycopg.DataError) as exc:
                letters.append(self._letter(record, exc))
            except psycopg.Error as exc:
                if is_unavailable(exc):
                    raise
                letters.append(self._letter(record, exc))
        if letters:
            metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(letters))
            await self.publisher.send_all(
                [
                    Outgoing(self.deadletter_topic, x.to_json_bytes(), x.source_topic.encode())
                    for x in letters
                ]
            )

    async def _one(
        self, cur: psycopg.AsyncCursor[Any], *, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[str, str, str] | None:
        """Write one record; for a dispute, returns (platform, community, what became of it)."""
        if record.value is None:
            raise ValueError("empty payload (tombstone)")
        if record.topic == self.explanations_topic:
            await take_explanation(cur, Explanation.model_validate_json(record.value))
            return None
        feedback = Feedback.model_validate_json(record.value)
        if feedback.kind is FeedbackKind.DISPUTE:
            outcome = await take_dispute(cur, feedback)
            logger.info("dispute %s of %s: %s", feedback.feedback_id, feedback.message_id, outcome)
            return feedback.platform.value, feedback.community, outcome
        return None

    def _letter(self, record: ConsumerRecord[bytes, bytes], exc: Exception) -> DeadLetter:
        logger.warning(
            "dead letter from %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            type(exc).__name__,
        )
        return DeadLetter.from_record(exc, record, service=SERVICE)

    async def run(self) -> None:
        """Consume until cancelled (Kafka away: aiokafka reconnects; Postgres: waited out)."""
        consumer = kafka_consumer(
            self.settings.kafka,
            self.feedback_topic,
            self.explanations_topic,
            group_id=group_id(self.settings.kafka, SERVICE),
        )
        self.consumer = consumer
        while True:
            try:
                await consumer.start()
                break
            except KafkaError as exc:
                logger.warning("review consumer cannot start yet: %r", exc)
                await asyncio.sleep(2.0)
        logger.info("review consumer reading %s, %s", self.feedback_topic, self.explanations_topic)
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=200)
                records = [r for batch in batches.values() for r in batch]
                if not records:
                    continue
                await self.handle(records)
                try:
                    await consumer.commit()
                except KafkaError as exc:
                    # Re-read after a rebalance; the writes are idempotent.
                    logger.warning("review offsets not committed: %r", exc)
        finally:
            await consumer.stop()

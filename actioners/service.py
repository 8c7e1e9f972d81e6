"""The actioner: moderation.verdicts.v1 -> policy -> ledger -> executor -> moderation.actions.v1.

Per batch of records:

1. decode the verdicts (undecodable ones become dead letters);
2. decide: each community's policy (``actioners.policy``) and each user's active strikes give a
   decision; the decision, its strikes and its action intents (the ledger entries) are written
   in one transaction. A verdict already decided (delivered again) decides nothing new;
3. commit the offsets: from here on the ledger, not the topic, holds the work;
4. act, in the background: the dispatcher carries out the entries (``actioners.dispatch``),
   each marked in flight before the platform is called and finished with its audit row after;
   then every finished entry is published as an ``ActionResult`` (permanent failures also as
   dead letters, with the reason) and marked published.

So a slow platform (a timeout waiting on Discord's per-guild limit) never holds up the deletes
of the next batch, and a queue that builds up is served highest severity first. At most
``max_pending_actions`` wait at once; beyond that the actioner stops reading verdicts.

A crash anywhere loses nothing and repeats nothing: when partitions are assigned, whatever the
ledger holds unfinished or unpublished for them is settled first; entries left in flight are
reconciled with the platform, never blindly repeated. When partitions are taken away (or on
shutdown) the actions under way get ``drain_timeout_s`` to finish first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError

from actioners import ledger as ledgers
from actioners import strikes as strike_book
from actioners.database import Database
from actioners.dispatch import Dispatcher
from actioners.executors import Router
from actioners.ledger import DecisionRow, Entry, Ledger, Source, State
from actioners.policy import evaluate, requests_for
from actioners.policystore import PolicyStore, StoredPolicy
from actioners.strikes import NewStrike
from schemas.events import DeadLetter, Verdict, utcnow
from schemas.topics import ACTIONS, DEADLETTER, VERDICTS
from warden import metrics
from warden.clients import group_id, kafka_consumer, kafka_producer
from warden.settings import Settings

logger = logging.getLogger(__name__)
SERVICE = "actioner"


def dead_letter(record: ConsumerRecord[bytes, bytes], exc: Exception) -> DeadLetter:
    return DeadLetter.from_error(
        exc,
        record.value,
        service=SERVICE,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
    )


def failed_action_letter(entry: Entry) -> DeadLetter:
    """A permanently failed action, with its request and the reason, for someone to look at."""
    return DeadLetter(
        source_topic=entry.source.topic,
        partition=entry.source.partition,
        offset=entry.source.offset,
        key=entry.request.key,
        raw=entry.request.model_dump_json(),
        error=f"{entry.request.kind.value} failed: {entry.detail}",
        error_type="PermanentActionError",
        service=SERVICE,
        failed_at=utcnow(),
    )


class ReadyListener(ConsumerRebalanceListener):
    """Publishes readiness (``warden_ready``), remembers new partitions to settle, and lets the
    actions of partitions taken away finish before another actioner gets them."""

    def __init__(self) -> None:
        self.assigned: set[int] = set()
        self.on_revoke: Callable[[], Awaitable[None]] | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        metrics.READY.labels(SERVICE).set(0)
        if revoked and self.on_revoke is not None:
            await self.on_revoke()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned.update(tp.partition for tp in assigned)
        metrics.READY.labels(SERVICE).set(1)


class Actioner:
    def __init__(
        self,
        settings: Settings,
        executor: Router,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        db: Database,
        listener: ReadyListener | None = None,
    ) -> None:
        suffix = settings.kafka.topic_suffix
        self.settings = settings
        self.executor = executor
        self.consumer = consumer
        self.producer = producer
        self.db = db
        self.listener = listener or ReadyListener()
        self.listener.on_revoke = self.drain
        self.policies = PolicyStore(
            db, settings.actioner.default_preset, settings.actioner.policy_cache_s
        )
        self.ledger = Ledger(db)
        self.dispatcher = Dispatcher(executor, self.ledger, settings.actioner)
        self.verdicts_topic = VERDICTS.name_for(suffix)
        self.actions_topic = ACTIONS.name_for(suffix)
        self.deadletter_topic = DEADLETTER.name_for(suffix)
        # Entries being settled by this process, and the tasks settling them.
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._paused = False

    @property
    def pending(self) -> int:
        """Actions decided here and not settled yet."""
        return len(self._active)

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decide a batch and record it; its actions are settled in the background."""
        started = time.perf_counter()
        verdicts: list[tuple[ConsumerRecord[bytes, bytes], Verdict]] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                if record.value is None:
                    raise ValueError("empty payload (tombstone)")
                verdicts.append((record, Verdict.model_validate_json(record.value)))
            except (ValidationError, ValueError) as exc:
                logger.warning(
                    "dead letter from %s[%d]@%d: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    type(exc).__name__,
                )
                dead.append(dead_letter(record, exc))
        metrics.MESSAGES_IN.labels(SERVICE, VERDICTS.name).inc(len(records))
        if dead:
            metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(dead))
            await self.publish([], dead)

        entries = await self.decide(verdicts)
        self.spawn(entries)
        metrics.PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def decide(
        self, verdicts: Sequence[tuple[ConsumerRecord[bytes, bytes], Verdict]]
    ) -> list[Entry]:
        """Decide the verdicts not decided before; return the ledger entries they created.

        Verdicts decided before (a redelivery) add nothing: their entries, if unfinished, are
        settled from the ledger when the partition is assigned.
        """
        if not verdicts:
            return []
        policies: dict[tuple[str, str], StoredPolicy] = {}
        for _, verdict in verdicts:
            key = (verdict.platform.value, verdict.community)
            if key not in policies:
                policies[key] = await self.policies.current(*key)
        message_ids = list(dict.fromkeys(v.message_id for _, v in verdicts))
        now = utcnow()
        intents: list[Entry] = []
        async with self.db.transaction() as cur:
            seen = await ledgers.decided(cur, message_ids)
            if len(seen) == len(message_ids):
                metrics.ERRORS.labels(SERVICE, "duplicate_verdict").inc(len(verdicts))
                return []
            counts = await strike_book.active_counts(
                cur, [(v.platform.value, v.community, v.user) for _, v in verdicts]
            )
            decisions: list[DecisionRow] = []
            new_strikes: list[NewStrike] = []
            for record, verdict in verdicts:
                if verdict.message_id in seen:
                    # Decided before (a restart, a redelivery, a repeat in this batch).
                    metrics.ERRORS.labels(SERVICE, "duplicate_verdict").inc()
                    continue
                seen.add(verdict.message_id)
                stored = policies[(verdict.platform.value, verdict.community)]
                user = (verdict.platform.value, verdict.community, verdict.user)
                real, shadow = counts[user]
                decision = evaluate(
                    stored.policy,
                    verdict,
                    policy_version=stored.version_id,
                    active_strikes=real,
                    shadow_strikes=shadow,
                )
                if decision is None:
                    continue
                if decision.strikes_added:
                    counts[user] = (
                        (real, shadow + decision.strikes_added)
                        if decision.shadow
                        else (real + decision.strikes_added, shadow)
                    )
                    new_strikes.append(
                        NewStrike(
                            *user,
                            message_id=verdict.message_id,
                            points=decision.strikes_added,
                            shadow=decision.shadow,
                            reason=decision.reason,
                            policy_version=decision.policy_version,
                            decay_days=stored.policy.strike_decay_days,
                        )
                    )
                decisions.append(
                    DecisionRow(
                        message_id=verdict.message_id,
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
                    )
                )
                source = Source(record.topic, record.partition, record.offset)
                for request, skip in requests_for(verdict, decision, now):
                    intents.append(
                        Entry(
                            request=request,
                            state=State.SKIPPED if skip else State.PENDING,
                            source=source,
                            detail=f"not done: {skip}" if skip else "",
                            executor=self.executor.executor_for(request) if skip else "",
                            completed_at=now if skip else None,
                        )
                    )
            await strike_book.add(cur, new_strikes)
            await ledgers.record_decisions(cur, decisions, intents)
        return intents

    def spawn(self, entries: Sequence[Entry]) -> None:
        """Settle ``entries`` in the background (those not already being settled here)."""
        mine = [e for e in entries if e.action_id not in self._active]
        if not mine:
            return
        ids = {e.action_id for e in mine}
        self._active.update(ids)
        task = asyncio.create_task(self.settle(mine))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._active.difference_update(ids)
            if not finished.cancelled() and finished.exception() is not None:
                # Postgres or Kafka failed under us: stop; a restart settles from the ledger.
                self._failure = finished.exception()

        task.add_done_callback(done)

    async def settle(self, entries: Sequence[Entry]) -> None:
        """Carry out the open entries, then publish every result not published yet."""
        finished = await self.dispatcher.run(entries)
        unpublished = [e for e in finished if not e.published and not e.open]
        letters = [failed_action_letter(e) for e in unpublished if e.state is State.FAILED]
        await self.publish(unpublished, letters)
        await self.ledger.mark_published([e.action_id for e in unpublished])

    async def publish(self, entries: Sequence[Entry], letters: Sequence[DeadLetter]) -> None:
        """Produce the results and dead letters, and wait until the broker has them all."""
        pending: list[asyncio.Future[Any]] = []
        for entry in entries:
            result = entry.result()
            pending.append(
                await self.producer.send(
                    self.actions_topic, result.to_json_bytes(), key=result.key.encode()
                )
            )
        for letter in letters:
            pending.append(
                await self.producer.send(
                    self.deadletter_topic, letter.to_json_bytes(), key=letter.source_topic.encode()
                )
            )
        await asyncio.gather(*pending)
        now = time.time()
        metrics.MESSAGES_OUT.labels(SERVICE, self.actions_topic).inc(len(entries))
        metrics.DEAD_LETTERS.labels(SERVICE).inc(len(letters))
        for entry in entries:
            sent_at = entry.request.sent_at.timestamp()
            metrics.END_TO_END_SECONDS.labels(SERVICE).observe(now - sent_at)

    async def recover(self, partitions: Sequence[int]) -> None:
        """Settle what the ledger holds unfinished for newly assigned partitions."""
        leftovers = await self.ledger.unfinished(self.verdicts_topic, partitions)
        if leftovers:
            in_flight = sum(e.state is State.IN_FLIGHT for e in leftovers)
            logger.info(
                "settling %d unfinished actions of partitions %s (%d in flight)",
                len(leftovers),
                sorted(partitions),
                in_flight,
            )
            self.spawn(leftovers)

    async def drain(self) -> None:
        """Let the actions under way finish (up to ``drain_timeout_s``); cancel the rest."""
        if not self._tasks:
            return
        timeout = self.settings.actioner.drain_timeout_s
        logger.info("waiting up to %.0f s for %d actions under way", timeout, self.pending)
        _, left = await asyncio.wait(set(self._tasks), timeout=timeout or None)
        for task in left:
            task.cancel()
        if left:
            # What was cancelled stays pending or in flight in the ledger: whoever gets the
            # partitions next finishes it (in-flight entries are reconciled, not repeated).
            logger.warning("left %d unfinished batches to the ledger", len(left))
            await asyncio.gather(*left, return_exceptions=True)

    def _back_pressure(self) -> None:
        """Stop reading verdicts while too many actions wait; read again below half of it."""
        limit = self.settings.actioner.max_pending_actions
        partitions = self.consumer.assignment()
        if self.pending >= limit:
            self.consumer.pause(*partitions)  # again: partitions may have come since
            if not self._paused:
                logger.warning("%d actions pending: not reading verdicts for now", self.pending)
            self._paused = True
        elif self._paused and self.pending < limit / 2:
            self.consumer.resume(*partitions)
            self._paused = False

    async def run(self, stop: asyncio.Event) -> None:
        max_records = self.settings.actioner.max_batch
        try:
            while not stop.is_set():
                if self._failure is not None:
                    raise self._failure
                self._back_pressure()
                batches = await self.consumer.getmany(timeout_ms=200, max_records=max_records)
                if self.listener.assigned:
                    partitions = sorted(self.listener.assigned)
                    self.listener.assigned.clear()
                    await self.recover(partitions)
                records = [record for batch in batches.values() for record in batch]
                if not records:
                    continue
                await self.handle(records)
                # After the decisions and their intents are in the ledger: a crash before
                # this line decides the batch again, which finds them and adds nothing.
                try:
                    await self.consumer.commit()
                except CommitFailedError as exc:
                    logger.warning("offsets not committed (a rebalance): %s", exc)
        finally:
            await self.drain()
        if self._failure is not None:
            raise self._failure


async def serve(settings: Settings, executor: Router, stop: asyncio.Event) -> None:
    """Run one actioner until ``stop`` is set."""
    db = await Database.connect(settings.postgres)
    try:
        await db.check_schema()
        await executor.start()
        listener = ReadyListener()
        consumer = kafka_consumer(settings.kafka, group_id=group_id(settings.kafka, SERVICE))
        consumer.subscribe([VERDICTS.name_for(settings.kafka.topic_suffix)], listener=listener)
        producer = kafka_producer(settings.kafka)
        await producer.start()
        await consumer.start()
        try:
            actioner = Actioner(settings, executor, consumer, producer, db, listener)
            logger.info(
                "actioner consuming %s, acting through %s",
                VERDICTS.name_for(settings.kafka.topic_suffix),
                executor.name,
            )
            await actioner.run(stop)
        finally:
            await consumer.stop()
            await producer.stop()
    finally:
        await executor.close()
        await db.close()

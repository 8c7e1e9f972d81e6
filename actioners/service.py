"""The actioner: moderation.verdicts.v1 -> policy -> executor -> audit row + moderation.actions.v1.

Per batch of records: decide, act, write the audit rows, produce the results and the dead
letters, wait until the broker has them, and only then commit the offsets. A verdict delivered
again (a restart, a rebalance) finds its action in the audit table and is not acted on twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from pydantic import ValidationError

from actioners.audit import AuditLog
from actioners.executors import Executor
from actioners.policy import decide
from schemas.events import ActionRequest, ActionResult, DeadLetter, Verdict, raw_text, utcnow
from schemas.topics import ACTIONS, DEADLETTER, VERDICTS
from warden import metrics
from warden.clients import group_id, kafka_consumer, kafka_producer, postgres_connection
from warden.settings import Settings

logger = logging.getLogger(__name__)
SERVICE = "actioner"


def dead_letter(record: ConsumerRecord[bytes, bytes], exc: Exception) -> DeadLetter:
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=raw_text(record.key) if record.key is not None else None,
        raw=raw_text(record.value),
        error=str(exc),
        error_type=type(exc).__name__,
        service=SERVICE,
        failed_at=utcnow(),
    )


class ReadyListener(ConsumerRebalanceListener):
    """Publishes readiness (the ``warden_ready`` gauge) as partitions come and go."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        metrics.READY.labels(SERVICE).set(0)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        metrics.READY.labels(SERVICE).set(1)


class Actioner:
    def __init__(
        self,
        settings: Settings,
        executor: Executor,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        audit: AuditLog,
    ) -> None:
        suffix = settings.kafka.topic_suffix
        self.executor = executor
        self.consumer = consumer
        self.producer = producer
        self.audit = audit
        self.actions_topic = ACTIONS.name_for(suffix)
        self.deadletter_topic = DEADLETTER.name_for(suffix)

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        started = time.perf_counter()
        requests: list[ActionRequest] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                if record.value is None:
                    raise ValueError("empty payload (tombstone)")
                verdict = Verdict.model_validate_json(record.value)
            except (ValidationError, ValueError) as exc:
                logger.warning(
                    "dead letter from %s[%d]@%d: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    type(exc).__name__,
                )
                dead.append(dead_letter(record, exc))
                continue
            requests.extend(decide(verdict))
        metrics.MESSAGES_IN.labels(SERVICE, VERDICTS.name).inc(len(records))

        already = await self.audit.recorded([r.action_id for r in requests])
        results: list[ActionResult] = []
        for request in requests:
            if request.action_id in already:
                # Done before (a restart, a redelivery, a repeat in this batch): never act twice.
                metrics.ERRORS.labels(SERVICE, "duplicate_verdict").inc()
                continue
            already.add(request.action_id)
            results.append(await self.executor.execute(request))
        await self.audit.record(results)

        pending: list[asyncio.Future[Any]] = []
        for result in results:
            pending.append(
                await self.producer.send(
                    self.actions_topic, result.to_json_bytes(), key=result.key.encode()
                )
            )
        for letter in dead:
            pending.append(
                await self.producer.send(
                    self.deadletter_topic, letter.to_json_bytes(), key=letter.source_topic.encode()
                )
            )
        await asyncio.gather(*pending)
        now = time.time()
        metrics.MESSAGES_OUT.labels(SERVICE, self.actions_topic).inc(len(results))
        metrics.DEAD_LETTERS.labels(SERVICE).inc(len(dead))
        if dead:
            metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(dead))
        metrics.PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        for result in results:
            metrics.END_TO_END_SECONDS.labels(SERVICE).observe(now - result.sent_at.timestamp())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
            records = [record for batch in batches.values() for record in batch]
            if not records:
                continue
            await self.handle(records)
            # After the side effects: a crash before this line replays the batch.
            await self.consumer.commit()


async def serve(settings: Settings, executor: Executor, stop: asyncio.Event) -> None:
    """Run one actioner until ``stop`` is set."""
    consumer = kafka_consumer(settings.kafka, group_id=group_id(settings.kafka, SERVICE))
    consumer.subscribe([VERDICTS.name_for(settings.kafka.topic_suffix)], listener=ReadyListener())
    producer = kafka_producer(settings.kafka)
    connection = await postgres_connection(settings.postgres)
    await producer.start()
    await consumer.start()
    try:
        actioner = Actioner(settings, executor, consumer, producer, AuditLog(connection))
        logger.info("actioner consuming %s", VERDICTS.name_for(settings.kafka.topic_suffix))
        await actioner.run(stop)
    finally:
        await consumer.stop()
        await producer.stop()
        await connection.close()

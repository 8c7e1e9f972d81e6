"""Publishing action results and dead letters: every record acknowledged by the broker, or tried
again until it is.

A broker that is away (restarting, unreachable) fails sends with retriable errors after
aiokafka's own retries; the records that failed are sent again, with exponential back-off and
full jitter, through a new producer (an idempotent producer that lost its batches can be left
refusing the next ones, ``OutOfOrderSequenceNumber``), for as long as it takes: the caller bounds
that by cancelling, on shutdown. A record the broker refuses for itself (too large, say) is
tried ``PERMANENT_TRIES`` times and then given up, logged and counted, rather than blocking
every result behind it.

Delivery is at-least-once: a send that timed out may still have reached the broker, and is sent
again. Consumers of ``moderation.actions.v1`` de-duplicate by ``action_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from core import metrics
from core.backoff import full_jitter

logger = logging.getLogger(__name__)

PERMANENT_TRIES = 3
# What the broker refuses for the record itself. Anything else (time-outs, connections, an
# idempotent producer's lost sequence, authorization) says the broker or the producer is not
# right yet, and is tried again however long it takes.
REFUSALS = (
    CorruptRecordException,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
STOP_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Outgoing:
    topic: str
    value: bytes
    key: bytes | None


class Publisher:
    def __init__(
        self,
        new_producer: Callable[[], AIOKafkaProducer],
        *,
        service: str,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._new_producer = new_producer
        self.service = service
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        # Told False when the broker stops taking records and True when it takes them again.
        self.on_change = on_change
        self.producer: AIOKafkaProducer | None = None
        self.available = True
        self._lost_at: float | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start a producer, trying again until the broker answers (cancel to give up)."""
        attempt = 0
        while True:
            async with self._lock:
                if self.producer is not None:
                    return
                try:
                    self.producer = await self._started()
                    self._back()
                    return
                except KafkaError as exc:
                    self._lost(exc)
            attempt += 1
            await asyncio.sleep(self._backoff(attempt))

    async def _started(self) -> AIOKafkaProducer:
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            await _stop(producer)
            raise
        return producer

    async def send_all(self, records: Sequence[Outgoing]) -> int:
        """Send ``records`` and wait until the broker has them all; return how many were given
        up as permanently refused (0 normally)."""
        left = list(records)
        refusals: dict[int, int] = {}
        given_up = 0
        attempt = 0
        while left:
            if self.producer is None:
                await self.start()
            producer = self.producer
            assert producer is not None
            failed: list[tuple[Outgoing, BaseException]] = []
            futures: list[tuple[Outgoing, asyncio.Future[Any]]] = []
            for index, record in enumerate(left):
                try:
                    futures.append(
                        (record, await producer.send(record.topic, record.value, key=record.key))
                    )
                except KafkaError as exc:
                    if not isinstance(exc, REFUSALS):
                        # The broker is away: each further send would wait as long again.
                        failed.extend((rest, exc) for rest in left[index:])
                        break
                    failed.append((record, exc))
            outcomes = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
            for (record, _), outcome in zip(futures, outcomes, strict=True):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, BaseException):
                    failed.append((record, outcome))
            if not failed:
                self._back()
                return given_up
            left = []
            for record, error in failed:
                if isinstance(error, REFUSALS):
                    tries = refusals[id(record)] = refusals.get(id(record), 0) + 1
                    if tries >= PERMANENT_TRIES:
                        logger.error(
                            "giving up a record for %s after %d refusals: %r",
                            record.topic,
                            tries,
                            error,
                        )
                        metrics.ERRORS.labels(self.service, "publish_refused").inc()
                        given_up += 1
                        continue
                elif not isinstance(error, KafkaError):
                    raise error
                left.append(record)
            if not left:
                return given_up
            self._lost(failed[0][1])
            attempt += 1
            await self._renew(producer)
            await asyncio.sleep(self._backoff(attempt))
        return given_up

    async def _renew(self, broken: AIOKafkaProducer) -> None:
        """Drop a producer whose sends failed; the next send starts a new one."""
        async with self._lock:
            if self.producer is broken:
                self.producer = None
        await _stop(broken)

    def _backoff(self, attempt: int) -> float:
        return full_jitter(attempt, self.backoff_base_s, self.backoff_max_s)

    def _lost(self, exc: BaseException) -> None:
        if self.available:
            # Once per outage; aiokafka logs its own connection errors.
            logger.warning("Kafka is not taking records (%r); sending again until it does", exc)
            self._lost_at = time.monotonic()
            self.available = False
            if self.on_change is not None:
                self.on_change(False)
        else:
            logger.debug("Kafka still not taking records: %r", exc)

    def _back(self) -> None:
        if not self.available:
            away = time.monotonic() - (self._lost_at or time.monotonic())
            logger.warning("Kafka takes records again after %.1f s", away)
            self.available = True
            if self.on_change is not None:
                self.on_change(True)

    async def stop(self) -> None:
        """Stop the producer, waiting at most ``STOP_TIMEOUT_S`` for what it still holds."""
        producer, self.producer = self.producer, None
        if producer is not None:
            await _stop(producer)


async def _stop(producer: AIOKafkaProducer) -> None:
    # stop() flushes; it would wait as long as the broker is away.
    try:
        await asyncio.wait_for(producer.stop(), timeout=STOP_TIMEOUT_S)
    except (KafkaError, TimeoutError) as exc:
        logger.debug("producer did not stop cleanly: %r", exc)

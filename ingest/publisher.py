"""The one publisher every adapter uses: ChatMessages onto ``chat.messages.v1``, keyed by user.

Delivery
--------
An idempotent aiokafka producer (acks=all, linger, compression from ``KafkaSettings``) with the
key ``platform:community:user``, so that one user's messages stay in order on one partition.
In front of it sits a bounded in-memory buffer: a message counts as *buffered* from the moment
an adapter hands it over until the broker acknowledges it. While the broker is unreachable the
buffer fills; once it holds ``buffer_max_bytes`` or ``buffer_max_messages``,
:meth:`Publisher.publish` waits for room (back-pressure for adapters that read a stream) and
:meth:`Publisher.offer` raises :class:`BufferFull` at once (the webhook turns it into 503 with
Retry-After). When the broker answers again everything buffered is delivered, in order per
partition; a clean shutdown waits ``shutdown_timeout_s`` for the buffer to drain.

A broker that restarts can forget (or fence) the idempotent producer: the batches it holds
then fail with ``OutOfOrderSequenceNumber``, ``UnknownProducerId``, ``InvalidProducerEpoch``
or ``ProducerFenced``, and so does every later batch of that producer on the same partition.
Nothing is wrong with those records, so the publisher *replaces the producer* (new producer id,
sequences from zero) and sends again everything it had handed to the old one and not seen
acknowledged, ahead of anything newer and in the order it was accepted, so one key's messages
keep their order (a message may arrive twice; consumers de-duplicate by ``message_id``). The
pump pauses while the producer is swapped, and consecutive swaps back off exponentially with
jitter. Only records the broker refuses whatever producer sends them (too large, not
authorised: :data:`REFUSED`) count as ``failed``; they are logged and counted in
``warden_ingest_failed_total{reason}`` and in each adapter's summary, never dropped silently.
Any other non-retriable error gets :data:`MAX_ATTEMPTS` producers before its record fails.

Events an adapter cannot turn into a ChatMessage lose nothing either: they go to the dead-letter
topic with the error (through the same buffer), so they can be inspected and replayed. Users who
opted out are dropped here, before anything is stored (:mod:`ingest.optout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidProducerEpoch,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownProducerId,
    UnsupportedForMessageFormatError,
)

from core import metrics
from core.clients import kafka_producer
from core.errors import TransientError
from core.net import reachable
from core.settings import IngestSettings, KafkaSettings
from ingest.optout import NoOptOut, OptOutFilter
from schemas.events import ChatMessage, DeadLetter, Feedback
from schemas.topics import CHAT_MESSAGES, DEADLETTER, FEEDBACK

logger = logging.getLogger(__name__)
SERVICE = "ingest"
# The broker no longer takes this producer's sequence numbers (it restarted, lost or fenced the
# producer id; or the producer closed): the records are fine, a new producer delivers them.
PRODUCER_STATE_ERRORS: tuple[type[KafkaError], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
    ProducerClosed,
)
# The broker refuses these records whatever producer sends them: they count as failed.
REFUSED: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    InvalidTopicError,
    CorruptRecordException,
    UnsupportedForMessageFormatError,
)
# Producers a record may go through when some other non-retriable error fails its batch, before
# it counts as failed (so that an unknown, persistent error cannot loop forever unseen).
MAX_ATTEMPTS = 5
# A replaced producer gets this long to settle its batches (acknowledged ones then count as
# published); after it, its batches are abandoned and resent by the next producer.
RETIRE_TIMEOUT_S = 10.0
# No acknowledgement for this long while messages wait: say so (then every STALL_REPEAT_S).
STALL_WARN_S = 5.0
STALL_REPEAT_S = 30.0


class BufferFull(TransientError):
    """The publisher's buffer is full (the broker is unreachable or slow); try again later."""

    def __init__(self, retry_after_s: int, buffered: int) -> None:
        super().__init__(f"ingest buffer full ({buffered} messages waiting for the broker)")
        self.retry_after_s = retry_after_s
        self.buffered = buffered


class Backoff:
    """Exponential back-off with equal jitter: half the delay fixed, half random."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.max_s)
        # Jitter so that many clients cut off by one broker restart do not return in lockstep.
        return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 (timing, not a secret)

    def reset(self) -> None:
        self._next = self.first_s


_sequence = itertools.count()


@dataclass(slots=True)
class _Record:
    topic: str
    key: bytes
    value: bytes
    chat: bool  # a chat message (counts as published) or a dead letter
    accepted: float  # perf_counter() when an adapter handed it over
    # Accept order: records resent after a producer swap go back in this order.
    seq: int = field(default_factory=lambda: next(_sequence))
    attempts: int = 0  # producers that failed it with an error of no known kind
    error: BaseException | None = None  # the last one

    @property
    def size(self) -> int:
        # Payload plus a rough per-record overhead, so that tiny messages still count.
        return len(self.value) + len(self.key) + 64


class Publisher:
    """A buffered, idempotent, batching producer for chat messages (an async context manager).

    ``published`` counts chat messages the broker acknowledged, ``rejected`` events sent to the
    dead-letter topic, ``dropped`` messages of opted-out users, ``failed`` records the broker
    refused for good (undeliverable), ``buffered`` what waits.

    ``producer_factory`` builds the replacement after a fatal producer error (default: one from
    ``kafka``); a ``producer`` given without a factory is stopped and started again instead.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        producer: AIOKafkaProducer | None = None,
        *,
        ingest: IngestSettings | None = None,
        adapter: str = "replay",
        opt_out: OptOutFilter | None = None,
        producer_factory: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self.kafka = kafka
        self.ingest = ingest or IngestSettings()
        self.adapter = adapter
        self.topic = CHAT_MESSAGES.name_for(kafka.topic_suffix)
        self.deadletter_topic = DEADLETTER.name_for(kafka.topic_suffix)
        self.feedback_topic = FEEDBACK.name_for(kafka.topic_suffix)
        self._factory = producer_factory
        self._own_producer = producer is None or producer_factory is not None
        self.producer = producer or self._new_producer()
        self.opt_out: OptOutFilter = opt_out or NoOptOut()
        self.published = 0
        self.rejected = 0
        self.dropped = 0
        self.failed = 0
        self.producer_restarts = 0
        self._queue: deque[_Record] = deque()
        # Handed to the current producer, not yet acknowledged (by seq, in accept order).
        self._in_flight: dict[int, _Record] = {}
        self._generation = 0  # which producer; results of a replaced one are ignored
        self._broken: BaseException | None = None  # why the current producer must be replaced
        self._swap_backoff = self._backoff()
        self._closing = False
        self._count = 0  # queued + in flight
        self._bytes = 0
        self._work = asyncio.Event()
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False
        self._pump_task: asyncio.Task[None] | None = None
        self._pump_error: BaseException | None = None
        self._unreachable_since: float | None = None
        self._last_progress = time.monotonic()
        self._watch_task: asyncio.Task[None] | None = None
        self._gauge = metrics.INGEST_BUFFERED.labels(adapter)
        self._gauge_bytes = metrics.INGEST_BUFFERED_BYTES.labels(adapter)
        self._received = metrics.INGEST_RECEIVED.labels(adapter)
        self._published_metric = metrics.INGEST_PUBLISHED.labels(adapter)
        self._latency = metrics.INGEST_PUBLISH_SECONDS.labels(adapter)
        self._failed_metric = metrics.INGEST_FAILED
        self._restarts_metric = metrics.INGEST_PRODUCER_RESTARTS
        metrics.INGEST_REJECTED.labels(adapter)  # at 0 from the start, for the alerts
        metrics.INGEST_BUFFER_MAX_MESSAGES.labels(adapter).set(self.ingest.buffer_max_messages)
        metrics.INGEST_BUFFER_MAX_BYTES.labels(adapter).set(self.ingest.buffer_max_bytes)

    # ----------------------------------------------------------------------------------------
    # Life cycle

    def _backoff(self) -> Backoff:
        return Backoff(self.ingest.reconnect_base_s, self.ingest.reconnect_max_s)

    def _new_producer(self) -> AIOKafkaProducer:
        if self._factory is not None:
            return self._factory()
        return kafka_producer(self.kafka, retry_backoff_ms=250)

    async def __aenter__(self) -> Publisher:
        await self.opt_out.start()
        try:
            await self.producer.start()
            self._started = True
        except KafkaConnectionError as exc:
            # Accept messages anyway: they wait in the buffer until the broker answers.
            logger.warning("broker unreachable at start-up (%s); buffering until it answers", exc)
            self._unreachable_since = time.monotonic()
            await self._discard_producer()
        self._pump_task = asyncio.create_task(self._pump(), name=f"publisher pump ({self.adapter})")
        self._pump_task.add_done_callback(self._pump_finished)
        self._watch_task = asyncio.create_task(self._watch(), name="publisher watchdog")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush (up to ``shutdown_timeout_s``), then stop the producer and the opt-out filter."""
        self._closing = True
        metrics.READY.labels(SERVICE).set(0)
        timeout = self.ingest.shutdown_timeout_s
        if self._pump_error is None and not await self.flush(within_s=timeout):
            logger.error(
                "%d messages were still buffered after %.0f s: the broker did not take them",
                self._count,
                timeout,
            )
        for task in (self._pump_task, self._watch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # stop() flushes aiokafka's own batches; it would wait forever for a broker that is gone.
        try:
            await asyncio.wait_for(self.producer.stop(), timeout=max(timeout, 1.0))
        except (TimeoutError, KafkaError) as exc:
            logger.warning("producer did not stop cleanly: %r", exc)
            await _abandon(self.producer)
        await self.opt_out.stop()

    async def _discard_producer(self) -> None:
        if not self._own_producer:
            return
        old, self.producer = self.producer, self._new_producer()
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(old.stop(), timeout=5)

    def _pump_finished(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        self._pump_error = task.exception()
        if self._pump_error is not None:
            logger.critical("publisher stopped delivering", exc_info=self._pump_error)
            self._space.set()
            self._idle.set()

    # ----------------------------------------------------------------------------------------
    # What adapters call

    @property
    def buffered(self) -> int:
        """Messages (and dead letters) accepted but not yet acknowledged by the broker."""
        return self._count

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def unavailable(self) -> str | None:
        """Why nothing more should be accepted now (None: accept).

        True when the publisher stopped or is shutting down, or when the broker has not
        answered for ``unavailable_after_s`` (what is accepted then would only wait in memory,
        and be lost with the process).
        """
        if self._pump_error is not None:
            return "the publisher stopped"
        if self._closing:
            return "shutting down"
        since = self._unreachable_since
        if since is not None:
            away = time.monotonic() - since
            if away > self.ingest.unavailable_after_s:
                return f"the broker has not answered for {away:.0f} s"
        return None

    def has_room(self, size: int = 0, count: int = 1) -> bool:
        """Whether ``count`` more records of ``size`` bytes in all fit in the buffer now."""
        if self._count == 0:
            return True  # a batch larger than the whole buffer still goes through alone
        return (
            self._count + count <= self.ingest.buffer_max_messages
            and self._bytes + size <= self.ingest.buffer_max_bytes
        )

    async def publish(self, message: ChatMessage) -> bool:
        """Hand one message over; waits while the buffer is full. False if dropped (opt-out).

        Returns once the message is buffered, not when acknowledged: :meth:`flush` waits for
        that.
        """
        self._received.inc()
        metrics.MESSAGES_IN.labels(SERVICE, self.adapter).inc()
        record = self._chat_record(message)
        if record is None:
            return False
        await self._wait_for_room(record.size)
        self._enqueue(record)
        return True

    def offer(
        self,
        messages: Sequence[ChatMessage],
        rejects: Iterable[tuple[bytes, Exception, str]] = (),
    ) -> int:
        """Take all of ``messages`` (and dead letters for ``rejects``) now, or none of them.

        Raises :class:`BufferFull` when they do not fit; returns how many messages were queued
        (opted-out users are dropped and not counted).
        """
        self._received.inc(len(messages))
        metrics.MESSAGES_IN.labels(SERVICE, self.adapter).inc(len(messages))
        records = [r for r in (self._chat_record(m, count_drop=False) for m in messages) if r]
        letters = [self._letter_record(raw, exc, source) for raw, exc, source in rejects]
        size = sum(r.size for r in records) + sum(r.size for r in letters)
        if self._pump_error is not None:
            raise TransientError("the publisher stopped") from self._pump_error
        if (records or letters) and not self.has_room(size, len(records) + len(letters)):
            raise BufferFull(self.ingest.retry_after_s, self._count)
        dropped = len(messages) - len(records)
        if dropped:
            self.dropped += dropped
            metrics.INGEST_DROPPED.labels(self.adapter, "opt_out").inc(dropped)
        for record in records:
            self._enqueue(record)
        for letter in letters:
            self._count_rejected(letter)
            self._enqueue(letter)
        return len(records)

    def offer_feedback(self, feedback: Feedback) -> None:
        """Take a dispute for ``moderation.feedback.v1`` (key: its message id) now, through the
        same buffer and delivery as chat; raises :class:`BufferFull` when it does not fit."""
        if self._pump_error is not None:
            raise TransientError("the publisher stopped") from self._pump_error
        record = _Record(
            topic=self.feedback_topic,
            key=feedback.message_id.encode(),
            value=feedback.to_json_bytes(),
            chat=False,
            accepted=time.perf_counter(),
        )
        if not self.has_room(record.size):
            raise BufferFull(self.ingest.retry_after_s, self._count)
        self._enqueue(record)

    async def reject(self, raw: bytes, error: Exception, source: str) -> None:
        """Send an event that failed validation to the dead-letter topic."""
        self._received.inc()
        record = self._letter_record(raw, error, source)
        await self._wait_for_room(record.size)
        self._count_rejected(record)
        self._enqueue(record)
        logger.warning("rejected an event from %s: %s", source, error)

    async def flush(self, within_s: float | None = None) -> bool:
        """Wait until the broker acknowledged everything buffered; False after ``within_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
        except TimeoutError:
            return False
        if self._pump_error is not None:
            raise TransientError("the publisher stopped") from self._pump_error
        return True

    # ----------------------------------------------------------------------------------------
    # The buffer

    def _chat_record(self, message: ChatMessage, count_drop: bool = True) -> _Record | None:
        if self.opt_out.excludes(message):
            if count_drop:
                self.dropped += 1
                metrics.INGEST_DROPPED.labels(self.adapter, "opt_out").inc()
            return None
        return _Record(
            topic=self.topic,
            key=message.key.encode(),
            value=message.to_json_bytes(),
            chat=True,
            accepted=time.perf_counter(),
        )

    def _letter_record(self, raw: bytes, error: Exception, source: str) -> _Record:
        letter = DeadLetter.from_error(error, raw, service=SERVICE, source_topic=source)
        return _Record(
            topic=self.deadletter_topic,
            key=source.encode(),
            value=letter.to_json_bytes(),
            chat=False,
            accepted=time.perf_counter(),
        )

    def _count_rejected(self, record: _Record) -> None:
        self.rejected += 1
        metrics.DEAD_LETTERS.labels(SERVICE).inc()
        metrics.INGEST_REJECTED.labels(self.adapter).inc()

    async def _wait_for_room(self, size: int) -> None:
        while not self.has_room(size):
            if self._pump_error is not None:
                raise TransientError("the publisher stopped") from self._pump_error
            self._space.clear()
            await self._space.wait()

    def _enqueue(self, record: _Record) -> None:
        if self._count == 0:
            self._last_progress = time.monotonic()
        self._queue.append(record)
        self._count += 1
        self._bytes += record.size
        self._idle.clear()
        self._work.set()
        self._update_gauges()

    def _release(self, record: _Record) -> None:
        self._count -= 1
        self._bytes -= record.size
        self._space.set()
        if self._count == 0:
            self._idle.set()
        self._update_gauges()

    def _update_gauges(self) -> None:
        self._gauge.set(self._count)
        self._gauge_bytes.set(self._bytes)

    # ----------------------------------------------------------------------------------------
    # Delivery

    async def _pump(self) -> None:
        """Move buffered records into the producer, one by one, for as long as it runs.

        Records leave the queue in accept order and stay in ``_in_flight`` until acknowledged;
        when the producer breaks they go back to the front of the queue in that same order.
        """
        backoff = self._backoff()
        while True:
            if self._broken is not None:
                await self._replace_producer()
                continue
            if not self._started:
                # Also with nothing queued, so that readiness (unavailable()) comes back.
                await self._start_producer()
                continue
            if not self._queue:
                self._work.clear()
                await self._work.wait()
                continue
            record = self._queue.popleft()
            generation = self._generation
            try:
                # Returns once the record is in aiokafka's batch; waits while that is full.
                future = await self.producer.send(record.topic, record.value, key=record.key)
            except REFUSED as exc:
                # Refused before it got a sequence number (over max_request_size).
                self._fail(record, exc)
                continue
            except KafkaError as exc:
                self._queue.appendleft(record)
                if isinstance(exc, KafkaTimeoutError | KafkaConnectionError) or exc.retriable:
                    self._note_unreachable(exc)
                    await asyncio.sleep(backoff.next())
                else:
                    # The producer is dead (its sender failed; send() re-raises that error).
                    self._break(exc)
                continue
            backoff.reset()
            self._in_flight[record.seq] = record
            future.add_done_callback(
                lambda done, record=record, generation=generation: self._delivered(
                    record, generation, done
                )
            )

    def _break(self, exc: BaseException) -> None:
        """Have the pump replace the producer before it sends anything more."""
        if self._broken is None:
            self._broken = exc
            self._work.set()

    async def _replace_producer(self) -> None:
        """Swap a producer the broker no longer accepts, and queue again what it did not deliver.

        The old producer first gets ``RETIRE_TIMEOUT_S`` to settle its batches (an acknowledged
        record counts as published, a refused one as failed); everything else it held goes
        back to the front of the queue in accept order, ahead of newer records, so that the new
        producer (new producer id, sequences from zero) sends each partition's records in their
        original order.
        """
        cause = self._broken
        reason = type(cause).__name__
        self.producer_restarts += 1
        self._restarts_metric.labels(self.adapter, reason).inc()
        logger.warning(
            "producer failed (%r); replacing it and resending %d unacknowledged records",
            cause,
            len(self._in_flight),
        )
        old = self.producer
        self._started = False
        await self._retire(old)
        self._generation += 1  # from here on the old producer's results are ignored
        resend: list[_Record] = []
        for record in sorted(self._in_flight.values(), key=lambda r: r.seq):
            if record.attempts >= MAX_ATTEMPTS:
                self._fail(record, record.error or KafkaError("undeliverable"))
            else:
                resend.append(record)
        self._in_flight.clear()
        self._queue.extendleft(reversed(resend))
        self._broken = None
        self.producer = self._new_producer() if self._own_producer else old
        self._work.set()
        await asyncio.sleep(self._swap_backoff.next())

    async def _retire(self, old: AIOKafkaProducer) -> None:
        try:
            # stop() flushes: batches still in the old producer are delivered or refused now.
            await asyncio.wait_for(old.stop(), timeout=RETIRE_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            logger.warning("the replaced producer did not stop cleanly (%r); abandoning it", exc)
            await _abandon(old)

    async def _start_producer(self) -> None:
        backoff = self._backoff()
        while not self._started:
            try:
                await self.producer.start()
            except KafkaError as exc:
                # Unreachable, or reachable but not ready (no producer id yet): try again.
                self._note_unreachable(exc)
                await self._discard_producer()
                await asyncio.sleep(backoff.next())
            else:
                self._started = True
                if self._unreachable_since is not None:
                    self._unreachable_since = None
                    logger.info("broker reachable; delivering %d buffered messages", self._count)

    def _note_unreachable(self, exc: BaseException) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            logger.warning(
                "broker unreachable (%r); buffering (%d messages so far)", exc, self._count
            )

    async def _watch(self) -> None:
        """Say when messages wait without any acknowledgement (aiokafka retries silently), and
        publish readiness: ``warden_ready{service="ingest"}`` is 1 while the broker answers
        (a TCP probe, since an idle adapter sends nothing that could fail) and nothing stands
        in the way of delivery."""
        last_warning = 0.0
        while True:
            await asyncio.sleep(1.0)
            await self._publish_readiness()
            now = time.monotonic()
            stalled = now - self._last_progress
            if self._count and stalled > STALL_WARN_S and now - last_warning > STALL_REPEAT_S:
                last_warning = now
                if self._unreachable_since is None:
                    self._unreachable_since = self._last_progress
                logger.warning(
                    "no acknowledgement from the broker for %.0f s; %d messages (%d bytes) "
                    "buffered, limit %d messages / %d bytes",
                    stalled,
                    self._count,
                    self._bytes,
                    self.ingest.buffer_max_messages,
                    self.ingest.buffer_max_bytes,
                )

    async def _publish_readiness(self) -> None:
        broker = await reachable(self.kafka.bootstrap_list)
        metrics.DEPENDENCY_UP.labels(SERVICE, "kafka").set(1 if broker else 0)
        ready = broker and self._unreachable_since is None and self.unavailable() is None
        metrics.READY.labels(SERVICE).set(1 if ready else 0)

    def _delivered(self, record: _Record, generation: int, future: asyncio.Future[Any]) -> None:
        if generation != self._generation:
            return  # its producer was replaced: the record was queued again (or counted)
        exc = None if future.cancelled() else future.exception()
        if exc is not None or future.cancelled():
            if isinstance(exc, REFUSED):
                del self._in_flight[record.seq]
                self._fail(record, exc)
            elif exc is not None and not _resendable(exc):
                record.attempts += 1
                record.error = exc
            # Any failed batch leaves a gap in the producer's sequence numbers for its
            # partition: every later batch there would be refused too. A new producer resends
            # this record (it stays in _in_flight) and everything after it, in order.
            self._break(exc or KafkaError("delivery future cancelled"))
            return
        del self._in_flight[record.seq]
        self._last_progress = time.monotonic()
        self._swap_backoff.reset()
        if self._unreachable_since is not None:
            logger.info(
                "broker reachable again after %.1f s; delivering %d buffered messages",
                self._last_progress - self._unreachable_since,
                self._count,
            )
            self._unreachable_since = None
        if record.chat:
            self.published += 1
            self._published_metric.inc()
            metrics.MESSAGES_OUT.labels(SERVICE, record.topic).inc()
            self._latency.observe(time.perf_counter() - record.accepted)
        self._release(record)

    def _fail(self, record: _Record, exc: BaseException) -> None:
        """A record the broker refuses for good (too large, not authorised): count and log it."""
        self.failed += 1
        reason = type(exc).__name__
        self._failed_metric.labels(self.adapter, reason).inc()
        metrics.ERRORS.labels(SERVICE, reason).inc()
        logger.error(
            "undeliverable: the broker refused a record for %s (%d bytes): %r",
            record.topic,
            len(record.value),
            exc,
        )
        self._release(record)


def _resendable(exc: BaseException) -> bool:
    """Errors a new producer cures for certain: producer state, or retriable ones."""
    return isinstance(exc, PRODUCER_STATE_ERRORS) or (isinstance(exc, KafkaError) and exc.retriable)


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Stop a producer whose stop() hangs (it retries idempotent batches for ever).

    Its batches are sent again by the next producer; left running, it could still deliver
    them later, after newer records. aiokafka has no public call for this, hence the getattr.
    """
    sender_task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if isinstance(sender_task, asyncio.Task) and not sender_task.done():
        sender_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError, TimeoutError):
            await asyncio.wait_for(sender_task, timeout=RETIRE_TIMEOUT_S)
    client = getattr(producer, "client", None)
    if client is not None:
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(client.close(), timeout=RETIRE_TIMEOUT_S)

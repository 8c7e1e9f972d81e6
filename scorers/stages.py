"""The scorer's three stages, so that the encoder never waits for Redis or the broker.

    take (faust) ──► text:    decode · the encoder and text features (worker thread)
                        │
                        ▼     while batch N+1 is in the encoder, batch N is scored
                     score:   Redis read · booster and verdicts · Redis update
                        │
                        ▼     while batch N is delivered, batch N+1 is scored
                     deliver: stream detectors · verdicts, raid events and dead letters sent
                              · delivery awaited · events acked

The text stage needs nothing of a message but its text, so it runs a batch ahead: the booster,
the context read and update of one batch no longer leave the encoder idle. Batches pass the
stages in the order they were taken. Events are acknowledged in that order,
and only once their verdicts (or dead letters) are on the broker: a crash replays a batch and
never loses one.

No single record can stop the stream (a record refused forever used to crash the worker at the
same offset on every restart). A record the broker refuses for itself (too large, corrupt) or
that cannot be serialised is replaced by a small dead letter that says why, and the batch goes
on; if even that minimal letter is refused, the fault is not the record's and the worker stops.
A send that fails because the broker is away (time-out, connection, retriable errors) is sent
again, with growing pauses, for as long as it takes: nothing is dropped and nothing acknowledged
meanwhile. Batch N's counters are in Redis before batch N+1 reads them, as when one batch
ran at a time; a crash between that update and the delivery replays the batch, and the counters
(offset marks per partition) and the detectors' windows (event-time sets keyed by message id)
count nothing twice. A raid event goes out with its batch's verdicts, before the acknowledgement;
a replayed batch whose raid event was not marked delivered publishes it again, same ``raid_id``.
The queues between the stages hold one batch each, so a slow broker holds the consumer back
instead of filling memory.

Nothing here knows faust: ``scorers.app`` hands in how to send a record and how to acknowledge
a batch's events.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar, cast

from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from pydantic_core import PydanticSerializationError
from redis.exceptions import RedisError

from core import metrics
from schemas.events import ChatMessage, DeadLetter, RaidEvent, Verdict
from scorers.batch import SERVICE, BatchScorer, RawEvent, TextPart, outcome
from scorers.cache import Row
from scorers.context_store import ContextReader, Position
from scorers.detectors import StreamDetectors
from scorers.stream_state import RaidSeen

logger = logging.getLogger(__name__)

T = TypeVar("T")
# (topic, key, value) -> a future that resolves once the broker has the record
Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]
# Records -> for each, a future that resolves once the broker has it, or the error that stopped
# it from being sent (records going to one partition share a Kafka record batch and its future)
SendMany = Callable[[Sequence["Outgoing"]], Awaitable[list[Awaitable[Any] | Exception]]]

# The broker refuses these for the record itself: sending it again can never succeed.
RECORD_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
)
# Between attempts to send records while the broker is away (seconds, doubled, with jitter).
RETRY_BACKOFF_S = (0.2, 5.0)
# A broker away this long gets one warning, then one per this period (not one per record).
RETRY_WARN_EVERY_S = 30.0
# A record whose delivery report has not come this long after it was handed to the producer is
# sent again (the producer's own request timeout is shorter: this catches a report that never
# comes). Consumers drop the duplicate by ``message_id`` should the first one land after all.
DELIVERY_DEADLINE_S = 90.0


def kafka_cause(exc: BaseException) -> BaseException:
    """The KafkaError behind ``exc`` (faust wraps aiokafka's errors), or ``exc`` itself."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaError):
            return seen
        seen = seen.__cause__
    return exc


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # read, so that asyncio does not log it as never retrieved


def position(source: RawEvent) -> Position | None:
    """Where a record was consumed from (None when the transport does not say)."""
    if source.partition is None or source.offset is None:
        return None
    return Position(source.topic, source.partition, source.offset)


def is_record_error(exc: BaseException) -> bool:
    return isinstance(kafka_cause(exc), RECORD_ERRORS)


def is_transient(exc: BaseException) -> bool:
    """The broker is away or busy: sending the same record later can succeed."""
    cause = kafka_cause(exc)
    if isinstance(cause, KafkaError):
        return cause.retriable or isinstance(cause, KafkaTimeoutError)
    return isinstance(cause, (OSError, TimeoutError))


@dataclass
class Outgoing:
    """One record to deliver, and what replaces it if the broker refuses it for itself."""

    topic: str
    key: bytes
    value: bytes
    verdict: Verdict | None = None
    source: RawEvent | None = None  # the consumed record a verdict was made from
    letter: DeadLetter | None = None
    raid: RaidEvent | None = None
    minimal: bool = False  # already the smallest dead letter: refusing it is not the record's fault
    # Sent in a record batch of its own: its shared batch was refused for some record in it,
    # and only the record at fault may become a dead letter.
    alone: bool = False


class StageClock:
    """CPU time per stage of the scorer, for ``warden_scorer_stage_seconds_total{stage}``.

    Event-loop stages are timed with this thread's CPU clock from event to event: a stage
    entered or left, and a timed stage suspending or resuming at an await wrapped in
    :meth:`wait` (the Redis round trips). Between two events the time goes to the stage that
    is running, or to none while a stage waits; so nothing is counted twice while the score and
    deliver tasks interleave, and what no stage times (faust's per-event path, the clients'
    I/O, asyncio) is the event-loop total less the stages: ``warden bench`` shows it as
    ``consume``. Sums go to the counter once per batch; the clock costs about 1 us per event.
    """

    def __init__(self) -> None:
        self._ns: dict[str, int] = {}
        self._last = time.thread_time_ns()
        self._running: str | None = None
        self._open: dict[object, list[str]] = {}

    def section(self, stage: str) -> _Section:
        return _Section(self, stage)

    def _tick(self) -> None:
        now = time.thread_time_ns()
        if self._running is not None:
            self._ns[self._running] = self._ns.get(self._running, 0) + now - self._last
        self._last = now

    def _enter(self, stage: str) -> None:
        self._tick()
        self._open.setdefault(asyncio.current_task(), []).append(stage)
        self._running = stage

    def _exit(self) -> None:
        self._tick()
        task = asyncio.current_task()
        stack = self._open.get(task)
        if stack:
            stack.pop()
            if not stack:
                del self._open[task]
        self._running = stack[-1] if stack else None

    def wait(self, awaitable: Awaitable[T]) -> Awaitable[T]:
        """``awaitable``, with the running stage paused while it waits (inside a section)."""
        return _Paused(self, awaitable)

    def _suspend(self) -> None:
        self._tick()
        self._running = None

    def _resume(self) -> None:
        self._tick()
        stack = self._open.get(asyncio.current_task())
        self._running = stack[-1] if stack else None

    def add(self, stage: str, ns: int) -> None:
        """Time measured elsewhere (the model thread's stages)."""
        self._ns[stage] = self._ns.get(stage, 0) + ns

    def flush(self) -> None:
        global _gc_ns
        if _gc_ns:
            # Already inside the stages that triggered the collections: shown, not added.
            self._ns["gc"] = self._ns.get("gc", 0) + _gc_ns
            _gc_ns = 0
        for stage, ns in self._ns.items():
            metrics.SCORER_STAGE_SECONDS.labels(stage).inc(ns / 1e9)
        self._ns.clear()

    @staticmethod
    def watch_gc() -> None:
        """Time Python's garbage collections too (once per process): stage ``gc``."""
        if _gc_timer not in gc.callbacks:
            gc.callbacks.append(_gc_timer)


_gc_ns = 0
_gc_started = threading.local()


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    global _gc_ns
    if phase == "start":
        _gc_started.ns = time.thread_time_ns()
    else:
        _gc_ns += time.thread_time_ns() - getattr(_gc_started, "ns", time.thread_time_ns())


class _Section:
    __slots__ = ("clock", "stage")

    def __init__(self, clock: StageClock, stage: str) -> None:
        self.clock, self.stage = clock, stage

    def __enter__(self) -> None:
        self.clock._enter(self.stage)

    def __exit__(self, *exc: object) -> None:
        self.clock._exit()


class _Paused(Generic[T]):
    """An awaitable that tells its clock when it suspends and when it resumes."""

    __slots__ = ("awaitable", "clock")

    def __init__(self, clock: StageClock, awaitable: Awaitable[T]) -> None:
        self.clock, self.awaitable = clock, awaitable

    def __await__(self) -> Generator[Any, Any, T]:
        inner = self.awaitable.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = inner.send(value) if error is None else inner.throw(error)
            except StopIteration as done:
                return cast(T, done.value)
            self.clock._suspend()
            try:
                value, error = (yield step), None
            except BaseException as exc:  # noqa: BLE001 - a cancellation goes on inside
                value, error = None, exc
            self.clock._resume()


# The event loop's stage for a batch whose texts are all cached, scored on the loop itself;
# its CPU is the model's (``warden bench`` adds it to the model thread's).
INLINE_MODEL = "model_inline"


def timed_text(
    scorer: BatchScorer, messages: Sequence[ChatMessage], found: dict[str, Row]
) -> tuple[TextPart, int]:
    """``scorer.text_side`` in the model thread, with that thread's CPU time for it."""
    started = time.thread_time_ns()
    text = scorer.text_side(messages, found)
    return text, time.thread_time_ns() - started


class RowCache(Protocol):
    """Text-side rows shared between workers (``scorers.app.SharedCache``)."""

    async def get(self, keys: Sequence[str]) -> dict[str, Row]: ...

    async def put(self, rows: dict[str, Row]) -> None: ...


@dataclass
class Pending:
    """A batch between the text and score stages."""

    events: Sequence[Any]
    started: float
    scorer: BatchScorer  # one model for the whole batch, even if a promotion swaps it
    shared: RowCache | None
    messages: list[ChatMessage]
    sources: list[RawEvent]
    dead: list[DeadLetter]
    # The text part: done (all texts cached: computed on the event loop by the score stage),
    # or on its way from the model thread.
    text: Awaitable[tuple[TextPart, int]] | None
    found: dict[str, Row]


@dataclass
class Delivery:
    """A batch between the stages: what to deliver, and the events to acknowledge after."""

    events: Sequence[Any]
    started: float
    verdicts: list[Verdict]
    sources: list[RawEvent]  # the consumed record of each verdict, in the same order
    dead: list[DeadLetter]
    computed: dict[str, Row]
    raids: list[RaidSeen] = field(default_factory=list)
    # The shared cache of the model that computed ``computed`` (a swap may come in between).
    shared: RowCache | None = None
    # The decoded messages, when the deliver stage still has to run the detectors on them.
    messages: Sequence[ChatMessage] = ()


class Stages:
    """Runs the text, score and deliver stages as three tasks fed by :meth:`put`."""

    def __init__(
        self,
        scorer: BatchScorer,
        contexts: ContextReader,
        executor: Executor,
        *,
        send: Send,
        ack: Callable[[Sequence[Any]], Awaitable[None]],
        send_many: SendMany | None = None,
        verdicts_topic: str,
        dead_letter_topic: str,
        source_topic: str,
        on_failure: Callable[[BaseException], Awaitable[None]],
        shared: RowCache | None = None,
        detectors: StreamDetectors | None = None,
        raids_topic: str | None = None,
        outcomes: bool = True,
        delivery_deadline_s: float = DELIVERY_DEADLINE_S,
    ) -> None:
        self.scorer = scorer
        self.contexts = contexts
        self.executor = executor
        self.send = send
        # One Kafka record batch per partition for a whole delivery (a record at a time through
        # ``send`` costs more per verdict than scoring a cached text); a record that must go
        # alone goes through it too, in a batch of its own (``_send_one``). Without it, every
        # record goes through ``send``.
        self.send_many = send_many
        self.ack = ack
        self.verdicts_topic = verdicts_topic
        self.dead_letter_topic = dead_letter_topic
        self.source_topic = source_topic
        self.on_failure = on_failure
        self.shared = shared
        self.detectors = detectors
        self.raids_topic = raids_topic
        # Count delivered verdicts in the outcome metrics (not a shadow's: never actioned).
        self.outcomes = outcomes
        self.delivery_deadline_s = delivery_deadline_s
        self.failure: BaseException | None = None
        self.clock = StageClock()
        self._to_score: asyncio.Queue[tuple[Sequence[Any], list[RawEvent]]] = asyncio.Queue(1)
        self._waiting = False  # the text stage waits for its next batch
        self._score_waiting = False  # and the score stage for its next
        self._to_combine: asyncio.Queue[Pending] = asyncio.Queue(1)
        self._to_deliver: asyncio.Queue[Delivery] = asyncio.Queue(1)
        self._tasks: list[asyncio.Task[None]] = []

    def swap(self, scorer: BatchScorer, shared: RowCache | None) -> None:
        """Score the next batch with another model (a promotion): the batch in the model keeps
        the one it started with, and every verdict names the model that decided it."""
        self.scorer, self.shared = scorer, shared

    def start(self) -> None:
        metrics.export_thread_cpu()
        self.clock.watch_gc()
        self._tasks = [
            asyncio.create_task(self._guard(self._text_loop()), name="scorer-text"),
            asyncio.create_task(self._guard(self._score_loop()), name="scorer-score"),
            asyncio.create_task(self._guard(self._deliver_loop()), name="scorer-deliver"),
        ]

    async def stop(self) -> None:
        """Stop both stages; batches not yet acknowledged are consumed again after a restart."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def put(self, events: Sequence[Any], raw: list[RawEvent]) -> None:
        """Queue a taken batch; waits while the stages are busy. Raises a stage's failure."""
        if self.failure is not None:
            raise self.failure
        await self._to_score.put((events, raw))

    async def _guard(self, loop: Awaitable[None]) -> None:
        try:
            await loop
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Nothing past the failed batch is acknowledged: the worker stops, and its
            # replacement (or this one, restarted) consumes from the last committed offset.
            logger.exception("scorer stage failed; stopping the worker")
            self.failure = exc
            await self.on_failure(exc)

    @property
    def idle(self) -> bool:
        """The text and score stages wait for a batch and none is queued: one put now is scored
        at once. (While the score stage is busy, a batch taken now would wait anyway: the time
        lets it grow, and a small batch pays the round trips to Redis and the broker as a large
        one does.)"""
        return (
            self._waiting
            and self._score_waiting
            and self._to_score.empty()
            and self._to_combine.empty()
        )

    async def _text_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._waiting = True
            try:
                events, raw = await self._to_score.get()
            finally:
                self._waiting = False
            # One model for the whole batch, even if a promotion swaps it meanwhile.
            scorer, shared = self.scorer, self.shared
            started = time.perf_counter()
            clock = self.clock
            with clock.section("metrics"):
                metrics.MESSAGES_IN.labels(SERVICE, self.source_topic).inc(len(raw))
                metrics.BATCH_SIZE.labels(SERVICE).observe(len(raw))
            with clock.section("decode"):
                messages, sources, dead = scorer.decode(raw)
            cache = scorer.cache
            texts = [m.text for m in messages]
            # Only a shared cache needs the list of this worker's misses.
            missing = cache.missing(texts) if cache is not None and shared is not None else None
            with clock.section("shared_cache"):
                found = await clock.wait(self._shared_rows(shared, missing))
            # Every text cached: what is left (lookups, stacking) is quick and holds the GIL,
            # so the model thread would only add a hand-off between threads. The rows are
            # taken now: the model thread may evict some before the score stage gets to them.
            held = cache.held(texts, found) if cache is not None else None
            text = (
                None
                if held is not None
                else loop.run_in_executor(self.executor, timed_text, scorer, messages, found)
            )
            found = found if held is None else held
            if self.detectors is not None:
                # Per-text work while the model thread runs (the encoder releases the GIL).
                with clock.section("detectors"):
                    self.detectors.prepare(messages)
            await self._to_combine.put(
                Pending(events, started, scorer, shared, messages, sources, dead, text, found)
            )

    async def _score_loop(self) -> None:
        while True:
            self._score_waiting = True
            try:
                batch = await self._to_combine.get()
            finally:
                self._score_waiting = False
            clock, messages, scorer = self.clock, batch.messages, batch.scorer
            with clock.section("redis"):
                context, degraded = await clock.wait(self.contexts.read(messages))
            if degraded:
                metrics.DEGRADED.labels(SERVICE).inc(len(messages))
            model_started = time.perf_counter()
            if batch.text is None:
                with clock.section(INLINE_MODEL):
                    text = scorer.text_side(messages, batch.found)
            else:
                text, model_ns = await batch.text
                clock.add("model_thread", model_ns)
            versions = None
            if self.detectors is not None:
                with clock.section("detectors"):
                    versions = await clock.wait(self.detectors.versions(messages))
            # The booster and verdicts here, not in the model thread: it is already on the next
            # batch's texts.
            with clock.section(INLINE_MODEL):
                scored = scorer.finish(messages, text, context, degraded, versions)
            metrics.MODEL_SECONDS.labels(SERVICE).observe(time.perf_counter() - model_started)
            for stage, ns in scored.costs.items():
                clock.add(stage, ns)
            with clock.section("redis"):
                # The counters keep the model's outcome: they are the model's own features.
                outcomes = [outcome(v) for v in scored.verdicts]
                await clock.wait(
                    self.contexts.update(messages, outcomes, [position(s) for s in batch.sources])
                )
            await self._to_deliver.put(
                Delivery(
                    batch.events,
                    batch.started,
                    scored.verdicts,
                    batch.sources,
                    batch.dead,
                    scored.computed,
                    messages=messages if self.detectors is not None else [],
                    shared=batch.shared,
                )
            )

    async def _deliver_loop(self) -> None:
        while True:
            batch = await self._to_deliver.get()
            clock = self.clock
            if self.detectors is not None and batch.messages:
                # Here rather than in the score stage: the detectors' Redis round trip and
                # labelling overlap the next batch's model run. Batches reach this stage in the
                # order they were taken, so each batch's windows still see the ones before it,
                # and all of it happens before the batch is acknowledged.
                with clock.section("detectors"):
                    detected = await clock.wait(self.detectors.run(batch.messages, batch.verdicts))
                batch.verdicts, batch.raids = detected.verdicts, detected.raids
            with clock.section("encode"):
                outgoing = self._outgoing(batch)
            delivered = await self._deliver(outgoing)
            done = time.time()
            if batch.raids and self.detectors is not None:
                await self.detectors.published(batch.raids)
                metrics.RAIDS.labels(SERVICE).inc(len(batch.raids))
            with clock.section("ack"):
                await self.ack(batch.events)
            with clock.section("shared_cache"):
                await clock.wait(self._share(batch.shared, batch.computed))
            with clock.section("metrics"):
                refused = len(batch.verdicts) - delivered
                metrics.MESSAGES_OUT.labels(SERVICE, self.verdicts_topic).inc(delivered)
                if batch.dead or refused:
                    metrics.DEAD_LETTERS.labels(SERVICE).inc(len(batch.dead) + refused)
                if batch.dead:
                    metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(batch.dead))
                metrics.PROCESSING_SECONDS.labels(SERVICE).observe(
                    time.perf_counter() - batch.started
                )
                end_to_end = metrics.END_TO_END_SECONDS.labels(SERVICE)
                for verdict in batch.verdicts:
                    end_to_end.observe(done - verdict.sent_at.timestamp())
            clock.flush()

    def _outgoing(self, batch: Delivery) -> list[Outgoing]:
        records: list[Outgoing] = []
        for verdict, source in zip(batch.verdicts, batch.sources, strict=True):
            try:
                value = verdict.to_json_bytes()
            except (PydanticSerializationError, ValueError) as exc:
                records.append(self._letter_for(verdict, source, exc))
                continue
            records.append(
                Outgoing(self.verdicts_topic, verdict.key.encode(), value, verdict, source)
            )
        if self.raids_topic is not None:
            for raid in batch.raids:
                if raid.event is not None:
                    value = raid.event.to_json_bytes()
                    key = raid.event.key.encode()
                    records.append(Outgoing(self.raids_topic, key, value, raid=raid.event))
        records += [self._letter(letter) for letter in batch.dead]
        return records

    def _letter(self, letter: DeadLetter, *, minimal: bool = False) -> Outgoing:
        key = letter.source_topic.encode()
        return Outgoing(
            self.dead_letter_topic, key, letter.to_json_bytes(), letter=letter, minimal=minimal
        )

    def _letter_for(self, verdict: Verdict, source: RawEvent, exc: BaseException) -> Outgoing:
        """The dead letter that replaces a verdict the broker refused or that did not serialise."""
        cause = kafka_cause(exc)
        logger.warning(
            "verdict for %s[%s]@%s refused (%s); sending a dead letter instead",
            source.topic,
            source.partition,
            source.offset,
            type(cause).__name__,
        )
        metrics.ERRORS.labels(SERVICE, "undeliverable").inc()
        letter = DeadLetter.from_record(
            f"verdict for message {verdict.message_id!r} not delivered: {cause}",
            source,
            service=SERVICE,
            error_type=type(cause).__name__,
        )
        return self._letter(letter)

    def _replacement(self, record: Outgoing, exc: BaseException) -> Outgoing:
        """What to send instead of a record the broker refused for itself."""
        if record.verdict is not None and record.source is not None:
            return self._letter_for(record.verdict, record.source, exc)
        if record.raid is not None:
            cause = kafka_cause(exc)
            logger.warning("raid event %s refused (%s)", record.raid.raid_id, cause)
            letter = DeadLetter.from_error(
                f"raid event {record.raid.raid_id!r} not delivered: {cause}",
                record.value,
                service=SERVICE,
                source_topic=record.topic,
                error_type=type(cause).__name__,
            )
            return self._letter(letter)
        if record.letter is None or record.minimal:
            raise exc  # even the smallest letter refused: a broker or topic fault, not the record
        cause = kafka_cause(exc)
        logger.warning("dead letter refused (%s); sending it without its payload", cause)
        # Size and hash stay, so the payload can still be found at its partition and offset.
        letter = record.letter.model_copy(
            update={
                "raw": "",
                "raw_truncated": True,
                "error": f"{record.letter.error[:1000]} (dead letter refused: {cause})"[:2000],
            }
        )
        return self._letter(letter, minimal=True)

    async def _deliver(self, records: list[Outgoing]) -> int:
        """Send ``records`` until the broker has each of them or its replacement.

        Returns how many verdicts the broker has. Raises when a record cannot be delivered for a
        reason that is neither the record's own nor transient. A record sent again may land after
        later records of its batch; consumers de-duplicate by ``message_id`` and the batch is
        acknowledged only once all of them are on the broker.
        """
        delivered = 0
        pause = RETRY_BACKOFF_S[0]
        away_since: float | None = None
        warned_at = 0.0
        todo = records
        while todo:
            again: list[Outgoing] = []
            with self.clock.section("produce"):
                sent, transient = await self._send(todo, again)
            results = await self._reports([f for _, f in sent])
            with self.clock.section("metrics"):
                landed: list[Verdict] = []
                for (record, _), result in zip(sent, results, strict=True):
                    if isinstance(result, asyncio.CancelledError):
                        # The record's future, not this task, was cancelled (a producer that
                        # is being replaced or closed): send it again; a closed one will say so.
                        again.append(record)
                        transient = transient or TimeoutError("delivery cancelled")
                    elif isinstance(result, Exception):
                        transient = self._sort(record, result, again) or transient
                    elif record.verdict is not None:
                        landed.append(record.verdict)
                delivered += len(landed)
                if self.outcomes:
                    metrics.observe_verdicts(landed)
            todo = again
            if transient is None:
                continue
            now = time.monotonic()
            away_since = away_since or now
            if now - warned_at >= RETRY_WARN_EVERY_S:
                warned_at = now
                logger.warning(
                    "broker did not take %d record(s) for %.0f s (%s); sending again",
                    len(todo),
                    now - away_since,
                    kafka_cause(transient),
                )
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            pause = min(pause * 2, RETRY_BACKOFF_S[1])
        return delivered

    async def _reports(self, futures: list[Awaitable[Any]]) -> list[Any]:
        """Each delivery future's result or exception, once all have one or the deadline has
        passed: then those without one get a :class:`TimeoutError` (sent again, as for a broker
        away). A future given up on is left to finish on its own, its outcome unread."""
        if not futures:
            return []
        waiting = [asyncio.ensure_future(f) for f in futures]
        _, late = await asyncio.wait(set(waiting), timeout=self.delivery_deadline_s)
        overdue = TimeoutError(f"no delivery report in {self.delivery_deadline_s:g} s")
        for future in late:
            future.add_done_callback(_ignore_outcome)
        return [
            overdue
            if f in late
            else asyncio.CancelledError()
            if f.cancelled()
            else f.exception() or f.result()
            for f in waiting
        ]

    async def _send(
        self, records: list[Outgoing], again: list[Outgoing]
    ) -> tuple[list[tuple[Outgoing, Awaitable[Any]]], BaseException | None]:
        """Hand ``records`` to the producer: each with its delivery future, or filed under
        ``again`` by :meth:`_sort`; also the last transient error met, if any."""
        sent: list[tuple[Outgoing, Awaitable[Any]]] = []
        transient: BaseException | None = None
        together = [r for r in records if not r.alone] if self.send_many is not None else []
        if together:
            assert self.send_many is not None
            results = await self.send_many(together)
            for record, result in zip(together, results, strict=True):
                if isinstance(result, Exception):
                    transient = self._sort(record, result, again) or transient
                else:
                    sent.append((record, result))
        for record in records:
            if together and not record.alone:
                continue
            try:
                sent.append((record, await self._send_one(record)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - per record; _sort re-raises
                transient = self._sort(record, exc, again) or transient
        return sent, transient

    async def _send_one(self, record: Outgoing) -> Awaitable[Any]:
        if self.send_many is None:
            return await self.send(record.topic, record.key, record.value)
        # A record batch of its own. Through ``send`` the producer would put the records sent
        # one after another to a partition in one batch (up to its batch size) again, and a
        # broker that refused their shared batch for its size would refuse that one too.
        [result] = await self.send_many([record])
        if isinstance(result, Exception):
            raise result
        return result

    def _sort(self, record: Outgoing, exc: Exception, again: list[Outgoing]) -> Exception | None:
        """File a failed record under ``again``: itself (transient), itself alone (refused in a
        shared batch: the fault may be a batch-mate's) or its replacement."""
        if is_transient(exc):
            again.append(record)
            return exc
        if is_record_error(exc):
            if self.send_many is not None and not record.alone:
                again.append(replace(record, alone=True))
            else:
                again.append(self._replacement(record, exc))
            return None
        raise exc

    async def _shared_rows(
        self, shared: RowCache | None, missing: list[str] | None
    ) -> dict[str, Row]:
        """Rows of the texts this worker's cache misses (``missing``) from the shared cache."""
        if shared is None or not missing or not self.contexts.available:
            return {}
        try:
            return await shared.get(missing)
        except (RedisError, OSError, TimeoutError, ValueError) as exc:
            logger.warning("shared cache read failed: %s", exc)
            return {}

    async def _share(self, shared: RowCache | None, rows: dict[str, Row]) -> None:
        if shared is None or not rows or not self.contexts.available:
            return
        try:
            await shared.put(rows)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("shared cache write failed: %s", exc)

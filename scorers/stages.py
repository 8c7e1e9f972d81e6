"""The scorer's two stages, so that the model never waits for the broker.

    take (faust) ──► score:   decode · Redis read · model (worker thread) · Redis update
                        │
                        ▼     while batch N is delivered, batch N+1 is already in the model
                     deliver: verdicts and dead letters sent · delivery awaited · events acked

Batches pass both stages in the order they were taken. Events are acknowledged in that order,
and only once their verdicts (or dead letters) are on the broker: a crash replays a batch and
never loses one. Batch N's counters are in Redis before batch N+1 reads them, as when one batch
ran at a time; a crash between that update and the delivery counts the replayed batch twice.
The queues between the stages hold one batch each, so a slow broker holds the consumer back
instead of filling memory.

Nothing here knows faust: ``scorers.app`` hands in how to send a record and how to acknowledge
a batch's events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from schemas.events import DeadLetter, Verdict
from scorers.batch import SERVICE, BatchScorer, RawEvent, outcome
from scorers.cache import Row
from scorers.features import ContextReader
from warden import metrics

logger = logging.getLogger(__name__)

# (topic, key, value) -> a future that resolves once the broker has the record
Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


class RowCache(Protocol):
    """Text-side rows shared between workers (``scorers.app.SharedCache``)."""

    async def get(self, keys: Sequence[str]) -> dict[str, Row]: ...

    async def put(self, rows: dict[str, Row]) -> None: ...


@dataclass
class Delivery:
    """A batch between the stages: what to deliver, and the events to acknowledge after."""

    events: Sequence[Any]
    started: float
    verdicts: list[Verdict]
    dead: list[DeadLetter]
    computed: dict[str, Row]


class Stages:
    """Runs the score and deliver stages as two tasks fed by :meth:`put`."""

    def __init__(
        self,
        scorer: BatchScorer,
        contexts: ContextReader,
        executor: Executor,
        *,
        send: Send,
        ack: Callable[[Sequence[Any]], Awaitable[None]],
        verdicts_topic: str,
        dead_letter_topic: str,
        source_topic: str,
        on_failure: Callable[[BaseException], Awaitable[None]],
        shared: RowCache | None = None,
    ) -> None:
        self.scorer = scorer
        self.contexts = contexts
        self.executor = executor
        self.send = send
        self.ack = ack
        self.verdicts_topic = verdicts_topic
        self.dead_letter_topic = dead_letter_topic
        self.source_topic = source_topic
        self.on_failure = on_failure
        self.shared = shared
        self.failure: BaseException | None = None
        self._to_score: asyncio.Queue[tuple[Sequence[Any], list[RawEvent]]] = asyncio.Queue(1)
        self._to_deliver: asyncio.Queue[Delivery] = asyncio.Queue(1)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
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
        """Queue a taken batch; waits while both stages are busy. Raises a stage's failure."""
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

    async def _score_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            events, raw = await self._to_score.get()
            started = time.perf_counter()
            metrics.MESSAGES_IN.labels(SERVICE, self.source_topic).inc(len(raw))
            metrics.BATCH_SIZE.labels(SERVICE).observe(len(raw))
            messages, dead = self.scorer.decode(raw)
            context, degraded = await self.contexts.read(messages)
            if degraded:
                metrics.DEGRADED.labels(SERVICE).inc(len(messages))
            found = await self._shared_rows([m.text for m in messages])
            model_started = time.perf_counter()
            scored = await loop.run_in_executor(
                self.executor, self.scorer.score, messages, context, degraded, found
            )
            metrics.MODEL_SECONDS.labels(SERVICE).observe(time.perf_counter() - model_started)
            await self.contexts.update(messages, [outcome(v) for v in scored.verdicts])
            await self._to_deliver.put(
                Delivery(events, started, scored.verdicts, dead, scored.computed)
            )

    async def _deliver_loop(self) -> None:
        while True:
            batch = await self._to_deliver.get()
            pending = [
                await self.send(self.verdicts_topic, v.key.encode(), v.to_json_bytes())
                for v in batch.verdicts
            ]
            pending += [
                await self.send(self.dead_letter_topic, d.source_topic.encode(), d.to_json_bytes())
                for d in batch.dead
            ]
            await asyncio.gather(*pending)
            done = time.time()
            await self.ack(batch.events)
            await self._share(batch.computed)
            metrics.MESSAGES_OUT.labels(SERVICE, self.verdicts_topic).inc(len(batch.verdicts))
            if batch.dead:
                metrics.DEAD_LETTERS.labels(SERVICE).inc(len(batch.dead))
                metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(batch.dead))
            metrics.PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - batch.started)
            end_to_end = metrics.END_TO_END_SECONDS.labels(SERVICE)
            for verdict in batch.verdicts:
                end_to_end.observe(done - verdict.sent_at.timestamp())

    async def _shared_rows(self, texts: list[str]) -> dict[str, Row]:
        cache = self.scorer.cache
        if self.shared is None or cache is None or not self.contexts.available:
            return {}
        try:
            return await self.shared.get(cache.missing(texts))
        except (RedisError, OSError, TimeoutError, ValueError) as exc:
            logger.warning("shared cache read failed: %s", exc)
            return {}

    async def _share(self, rows: dict[str, Row]) -> None:
        if self.shared is None or not rows or not self.contexts.available:
            return
        try:
            await self.shared.put(rows)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("shared cache write failed: %s", exc)

"""faust's Kafka consumer with a cheaper hand-off of each fetched message to the streams.

faust hands every fetched message to its streams with ``wait_first(callback(message),
suspend_flow.wait())``: four tasks and an ``asyncio.wait`` a message, so that a rebalance that
suspends the flow can abandon a hand-off stuck on a full stream buffer. Nearly always the
hand-off does not wait at all (the buffer has room), and those tasks were the largest single
cost of a message in the scorer's event loop. Here the hand-off is started directly; only when
it has to wait does it go on under faust's own ``wait_first``, with the same flow and stop
conditions as before.

The agent then takes its events in batches straight from its topic channel's queue
(:func:`take_events`) instead of through the Stream's per-event iteration, which spends a loop
turn, a processor call, sensor calls and a context-variable set on every event before faust's
own ``noack_take`` buffers it. Each event still goes through faust's bookkeeping: the events
are tracked as unacked messages of the consumer, so a rebalance waits for them and offsets are
committed only once :func:`ack_events` acks them. Nothing else of faust changes (fetching,
offsets, commits, rebalancing).

An event of an older consumer generation, or taken while a rebalance suspends the flow, is
dropped as faust drops it, but not acknowledged (faust acknowledges it). It was never scored, and
an acknowledged offset is one the consumer may commit: faust commits the first consecutive run
of acknowledged offsets, checking it against the committed offset only when that offset is known
(it forgets it when a partition is revoked, until the new assignment seeks) and off by one even
then. So a dropped event's acknowledgement could commit past the messages cleared from the
buffer before it, and a restart or the new assignment's seek would skip them: a message without
a verdict after a broker outage. Unacknowledged, a dropped event is read again from the committed
offset once the rebalance seeks there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterable
from typing import Any, cast

import faust
from faust.serializers.schemas import DecodeFunction
from faust.streams import Stream
from faust.transport.drivers.aiokafka import Consumer
from faust.types import AppT, ConsumerT, EventT, Message
from mode.services import WaitArgT, WaitResults

logger = logging.getLogger(__name__)

_EVENT_WAIT = asyncio.Event.wait.__code__


class Resumed:
    """An awaitable that goes on with a coroutine already run by hand up to its first wait."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending  # what the coroutine's first step yielded (a future, or None)

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - a cancellation goes into the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


class ScorerConsumer(Consumer):
    """faust's aiokafka consumer; the hand-off of a message starts without tasks."""

    async def wait_first(self, *coros: WaitArgT, timeout: Any = None) -> WaitResults:  # noqa: ASYNC109
        if timeout is None and len(coros) == 2 and self._is_handoff(coros[1]):
            handoff, flow = coros
            if not (self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set()):
                flow.close()  # type: ignore[union-attr] # never started
                coro: Coroutine[Any, Any, Any] = handoff  # type: ignore[assignment]
                try:
                    pending = coro.send(None)
                except StopIteration as done:
                    return WaitResults([handoff], [done.value], False)
                # The buffer is full (or the flow was suspended meanwhile): wait as faust does.
                return await super().wait_first(Resumed(coro, pending), self.suspend_flow.wait())
        return await super().wait_first(*coros, timeout=timeout)

    def _is_handoff(self, second: WaitArgT) -> bool:
        """``second`` is ``self.suspend_flow.wait()``, not yet started (the drain loop's call)."""
        code = getattr(second, "cr_code", None)
        frame = getattr(second, "cr_frame", None)
        return (
            code is _EVENT_WAIT
            and frame is not None
            and frame.f_locals.get("self") is self.suspend_flow
        )


class RawSchema(faust.Schema):
    """A topic's keys and values as the broker sent them (bytes), each message's event made
    without going through faust's serializer registry.

    That is what faust's ``raw`` serializers give too (its raw codec hands bytes back as they
    are, and a payload that is not a blessed faust record is not rebuilt), by way of two
    registry look-ups, a codec call and two payload checks a message; the scorer decodes the
    value itself (:class:`schemas.events.ChatMessage`), so none of that was doing anything.
    """

    def compile(self, app: AppT, **_: Any) -> DecodeFunction:
        event: Any = app.conf.Event

        async def decode(message: Message, *, propagate: bool = False) -> EventT:
            return cast(EventT, event(app, message.key, message.value, message.headers, message))

        return decode


class ScorerApp(faust.App):
    """The scorer's faust app: :class:`ScorerConsumer` as its consumer."""

    def _new_consumer(self) -> ConsumerT:
        return ScorerConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )


async def take_events(
    stream: Stream[Any],
    max_: int,
    within: float,
    idle: Callable[[], bool] | None = None,
    watch: StallWatch | None = None,
) -> AsyncGenerator[list[EventT], None]:
    """Batches of the agent ``stream``'s events, unacknowledged: a batch closes at ``max_``
    events or ``within`` seconds after its first, whichever comes first; or, when ``idle()``
    says the next stage would start on it at once, as soon as no event is waiting. Waiting
    for more is worth it only while the stage is busy: then the events that come meanwhile
    make its next batch bigger, and on a quiet stream a line is not held for nothing."""
    await stream.maybe_start()
    app = stream.app
    consumer = app.consumer
    sensors = app.sensors
    acking_topics = app.topics.acking_topics
    flow = app.flow_control
    channel: Any = aiter(stream.channel)  # the topic's iterator, as faust's own take gets it
    queue = channel.queue
    loop = asyncio.get_running_loop()
    try:
        while not stream.should_stop:
            batch: list[EventT] = []
            event = await queue.get()  # raises what was thrown into the channel
            deadline = loop.time() + within
            while True:
                message = event.message
                # Otherwise dropped, not acked: it is read again after the rebalance's seek.
                if flow.is_active() and message.generation_id == app.consumer_generation_id:
                    if message.topic in acking_topics and not message.tracked:
                        message.tracked = True
                        consumer.unacked.add(message)
                        sensors.on_message_in(message.tp, message.offset, message)
                    batch.append(event)
                    if len(batch) >= max_:
                        break
                elif watch is not None:
                    watch.dropped += 1
                if not queue.empty():
                    event = queue.get_nowait()
                    continue
                if batch and idle is not None and idle():
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            if batch:
                if watch is not None:
                    watch.taken()
                yield batch
    finally:
        stream._channel_stop_iteration(channel)


def ack_events(app: AppT, events: Iterable[EventT]) -> None:
    """Acknowledge ``events``: once every stream has acked a message, its offset may commit."""
    on_message_out = app.sensors.on_message_out
    for event in events:
        if event.ack():
            message = event.message
            on_message_out(message.tp, message.offset, message)


class StallWatch:
    """Notices a consumer that stopped handing out its topic's messages while they wait, and
    starts it again from the committed offsets.

    Stalled means: messages wait on an assigned partition of ``topic`` (its end offset is past
    the committed one), none was taken for ``after_s`` seconds, the scorer waits for work
    (``idle``) and no rebalance is under way. A rebalance or a slow batch is none of these. That
    has been seen once, after a broker was killed and came back: the worker rejoined and took
    nothing more. The watch logs what the consumer's state was, seeks its partitions to the
    committed offsets and resumes them and the flow: a message is then read again at worst
    (consumers drop a repeated verdict by ``message_id``), never skipped.
    """

    def __init__(
        self,
        app: AppT,
        topic: str,
        idle: Callable[[], bool],
        after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.topic = topic
        self.idle = idle
        self.after_s = after_s
        self.clock = clock
        self.taken_at = clock()
        self.dropped = 0  # events dropped since the last batch (older generation, flow suspended)
        self.restarts = 0

    def taken(self) -> None:
        self.taken_at = self.clock()
        self.dropped = 0

    async def run(self, every_s: float = 10.0) -> None:
        """Check every ``every_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker away: the next check tries again
                logger.debug("stall check failed: %r", exc)

    async def waiting(self) -> dict[Any, int]:
        """Messages waiting past the committed offset, by partition of the topic."""
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic == self.topic]
        if not tps:
            return {}
        ends = await consumer.highwaters(*tps)
        starts = await consumer.earliest_offsets(*tps)
        committed = cast(Any, consumer)._committed_offset
        behind = {}
        for tp in tps:
            done = max(committed.get(tp) or 0, starts.get(tp) or 0)
            if (ends.get(tp) or 0) > done:
                behind[tp] = ends[tp] - done
        return behind

    async def check(self) -> bool:
        """Restart a stalled consumer; whether it was stalled."""
        app = self.app
        if (
            self.clock() - self.taken_at < self.after_s
            or not self.idle()
            or app.rebalancing
            or app.consumer.should_stop
        ):
            return False
        behind = await self.waiting()
        if not behind:
            self.taken_at = self.clock()  # caught up: a quiet topic is not a stall
            return False
        consumer = cast(Any, app.consumer)
        logger.warning(
            "no message taken for %.0f s while %d wait (%s); flow %s, consumer flow %s, paused %s,"
            " generation %s, %d dropped; seeking to the committed offsets and resuming",
            self.clock() - self.taken_at,
            sum(behind.values()),
            ", ".join(f"{tp.topic}[{tp.partition}]: {n}" for tp, n in sorted(behind.items())),
            "active" if app.flow_control.is_active() else "suspended",
            "active" if consumer.flow_active else "stopped",
            sorted(tp.partition for tp in consumer._paused_partitions if tp.topic == self.topic),
            app.consumer_generation_id,
            self.dropped,
        )
        self.restarts += 1
        self.taken_at = self.clock()
        consumer.resume_partitions(list(behind))
        await consumer.perform_seek()
        app.flow_control.resume()
        consumer.resume_flow()
        return True

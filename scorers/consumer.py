"""faust's Kafka consumer with a cheaper hand-off of each fetched message to the streams.

faust hands every fetched message to its streams with ``wait_first(callback(message),
suspend_flow.wait())``: four tasks and an ``asyncio.wait`` a message, so that a rebalance that
suspends the flow can abandon a hand-off stuck on a full stream buffer. Nearly always the
hand-off does not wait at all (the buffer has room), and those tasks were the largest single
cost of a message in the scorer's event loop. Here the hand-off is started directly; only when
it has to wait does it go on under faust's own ``wait_first``, with the same flow and stop
conditions as before. Nothing else of faust changes (fetching, offsets, acks, commits,
rebalancing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Consumer
from faust.types import ConsumerT
from mode.services import WaitArgT, WaitResults

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

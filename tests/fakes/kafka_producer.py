"""A stand-in for aiokafka's producer: records sends, and acknowledges only when told to.

For tests of code that owns a producer (the ingest publisher) without a broker. ``fail``
reproduces what aiokafka does when the broker refuses a producer after a restart: the pending
delivery futures fail with the error (``OutOfOrderSequenceNumber``...) and, when the sender task
died of it, every later ``send()`` raises it too.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from aiokafka.errors import KafkaConnectionError


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, asyncio.Future[Any]]] = []
        self.fail_starts = 0
        self.starts = 0
        self.stopped = False
        self.send_errors: list[Exception] = []
        self.auto_ack = False
        self.dead: Exception | None = None  # what every send() raises once the sender died

    async def start(self) -> None:
        self.starts += 1
        if self.fail_starts:
            self.fail_starts -= 1
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        if self.dead is not None:
            raise copy.copy(self.dead)
        if self.send_errors:
            raise self.send_errors.pop(0)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key or b"", value, future))
        if self.auto_ack:
            future.set_result(None)
        return future

    def pending(self) -> list[asyncio.Future[Any]]:
        return [f for *_, f in self.sent if not f.done()]

    def ack_all(self) -> int:
        pending = self.pending()
        for future in pending:
            future.set_result(None)
        return len(pending)

    def ids(self) -> list[str]:
        """The message ids sent, in order (chat messages and dead letters alike)."""
        return [json.loads(value).get("message_id", "?") for _, _, value, _ in self.sent]

    def fail(self, exc: Exception, *, first: int = 0, kill: bool = False) -> int:
        """Fail the pending futures from the ``first``-th on with ``exc``; ``kill``: and later
        sends (aiokafka's ``fail_all`` after a fatal sender error)."""
        pending = self.pending()[first:]
        for future in pending:
            future.set_exception(copy.copy(exc))
        if kill:
            self.dead = exc
        return len(pending)


class FakeProducers:
    """A producer factory: each call makes a new :class:`FakeProducer` (``made`` keeps them)."""

    def __init__(self, auto_ack: bool = False) -> None:
        self.made: list[FakeProducer] = []
        self.auto_ack = auto_ack

    def __call__(self) -> FakeProducer:
        producer = FakeProducer()
        producer.auto_ack = self.auto_ack
        self.made.append(producer)
        return producer

    @property
    def current(self) -> FakeProducer:
        return self.made[-1]

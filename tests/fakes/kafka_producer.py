"""A stand-in for aiokafka's producer: records sends, and acknowledges only when told to.

For tests of code that owns a producer (the ingest publisher) without a broker.
"""

from __future__ import annotations

import asyncio
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

    async def start(self) -> None:
        self.starts += 1
        if self.fail_starts:
            self.fail_starts -= 1
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
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

"""The scorer's stages: acknowledged in order, only after delivery; a failure stops them."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from schemas.events import ChatMessage, Severity
from scorers.batch import BatchScorer, RawEvent
from scorers.features import ContextReader
from scorers.stages import Stages
from toxicity.lexical import LexicalScorer


def raw(n: int, text: str = "hello chat") -> RawEvent:
    message = ChatMessage.model_validate(
        {
            "message_id": f"m{n}",
            "platform": "twitch",
            "community": "c",
            "channel": "#main",
            "user": f"u{n % 3}",
            "text": text,
            "sent_at": "2026-11-21T10:00:00+00:00",
            "received_at": "2026-11-21T10:00:00.010000+00:00",
        }
    )
    return RawEvent(message.to_json_bytes(), b"k", "chat", 0, n)


class Broker:
    """Send returns a delivery future this test resolves when it likes."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.fail_on = fail_on

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        if self.fail_on is not None and self.fail_on.encode() in value:
            raise RuntimeError("broker refused the record")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        record = json.loads(value)
        self.pending[record.get("message_id", f"{topic}-{len(self.pending)}")] = future
        return future


def stages(broker: Broker, acked: list[Any], failures: list[BaseException]) -> Stages:
    async def ack(events: Any) -> None:
        acked.extend(events)

    async def on_failure(exc: BaseException) -> None:
        failures.append(exc)

    return Stages(
        BatchScorer(LexicalScorer(), Severity.MEDIUM),
        ContextReader(None),
        ThreadPoolExecutor(1),
        send=broker.send,
        ack=ack,
        verdicts_topic="verdicts",
        dead_letter_topic="dead",
        source_topic="chat",
        on_failure=on_failure,
    )


async def wait_for(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in 2 s")


async def test_batches_are_acknowledged_in_order_and_only_after_delivery() -> None:
    broker = Broker()
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.start()
    try:
        first, second = [raw(0), raw(1)], [raw(2), RawEvent(b"not json", None, "chat", 0, 3)]
        await running.put(["e0", "e1"], first)
        await running.put(["e2", "e3"], second)
        await wait_for(lambda: {"m0", "m1"} <= set(broker.pending))
        await asyncio.sleep(0.05)
        assert acked == []  # sent, not delivered: nothing acknowledged
        broker.pending["m1"].set_result(None)
        await asyncio.sleep(0.05)
        assert acked == []  # half a batch delivered is not a delivered batch
        broker.pending["m0"].set_result(None)
        await wait_for(lambda: acked == ["e0", "e1"])
        # The second batch (a verdict and a dead letter) waits for its own delivery.
        await wait_for(lambda: "m2" in broker.pending)
        for future in broker.pending.values():
            if not future.done():
                future.set_result(None)
        await wait_for(lambda: acked == ["e0", "e1", "e2", "e3"])
        assert failures == []
    finally:
        await running.stop()


async def test_a_failed_delivery_stops_the_stages_without_acknowledging() -> None:
    broker = Broker(fail_on='"message_id":"m1"')
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.start()
    try:
        await running.put(["e0", "e1"], [raw(0), raw(1)])
        await wait_for(lambda: failures)
        assert isinstance(failures[0], RuntimeError)
        assert acked == []
        with pytest.raises(RuntimeError, match="broker refused"):
            await running.put(["e2"], [raw(2)])
    finally:
        await running.stop()

"""The scorer counts the verdicts it delivers in the outcome metrics (warden_verdicts_total and
its kin): each delivered verdict once, a verdict replaced by a dead letter not at all, and a
shadow scorer's verdicts (never actioned) not at all."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiokafka.errors import RecordTooLargeError
from prometheus_client import REGISTRY

from core import metrics
from schemas.events import ChatMessage, Severity
from scorers.batch import BatchScorer, RawEvent
from scorers.context_store import ContextReader
from scorers.stages import Stages
from toxicity.lexical import LexicalScorer


@pytest.fixture(autouse=True)
def fresh_community_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Label communities from scratch: other tests in this process may have named 20 already."""
    monkeypatch.setattr(metrics, "COMMUNITIES", metrics.CommunityLabels(20))


def raw(n: int, community: str, text: str) -> RawEvent:
    message = ChatMessage.model_validate(
        {
            "message_id": f"{community}-m{n}",
            "platform": "twitch",
            "community": community,
            "channel": "#main",
            "user": f"u{n}",
            "text": text,
            "sent_at": "2026-11-21T10:00:00+00:00",
            "received_at": "2026-11-21T10:00:00.010000+00:00",
        }
    )
    return RawEvent(message.to_json_bytes(), b"k", "chat", 0, n)


class Broker:
    """Takes every record at once, except verdicts whose text holds ``refuse``."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.topics: list[str] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse is not None and topic == "verdicts" and self.refuse in value.decode():
            future.set_exception(RecordTooLargeError("too large"))
        else:
            self.topics.append(topic)
            future.set_result(None)
        return future


async def score(broker: Broker, batch: list[RawEvent], *, outcomes: bool = True) -> None:
    acked: list[Any] = []

    async def ack(events: Any) -> None:
        acked.extend(events)

    async def on_failure(exc: BaseException) -> None:
        raise AssertionError(f"stages failed: {exc!r}")

    stages = Stages(
        BatchScorer(LexicalScorer(), Severity.MEDIUM),
        ContextReader(None),
        ThreadPoolExecutor(1),
        send=broker.send,
        ack=ack,
        verdicts_topic="verdicts",
        dead_letter_topic="dead",
        source_topic="chat",
        on_failure=on_failure,
        outcomes=outcomes,
    )
    stages.start()
    try:
        await stages.put([f"e{i}" for i in range(len(batch))], batch)
        for _ in range(300):
            if len(acked) == len(batch):
                break
            await asyncio.sleep(0.01)
        assert len(acked) == len(batch)
    finally:
        await stages.stop()


def counted(community: str) -> float:
    total = 0.0
    for family in REGISTRY.collect():
        if family.name != "warden_verdicts":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels["community"] == community:
                total += sample.value
    return total


async def test_delivered_verdicts_are_counted_once_and_refused_ones_not() -> None:
    broker = Broker(refuse="refuse me")
    batch = [
        raw(0, "metrics-a", "hello"),
        raw(1, "metrics-a", "refuse me"),
        raw(2, "metrics-a", "gg"),
    ]
    await score(broker, batch)
    assert broker.topics.count("verdicts") == 2 and "dead" in broker.topics
    assert counted("twitch:metrics-a") == 2
    p_toxic = REGISTRY.get_sample_value(
        "warden_verdict_p_toxic_count", {"community": "twitch:metrics-a", "kind": "text"}
    )
    assert p_toxic == 2


async def test_a_shadow_scorer_counts_no_outcome() -> None:
    broker = Broker()
    await score(broker, [raw(0, "metrics-shadow", "hello")], outcomes=False)
    assert broker.topics == ["verdicts"]
    assert counted("twitch:metrics-shadow") == 0

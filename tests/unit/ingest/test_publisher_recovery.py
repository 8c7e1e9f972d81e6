"""The publisher after fatal producer errors: nothing accepted is lost, order per key is kept,
and only what the broker refuses for good counts as failed (and says so in the metrics).

The producer is a double at the aiokafka boundary (tests/fakes/kafka_producer.py) that fails its
delivery futures the way aiokafka does after a broker restart (OutOfOrderSequenceNumber on every
pending batch, and on every later send once the sender task died of it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    TopicAuthorizationFailedError,
    UnknownProducerId,
)
from fakes.kafka_producer import FakeProducer, FakeProducers
from prometheus_client import REGISTRY

from core.settings import IngestSettings, KafkaSettings
from ingest.publisher import MAX_ATTEMPTS, Publisher
from schemas.events import ChatMessage, Platform, utcnow

KAFKA = KafkaSettings(topic_suffix=".unit")
FAST = {"shutdown_timeout_s": 1.0, "reconnect_base_s": 0.01, "reconnect_max_s": 0.05}


def chat(i: int, user: str = "u1") -> ChatMessage:
    now = utcnow()
    return ChatMessage(
        message_id=f"m{i}",
        platform=Platform.TWITCH,
        community="c1",
        channel="#main",
        user=user,
        text=f"message {i}",
        sent_at=now,
        received_at=now,
    )


def publisher(producers: FakeProducers, adapter: str, **ingest: object) -> Publisher:
    settings = IngestSettings(**{**FAST, **ingest})
    return Publisher(KAFKA, ingest=settings, adapter=adapter, producer_factory=producers)


async def until(condition: Callable[[], bool], what: str, within_s: float = 3.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ack(producer: FakeProducer, count: int) -> None:
    for future in producer.pending()[:count]:
        future.set_result(None)


async def test_a_broker_restart_refusing_the_producer_loses_nothing_and_keeps_order() -> None:
    producers = FakeProducers()
    messages = [chat(i, user=f"u{i % 3}") for i in range(12)]
    async with publisher(producers, "unit-oos") as pub:
        for message in messages[:8]:
            await pub.publish(message)
        await until(lambda: len(producers.current.sent) == 8, "all eight handed to the producer")
        first = producers.current
        ack(first, 3)  # the broker took the first three before it restarted ...
        # ... then refused the rest: aiokafka fails every pending batch and, its sender task
        # dead, every later send.
        assert first.fail(OutOfOrderSequenceNumber(), kill=True) == 5
        for message in messages[8:]:  # accepted while the producer is being replaced
            assert await pub.publish(message)
        await until(
            lambda: len(producers.made) == 2 and len(producers.current.sent) == 9,
            "a new producer resends the five unacknowledged and the four newer messages",
        )
        second = producers.current
        assert first.stopped
        assert second.ids() == [f"m{i}" for i in range(3, 12)], "accept order, old ones first"
        assert pub.buffered == 9
        second.ack_all()
        assert await pub.flush(within_s=2)
    assert (pub.published, pub.failed, pub.buffered) == (12, 0, 0)
    assert pub.producer_restarts == 1
    delivered = first.ids()[:3] + second.ids()
    for user in ("u0", "u1", "u2"):
        ids = [m.message_id for m in messages if m.user == user]
        assert [i for i in delivered if i in ids] == ids, f"{user}'s messages out of order"
    restarts = "warden_ingest_producer_restarts_total"
    assert metric(restarts, adapter="unit-oos", reason="OutOfOrderSequenceNumber") == 1
    assert metric("warden_ingest_published_total", adapter="unit-oos") == 12


async def test_consecutive_failures_replace_the_producer_each_time() -> None:
    producers = FakeProducers()
    async with publisher(producers, "unit-twice") as pub:
        for i in range(4):
            await pub.publish(chat(i))
        await until(lambda: len(producers.current.sent) == 4, "sent")
        producers.current.fail(UnknownProducerId())
        await until(lambda: len(producers.made) == 2 and len(producers.current.sent) == 4, "1st")
        ack(producers.current, 1)
        producers.current.fail(OutOfOrderSequenceNumber(), kill=True)
        await until(lambda: len(producers.made) == 3 and len(producers.current.sent) == 3, "2nd")
        assert producers.current.ids() == ["m1", "m2", "m3"]
        producers.current.ack_all()
        assert await pub.flush(within_s=2)
    assert (pub.published, pub.failed, pub.producer_restarts) == (4, 0, 2)


async def test_a_record_the_broker_refuses_for_good_counts_as_failed_the_rest_is_resent() -> None:
    producers = FakeProducers()
    async with publisher(producers, "unit-refused") as pub:
        for i in range(3):
            await pub.publish(chat(i))
        await until(lambda: len(producers.current.sent) == 3, "sent")
        first = producers.current
        m0, m1, m2 = (future for *_, future in first.sent)
        m0.set_result(None)
        m1.set_exception(MessageSizeTooLargeError())
        # Its batch left a gap in the producer's sequence: the next one on the partition fails.
        m2.set_exception(OutOfOrderSequenceNumber())
        await until(lambda: len(producers.made) == 2 and producers.current.sent, "resent")
        assert producers.current.ids() == ["m2"]
        producers.current.ack_all()
        assert await pub.flush(within_s=2)
    assert (pub.published, pub.failed, pub.buffered) == (2, 1, 0)
    assert (
        metric(
            "warden_ingest_failed_total", adapter="unit-refused", reason="MessageSizeTooLargeError"
        )
        == 1
    )


async def test_a_record_refused_before_it_is_sent_fails_without_a_new_producer() -> None:
    producers = FakeProducers(auto_ack=True)
    async with publisher(producers, "unit-too-big") as pub:
        producers.current.send_errors = [MessageSizeTooLargeError("over max_request_size")]
        await pub.publish(chat(1))
        await pub.publish(chat(2))
        assert await pub.flush(within_s=2)
    assert (pub.published, pub.failed, len(producers.made)) == (1, 1, 1)


async def test_authorization_failures_count_every_refused_record() -> None:
    producers = FakeProducers()
    async with publisher(producers, "unit-authz") as pub:
        for i in range(2):
            await pub.publish(chat(i))
        await until(lambda: len(producers.current.sent) == 2, "sent")
        producers.current.fail(TopicAuthorizationFailedError("chat.messages.v1.unit"))
        assert await pub.flush(within_s=2)
    assert (pub.published, pub.failed) == (0, 2)
    assert (
        metric(
            "warden_ingest_failed_total",
            adapter="unit-authz",
            reason="TopicAuthorizationFailedError",
        )
        == 2
    )


async def test_an_unknown_fatal_error_gets_a_bounded_number_of_producers() -> None:
    producers = FakeProducers()
    async with publisher(producers, "unit-unknown") as pub:
        await pub.publish(chat(1))
        for attempt in range(1, MAX_ATTEMPTS + 1):

            def sent_through(producers_made: int = attempt) -> bool:
                return len(producers.made) == producers_made and bool(producers.current.pending())

            await until(sent_through, f"attempt {attempt}")
            producers.current.fail(KafkaError("something nobody expected"))
        assert await pub.flush(within_s=2)
        assert (pub.published, pub.failed) == (0, 1)
        producers.auto_ack = producers.current.auto_ack = True
        await pub.publish(chat(2))  # the publisher goes on
        assert await pub.flush(within_s=2)
    assert (pub.published, pub.failed) == (1, 1)


async def test_a_broker_away_for_too_long_makes_the_publisher_unavailable(
    producer: FakeProducer,
) -> None:
    producer.fail_starts = 10_000
    settings = IngestSettings(**FAST, unavailable_after_s=0.05)
    async with Publisher(KAFKA, producer, ingest=settings, adapter="unit-away") as pub:
        assert pub.unavailable() is None, "a short outage is ridden out"
        await asyncio.sleep(0.1)
        assert "has not answered" in (pub.unavailable() or "")
        producer.fail_starts = 0
        await until(lambda: pub.unavailable() is None, "available again once the broker answers")


async def test_readiness_follows_the_broker_and_drops_on_close() -> None:
    """warden_ready{service="ingest"} is 1 while a broker answers, 0 while none does."""
    from core.net import free_port

    port = free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", topic_suffix=".unit")
    settings = IngestSettings(**FAST)
    producers = FakeProducers()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    async with Publisher(kafka, ingest=settings, adapter="ready", producer_factory=producers):
        await until(lambda: metric("warden_ready", service="ingest") == 1, "ready", 5)
        server.close()
        await server.wait_closed()
        await until(lambda: metric("warden_ready", service="ingest") == 0, "not ready", 5)
        assert metric("warden_dependency_up", service="ingest", dependency="kafka") == 0
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        await until(lambda: metric("warden_ready", service="ingest") == 1, "ready again", 5)
    assert metric("warden_ready", service="ingest") == 0
    server.close()
    await server.wait_closed()

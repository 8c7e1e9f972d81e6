"""The publisher's buffer: back-pressure, all-or-nothing offers, redelivery, opt-out, flush."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from fakes.kafka_producer import FakeProducer

from core.settings import IngestSettings, KafkaSettings
from ingest.optout import RedisOptOut
from ingest.publisher import BufferFull, Publisher
from schemas.events import ChatMessage, Platform, utcnow

KAFKA = KafkaSettings(topic_suffix=".unit")


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


FAST = {"shutdown_timeout_s": 1.0, "reconnect_base_s": 0.01, "reconnect_max_s": 0.05}


def publisher(producer: FakeProducer, **ingest: Any) -> Publisher:
    settings = IngestSettings(**{**FAST, **ingest})
    return Publisher(KAFKA, producer, ingest=settings, adapter="unit")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], what: str, within_s: float = 2.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)


async def test_messages_count_as_buffered_until_the_broker_acknowledges(
    producer: FakeProducer,
) -> None:
    async with publisher(producer) as pub:
        for i in range(3):
            assert await pub.publish(chat(i, user=f"u{i}"))
        await settle()
        assert pub.buffered == 3 and pub.published == 0
        assert not await pub.flush(within_s=0.05)
        producer.ack_all()
        assert await pub.flush(within_s=1)
        assert pub.buffered == 0 and pub.published == 3
    topic, key, value, _ = producer.sent[0]
    assert topic == "chat.messages.v1.unit"
    assert key == b"twitch:c1:u0"
    assert json.loads(value)["message_id"] == "m0"
    assert producer.stopped


async def test_publish_waits_while_the_buffer_is_full(producer: FakeProducer) -> None:
    async with publisher(producer, buffer_max_messages=3) as pub:
        for i in range(3):
            await pub.publish(chat(i))
        fourth = asyncio.create_task(pub.publish(chat(3)))
        await settle()
        assert not fourth.done(), "a full buffer must hold the adapter back"
        producer.ack_all()
        assert await asyncio.wait_for(fourth, 1)
        producer.auto_ack = True
        await settle()
        producer.ack_all()
        assert await pub.flush(within_s=1)
        assert pub.published == 4


async def test_offer_takes_a_batch_whole_or_refuses_it(producer: FakeProducer) -> None:
    async with publisher(producer, buffer_max_messages=5, retry_after_s=7) as pub:
        assert pub.offer([chat(i) for i in range(4)]) == 4
        with pytest.raises(BufferFull) as refused:
            pub.offer([chat(i) for i in range(4, 6)])
        assert refused.value.retry_after_s == 7
        assert pub.buffered == 4, "nothing of a refused batch is taken"
        assert pub.offer([chat(9)]) == 1
        producer.ack_all()
        await settle()
        producer.ack_all()
        assert await pub.flush(within_s=1)
        assert pub.published == 5


async def test_the_byte_limit_applies_too(producer: FakeProducer) -> None:
    async with publisher(producer, buffer_max_bytes=1024) as pub:
        pub.offer([chat(0)])
        with pytest.raises(BufferFull):
            pub.offer([chat(i) for i in range(1, 10)])
        producer.auto_ack = True
        producer.ack_all()


async def test_a_batch_the_broker_gave_up_on_is_sent_again(producer: FakeProducer) -> None:
    async with publisher(producer) as pub:
        await pub.publish(chat(1))
        await settle()
        producer.sent[0][3].set_exception(NotLeaderForPartitionError())
        await until(lambda: len(producer.sent) == 2, "a retriable failure must be resent")
        producer.ack_all()
        assert await pub.flush(within_s=1)
        assert pub.published == 1 and pub.failed == 0


async def test_send_timeouts_keep_the_message_buffered(producer: FakeProducer) -> None:
    producer.send_errors = [KafkaTimeoutError(), KafkaTimeoutError()]
    producer.auto_ack = True
    async with publisher(producer) as pub:
        await pub.publish(chat(1))
        await pub.publish(chat(2))
        assert await pub.flush(within_s=5)
        assert [json.loads(v)["message_id"] for _, _, v, _ in producer.sent] == ["m1", "m2"]


async def test_a_broker_down_at_start_up_is_waited_for(producer: FakeProducer) -> None:
    producer.fail_starts = 2
    producer.auto_ack = True
    async with publisher(producer) as pub:
        assert await pub.publish(chat(1))  # accepted while nothing answers
        assert await pub.flush(within_s=5)
        assert producer.starts == 3 and pub.published == 1


async def test_shutdown_with_an_unreachable_broker_says_what_is_lost(
    producer: FakeProducer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with publisher(producer, shutdown_timeout_s=0.1) as pub:
        await pub.publish(chat(1))
    assert "1 messages were still buffered" in caplog.text


async def test_rejects_go_to_the_dead_letter_topic(producer: FakeProducer) -> None:
    producer.auto_ack = True
    async with publisher(producer) as pub:
        await pub.reject(b"\xffnot json", ValueError("bad line"), "replay:x.jsonl:3")
        pub.offer([], [(b"{}", ValueError("no text"), "webhook")])
        assert await pub.flush(within_s=1)
        assert pub.rejected == 2 and pub.published == 0
    topics = {t for t, *_ in producer.sent}
    assert topics == {"moderation.deadletter.v1.unit"}
    letter = json.loads(producer.sent[0][2])
    assert letter["source_topic"] == "replay:x.jsonl:3" and letter["error"] == "bad line"
    assert letter["raw"] == "\\xffnot json"


class FakeRedis:
    def __init__(self, members: set[bytes]) -> None:
        self.members = members
        self.closed = False

    async def smembers(self, key: str) -> set[bytes]:
        return self.members

    async def aclose(self) -> None:
        self.closed = True


async def test_opted_out_users_are_dropped_before_anything_is_sent(
    producer: FakeProducer,
) -> None:
    redis = FakeRedis({b"twitch:c1:quiet"})
    opt_out = RedisOptOut(redis, "warden:optout", refresh_s=0.05)  # type: ignore[arg-type]
    producer.auto_ack = True
    pub = Publisher(KAFKA, producer, ingest=IngestSettings(), opt_out=opt_out)
    async with pub:
        assert not await pub.publish(chat(1, user="quiet"))
        assert await pub.publish(chat(2, user="loud"))
        assert pub.offer([chat(3, user="quiet"), chat(4, user="loud")]) == 1
        redis.members = set()  # the user opted back in
        await asyncio.sleep(0.2)
        assert await pub.publish(chat(5, user="quiet"))
        assert await pub.flush(within_s=1)
    ids = [json.loads(v)["message_id"] for _, _, v, _ in producer.sent]
    assert ids == ["m2", "m4", "m5"]
    assert pub.dropped == 2
    assert redis.closed

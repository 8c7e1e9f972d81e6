"""Kafka clients back off, with jitter, while the broker is unreachable."""

from __future__ import annotations

import asyncio
import random
import time

from core.clients import install_reconnect_backoff, kafka_common, reconnect_delay
from core.net import free_port
from core.settings import KafkaSettings


def test_delays_double_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    delays = [reconnect_delay(n, 0.1, 2.0, rng) for n in range(1, 9)]
    nominal = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for delay, expected in zip(delays, nominal, strict=True):
        assert 0.8 * expected <= delay <= 1.2 * expected
    # Jitter: two clients failing together do not retry together.
    assert len({round(reconnect_delay(6, 0.1, 2.0, rng), 6) for _ in range(20)}) > 10
    assert reconnect_delay(10_000, 0.1, 2.0, rng) <= 2.4


async def test_a_failed_metadata_refresh_waits_before_the_next() -> None:
    from aiokafka.client import AIOKafkaClient

    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=200,
    )
    install_reconnect_backoff(kafka)
    install_reconnect_backoff(kafka)  # idempotent: one wrapper, not two
    client = AIOKafkaClient(**kafka_common(kafka))
    try:
        started = time.monotonic()
        # No broker answers: every refresh fails at once; what bounds the loop is the wait.
        results = [await client._metadata_update(client.cluster, set()) for _ in range(5)]
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    assert results == [False] * 5
    # 50 + 100 + 200 + 200 + 200 ms nominal, +-20 %.
    assert 0.6 <= elapsed <= 1.5
    await asyncio.sleep(0)


def test_lz4_batches_are_compressed_at_the_configured_level() -> None:
    from aiokafka import codec

    payload = b"".join(
        b'{"message_id":"m%d","text":"line %d of chat","p_toxic":0.%04d}' % (i, i * 7, i)
        for i in range(400)
    )
    default = codec.lz4_encode.__defaults__
    try:
        for level in (1, 9):
            kafka_common(KafkaSettings(lz4_level=level))
            # What aiokafka's record builders call: no level argument.
            assert codec.lz4_encode(payload) == codec.lz4_encode(payload, level=level)
            assert codec.lz4_decode(codec.lz4_encode(payload)) == payload
        fast = codec.lz4_encode(payload, level=1)
        assert fast != codec.lz4_encode(payload, level=9)  # the level does reach cramjam
    finally:
        codec.lz4_encode.__defaults__ = default


def test_an_lz4_level_out_of_range_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="lz4_level"):
        KafkaSettings(lz4_level=13)

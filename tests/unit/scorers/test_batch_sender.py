"""BatchSender: one record batch per partition, keys placed by the producer's partitioner."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from scorers.app import BatchSender
from scorers.stages import Outgoing


class FakeBatch:
    def __init__(self, room: int) -> None:
        self.keys: list[bytes] = []
        self.room = room

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object | None:
        if len(self.keys) >= self.room:
            return None  # full: the caller sends it and starts another
        self.keys.append(key)
        return object()


class FakeProducers:
    """faust's producer (key_partition) and its aiokafka producer (batches), on one topic."""

    def __init__(self, partitions: int, room: int = 1000) -> None:
        self.partitions = set(range(partitions))
        self.room = room
        self.hashed: list[bytes] = []
        self.sent: list[tuple[int, list[bytes]]] = []

    def _ensure_producer(self) -> FakeProducers:
        return self

    def key_partition(self, topic: str, key: bytes) -> TP:
        self.hashed.append(key)
        return TP(topic, sum(key) % len(self.partitions))

    async def partitions_for(self, topic: str) -> set[int]:
        return set(self.partitions)

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.room)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((partition, batch.keys))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def records(keys: list[bytes]) -> list[Outgoing]:
    return [Outgoing("verdicts", key, b"{}") for key in keys]


def test_keys_go_to_their_partition_and_hash_once_until_partitions_change() -> None:
    async def main() -> None:
        producers = FakeProducers(partitions=3, room=2)
        sender = BatchSender(SimpleNamespace(producer=producers))  # type: ignore[arg-type]
        keys = [b"ana", b"bob", b"ana", b"cy", b"ana", b"bob"]
        results = await sender(records(keys))
        assert len(results) == len(keys) and not any(isinstance(r, Exception) for r in results)
        for partition, batch_keys in producers.sent:
            assert 0 < len(batch_keys) <= 2  # a full batch was sent and another started
            assert all(sum(k) % 3 == partition for k in batch_keys)
        assert sorted(k for _, ks in producers.sent for k in ks) == sorted(keys)
        assert sorted(producers.hashed) == [b"ana", b"bob", b"cy"]  # each key hashed once

        await sender(records([b"ana", b"dee"]))
        assert producers.hashed[3:] == [b"dee"]  # remembered across deliveries

        producers.partitions = set(range(5))  # partitions added: every key hashes again
        producers.sent.clear()
        await sender(records([b"ana", b"bob"]))
        assert producers.hashed[4:] == [b"ana", b"bob"]
        assert all(sum(k) % 5 == p for p, ks in producers.sent for k in ks)

    asyncio.run(main())

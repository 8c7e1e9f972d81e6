"""What a service that consumes Kafka beside the verdict path needs (the explainer, the drift
monitor): its readiness (``warden_ready{service}`` and ``warden_dependency_up{service,
dependency="kafka"}``), the rebalance listener that drives it, the broker probe, the read loop
that commits after each batch, and closing clients without letting a broker that is away hang a
shutdown.

Ready means: partitions assigned (with every start offset resolved), the broker reachable and
no stop asked for. ``devkit.processes`` and the tests wait for it before they publish.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from core import metrics
from core.net import reachable

if TYPE_CHECKING:
    from core.settings import KafkaSettings

logger = logging.getLogger(__name__)

PROBE_EVERY_S = 2.0
CLOSE_TIMEOUT_S = 3.0


class ConsumerReadiness:
    """What ``warden_ready{service=...}`` is made of, published on every change."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.parts = {"partitions": False, "kafka": True, "running": True}
        self._publish()

    def set(self, part: str, ok: bool) -> None:
        self.parts[part] = ok
        self._publish()

    def _publish(self) -> None:
        metrics.DEPENDENCY_UP.labels(self.service, "kafka").set(1 if self.parts["kafka"] else 0)
        metrics.READY.labels(self.service).set(1 if all(self.parts.values()) else 0)


class ReadyListener(ConsumerRebalanceListener):
    """Readiness on assignment, once every new partition's start offset is known.

    A new group of a side service starts at the end of its topics ("latest"); the position is
    resolved here, so that a record published after the service says it is ready is never
    skipped. Set ``consumer`` once the consumer is built.
    """

    def __init__(self, readiness: ConsumerReadiness) -> None:
        self.readiness = readiness
        self.consumer: AIOKafkaConsumer | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.readiness.set("partitions", False)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.consumer is not None:
            for partition in assigned:
                await self.consumer.position(partition)
        self.readiness.set("partitions", True)


async def join_group(
    kafka: KafkaSettings,
    service: str,
    topics: Sequence[str],
    readiness: ConsumerReadiness,
    producer: AIOKafkaProducer,
    stop: asyncio.Event,
) -> tuple[AIOKafkaConsumer, bool]:
    """The service's consumer, in its own group from the topics' end ("latest", every start
    offset resolved on assignment: :class:`ReadyListener`), subscribed to ``topics``, and
    ``producer`` and it started; the flag is False when ``stop`` came first (the consumer is
    returned either way, for the caller to close)."""
    from core.clients import group_id, kafka_consumer
    from core.stopping import until_stopped

    listener = ReadyListener(readiness)
    consumer = kafka_consumer(kafka, group_id=group_id(kafka, service), auto_offset_reset="latest")
    listener.consumer = consumer
    consumer.subscribe(list(topics), listener=listener)

    async def start() -> None:
        await producer.start()
        await consumer.start()

    started, _ = await until_stopped(stop, start())
    return consumer, started


async def watch_broker(readiness: ConsumerReadiness, hosts: Sequence[str]) -> None:
    """Probe the brokers: the consumer hides a broker that is away behind its retries."""
    while True:
        readiness.set("kafka", await reachable(hosts))
        await asyncio.sleep(PROBE_EVERY_S)


async def consume_batches(
    consumer: AIOKafkaConsumer,
    stop: asyncio.Event,
    handle: Callable[[list[Any]], Awaitable[None] | None],
    worker: asyncio.Task[Any],
    *,
    max_records: int,
) -> None:
    """Read batches until ``stop``; give each to ``handle``, then commit its offsets.

    A failed commit is logged and left to the next one (these services are best-effort by
    design: their module docstrings say why). ``worker`` (the service's own task: the LIME
    queue, the drift checks) is looked at between batches: if it died, its exception is raised
    here, rather than leaving a service that reads on and does nothing.
    """
    while not stop.is_set():
        if worker.done():
            worker.result()
        batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
        records = [record for batch in batches.values() for record in batch]
        if not records:
            continue
        handled = handle(records)
        if inspect.isawaitable(handled):
            await handled
        try:
            await consumer.commit()
        except KafkaError as exc:
            logger.warning("offsets not committed (%r); the next commit covers them", exc)


async def close_quietly(what: str, closing: Awaitable[Any]) -> None:
    """Await a client's ``stop()`` for at most ``CLOSE_TIMEOUT_S``; log, never raise."""
    try:
        await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)
    except (TimeoutError, KafkaError, asyncio.CancelledError) as exc:
        logger.warning("%s did not close cleanly: %r", what, exc)

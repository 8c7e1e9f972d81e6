"""The one publisher every adapter uses: ChatMessages onto ``chat.messages.v1``, keyed by user.

Events an adapter cannot turn into a ChatMessage still lose nothing: they go to the dead-letter
topic with the error, so they can be inspected and replayed.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from aiokafka import AIOKafkaProducer

from schemas.events import ChatMessage, DeadLetter, raw_text, utcnow
from schemas.topics import CHAT_MESSAGES, DEADLETTER
from warden import metrics
from warden.clients import kafka_producer
from warden.settings import KafkaSettings

logger = logging.getLogger(__name__)
SERVICE = "ingest"


class Publisher:
    """An idempotent, batching producer for chat messages (use as an async context manager)."""

    def __init__(self, kafka: KafkaSettings, producer: AIOKafkaProducer | None = None) -> None:
        self.topic = CHAT_MESSAGES.name_for(kafka.topic_suffix)
        self.deadletter_topic = DEADLETTER.name_for(kafka.topic_suffix)
        self.producer = producer or kafka_producer(kafka)
        self.published = 0
        self.rejected = 0

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # stop() flushes what is still batched: a clean shutdown loses nothing.
        await self.producer.stop()

    async def publish(self, message: ChatMessage) -> None:
        """Queue one message; returns once it is in the producer's batch, not when acknowledged."""
        started = time.perf_counter()
        await self.producer.send(self.topic, message.to_json_bytes(), key=message.key.encode())
        self.published += 1
        metrics.MESSAGES_OUT.labels(SERVICE, self.topic).inc()
        metrics.PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def reject(self, raw: bytes, error: Exception, source: str) -> None:
        """Send an event that failed validation to the dead-letter topic."""
        letter = DeadLetter(
            source_topic=source,
            raw=raw_text(raw),
            error=str(error),
            error_type=type(error).__name__,
            service=SERVICE,
            failed_at=utcnow(),
        )
        await self.producer.send(self.deadletter_topic, letter.to_json_bytes(), key=source.encode())
        self.rejected += 1
        metrics.DEAD_LETTERS.labels(SERVICE).inc()
        logger.warning("rejected an event from %s: %s", source, error)

    async def flush(self) -> None:
        await self.producer.flush()

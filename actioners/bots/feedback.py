"""Where the bots put a dispute: ``moderation.feedback.v1``, keyed by message id."""

from __future__ import annotations

import asyncio
from typing import Protocol

from actioners.publisher import Outgoing, Publisher
from core.clients import kafka_producer
from core.settings import KafkaSettings
from schemas.events import Feedback
from schemas.topics import FEEDBACK

# A bot must answer Discord within 3 s and Slack within 3 s: a dispute the broker has not taken
# by then is answered "try again" rather than left hanging.
SEND_TIMEOUT_S = 2.5


class FeedbackSink(Protocol):
    """Anything that delivers a Feedback (raises ``TimeoutError`` when it could not in time)."""

    async def send(self, feedback: Feedback) -> None: ...


class KafkaFeedback:
    """Feedback onto ``moderation.feedback.v1`` through the actioner's retrying publisher."""

    def __init__(self, kafka: KafkaSettings, publisher: Publisher | None = None) -> None:
        self.topic = FEEDBACK.name_for(kafka.topic_suffix)
        self.publisher = publisher or Publisher(lambda: kafka_producer(kafka), service="bots")

    async def send(self, feedback: Feedback) -> None:
        """Deliver ``feedback``, waiting at most ``SEND_TIMEOUT_S`` for the broker."""
        record = Outgoing(self.topic, feedback.to_json_bytes(), feedback.message_id.encode())
        await asyncio.wait_for(self.publisher.send_all([record]), SEND_TIMEOUT_S)

    async def close(self) -> None:
        await self.publisher.stop()

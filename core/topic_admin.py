"""Create the catalog's topics (``schemas.topics.TOPICS``) on the broker, idempotently."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.clients import kafka_admin
from core.errors import StackError
from core.settings import KafkaSettings
from schemas.topics import TOPICS, TopicSpec

logger = logging.getLogger(__name__)

_CREATE_TIMEOUT_MS = 30_000


async def create_topics(
    kafka: KafkaSettings, suffix: str | None = None, specs: Sequence[TopicSpec] = TOPICS
) -> list[str]:
    """Create the topics that do not exist yet; return the names created now.

    Names get ``suffix`` when given (tests pass a unique one), else ``kafka.topic_suffix``.
    Topics that already exist are left as they are. One CreateTopics request does it all, so
    a test can call this per test.
    """
    from aiokafka.admin import NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    effective = kafka.topic_suffix if suffix is None else suffix
    new_topics = [
        NewTopic(
            name=spec.name_for(effective),
            num_partitions=spec.partitions,
            replication_factor=kafka.replication_factor,
            topic_configs=spec.config(),
        )
        for spec in specs
    ]

    admin = kafka_admin(kafka)
    try:
        await admin.start()
        response = await admin.create_topics(new_topics, timeout_ms=_CREATE_TIMEOUT_MS)
    except KafkaError as exc:
        raise StackError(f"cannot create topics on {kafka.bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()

    created: list[str] = []
    problems: list[str] = []
    # (topic, error_code[, error_message]) for every CreateTopics response version.
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        if code == 0:
            created.append(topic)
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else error.__name__
        problems.append(f"{topic}: {message}")
    if problems:
        raise StackError(
            f"cannot create topics on {kafka.bootstrap_servers}:\n  " + "\n  ".join(problems)
        )
    if created:
        logger.debug("created topics %s", ", ".join(created))
    return created


class TopicEnds:
    """How many records a topic holds (its end offsets summed; for topics never compacted),
    asked of one consumer for as long as the context lasts.

    Asking often (a benchmark waiting for a drain) should keep one: a client per question
    costs a connection, a metadata round trip and a teardown, for the broker as well.
    """

    def __init__(self, kafka: KafkaSettings, spec: TopicSpec) -> None:
        from aiokafka import TopicPartition

        from core.clients import kafka_consumer

        self.consumer = kafka_consumer(kafka, group_id=None)
        name = spec.name_for(kafka.topic_suffix)
        self.partitions = [TopicPartition(name, p) for p in range(spec.partitions)]

    async def __aenter__(self) -> TopicEnds:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def size(self) -> int:
        ends = await self.consumer.end_offsets(self.partitions)
        return sum(ends.values())


async def topic_size(kafka: KafkaSettings, spec: TopicSpec) -> int:
    """How many records the topic holds now (one question: :class:`TopicEnds`)."""
    async with TopicEnds(kafka, spec) as ends:
        return await ends.size()

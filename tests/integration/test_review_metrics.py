"""The review service's outcome metrics on the real database: each dispute it takes is counted by
what became of it (warden_disputes_total), each moderator's decision once it is committed
(warden_reviews_total), and a decision that is refused (a second overturn) not at all; the
overturn rate of the outcomes dashboard comes from these two.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY
from pydantic import SecretStr
from reviewkit import DISCORD_TOKEN, seed_timeout, snowflake

from actioners.database import Database
from actioners.executors import Router
from actioners.platforms.discord import DiscordExecutor
from actioners.publisher import Publisher
from actioners.review.intake import Intake
from actioners.review.resolutions import ResolutionError, Resolver
from core import metrics
from core.clients import kafka_producer
from core.settings import DiscordSettings, Settings
from devkit.platforms.discord import DiscordServer
from schemas.events import Feedback, FeedbackKind, Platform
from schemas.topics import FEEDBACK


@pytest.fixture(autouse=True)
def fresh_community_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Label communities from scratch: other tests in this process may have named 20 already."""
    monkeypatch.setattr(metrics, "COMMUNITIES", metrics.CommunityLabels(20))


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[DiscordServer]:
    fake = DiscordServer()
    await fake.start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def publisher(settings: Settings) -> AsyncIterator[Publisher]:
    publisher = Publisher(lambda: kafka_producer(settings.kafka), service="review")
    await publisher.start()
    yield publisher
    await publisher.stop()


def counted(name: str, community: str, outcome: str) -> float:
    labels = {"community": f"discord:{community}", "outcome": outcome}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def record(settings: Settings, offset: int, feedback: Feedback) -> ConsumerRecord[bytes, bytes]:
    value = feedback.to_json_bytes()
    topic = FEEDBACK.name_for(settings.kafka.topic_suffix)
    return ConsumerRecord(topic, 0, offset, 0, 0, None, value, None, 0, len(value), ())


def dispute(feedback_id: str, message_id: str, guild: str, user: str) -> Feedback:
    return Feedback(
        feedback_id=feedback_id,
        kind=FeedbackKind.DISPUTE,
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        user=user,
        reason="that was a joke",
        created_at=datetime.now(UTC),
        source="discord",
    )


async def test_disputes_and_decisions_are_counted_once_each(
    migrated: Settings,
    settings: Settings,
    db: Database,
    discord: DiscordServer,
    publisher: Publisher,
) -> None:
    guild, author = snowflake(), snowflake()
    overturned = await seed_timeout(settings, discord, guild, author, "you absolute clown")
    upheld = await seed_timeout(settings, discord, guild, author, "and you too")
    intake = Intake(settings, db, publisher)
    # Feedback ids are unique in the database, across runs too.
    first, other, third = (f"dsp-{snowflake()}" for _ in range(3))
    await intake.handle(
        [
            record(settings, 0, dispute(first, overturned, guild, author)),
            record(settings, 1, dispute(first, overturned, guild, author)),  # redelivered
            record(settings, 2, dispute(other, overturned, guild, snowflake())),  # not theirs
            record(settings, 3, dispute(third, upheld, guild, author)),
        ]
    )
    assert counted("warden_disputes_total", guild, "opened") == 2
    assert counted("warden_disputes_total", guild, "repeat") == 1
    assert counted("warden_disputes_total", guild, "not_the_author") == 1

    executor = Router(
        {
            Platform.DISCORD: DiscordExecutor(
                DiscordSettings(token=SecretStr(DISCORD_TOKEN), api_base_url=discord.base_url)
            )
        }
    )
    await executor.start()
    resolver: Any = Resolver(settings, db, executor, publisher)
    mine = [("discord", guild)]
    try:
        await resolver.overturn("mod", overturned, mine, "a joke between friends")
        with pytest.raises(ResolutionError, match="already overturned"):
            await resolver.overturn("mod", overturned, mine, "again")
        await resolver.uphold("mod", upheld, mine, "fair")
    finally:
        await resolver.close()
        await executor.close()
    assert counted("warden_reviews_total", guild, "overturned") == 1
    assert counted("warden_reviews_total", guild, "upheld") == 1

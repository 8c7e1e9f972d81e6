"""Fixtures for tests against the real local stack (`warden stack up`): Kafka, Redis, Postgres.

Every test gets its own topics (a unique suffix) and so its own consumer groups; services run as
real processes (`python -m warden <service>`) configured only through the environment.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from kit import REPO, Service, service_env

from core.clients import kafka_producer
from core.settings import Settings, load_settings
from core.topic_admin import create_topics
from devkit.processes import stop_all

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from actioners.database import Database

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder needs the stack: mark it ``integration``, new files included.

    A hook sees the whole session's items, so only those under this folder are marked; the fast
    tier (``make unit``: ``-m "not integration"``) then never needs a server.
    """
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Settings:
    """The local stack's settings; fails (never skips) when a server does not answer."""
    settings = load_settings()
    problems = []
    host, _, port = settings.kafka.bootstrap_list[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        problems.append(f"Kafka at {host}:{port}: {exc}")
    try:
        psycopg.connect(settings.postgres.dsn.get_secret_value(), connect_timeout=3).close()
    except psycopg.Error as exc:
        problems.append(f"Postgres: {exc}")
    if problems:
        pytest.fail("the local stack is not running (`warden stack up`): " + "; ".join(problems))
    return settings


@pytest.fixture
def suffix(stack: Settings) -> str:
    """A unique topic suffix with all the catalog's topics created for it."""
    value = f".t{uuid.uuid4().hex[:10]}"
    asyncio.run(create_topics(stack.kafka, value))
    return value


@pytest.fixture
def settings(stack: Settings, suffix: str) -> Settings:
    return stack.model_copy(
        update={"kafka": stack.kafka.model_copy(update={"topic_suffix": suffix})}
    )


@pytest.fixture
def service_factory(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start `warden <service>` processes against this test's topics; stopped at teardown."""
    started: list[Service] = []

    def start(name: str, *args: str, **env: str) -> Service:
        log = tmp_path / f"{name}-{len(started)}.log"
        service = Service.spawn(name, *args, env=service_env(settings, **env), log=log, cwd=REPO)
        started.append(service)
        return service

    yield start
    # Signalled together, so that they shut down in parallel (a scorer takes seconds).
    stop_all(started, timeout_s=30)


@pytest_asyncio.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = kafka_producer(settings.kafka)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="module")
def migrated(stack: Settings) -> Settings:
    """The stack with every migration applied (once per test module)."""
    from deploy import migrations

    migrations.apply(stack)
    return stack


@pytest_asyncio.fixture
async def db(migrated: Settings) -> AsyncIterator[Database]:
    """The actioner's database on the migrated stack."""
    from actioners.database import Database

    database = await Database.connect(migrated.postgres)
    yield database
    await database.close()


@pytest_asyncio.fixture
async def redis(migrated: Settings) -> AsyncIterator[aioredis.Redis]:
    """A Redis client of the stack."""
    from core.clients import redis_client

    client = redis_client(migrated.redis)
    yield client
    await client.aclose()

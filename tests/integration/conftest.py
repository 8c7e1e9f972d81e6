"""Fixtures for tests against the real local stack (`warden stack up`): Kafka, Redis, Postgres.

Every test gets its own topics (a unique suffix) and so its own consumer groups; services run as
real processes (`python -m warden.cli <service>`) configured only through the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.topics import create_topics
from warden.clients import kafka_consumer, kafka_producer
from warden.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        {
            "WARDEN_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "WARDEN_KAFKA__TOPIC_SUFFIX": settings.kafka.topic_suffix,
            "WARDEN_POSTGRES__DSN": settings.postgres.dsn.get_secret_value(),
            "WARDEN_REDIS__URL": settings.redis.url.get_secret_value(),
            "WARDEN_METRICS__SCORER_PORT": str(free_port()),
            "WARDEN_METRICS__ACTIONER_PORT": str(free_port()),
            "WARDEN_METRICS__INGEST_PORT": str(free_port()),
            "WARDEN_SCORER__WEB_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Service:
    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def service_factory(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start `warden <service>` processes against this test's topics; stopped at teardown."""
    started: list[Service] = []

    def start(name: str, *args: str, **env: str) -> Service:
        log = tmp_path / f"{name}-{len(started)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "warden.cli", name, *args],
            env=service_env(settings, **env),
            cwd=REPO,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        service = Service(name, process, log)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest_asyncio.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = kafka_producer(settings.kafka)
    await producer.start()
    yield producer
    await producer.stop()


async def consume(
    settings: Settings,
    topic: str,
    *,
    count: int,
    timeout_s: float = 90.0,
    services: list[Service] | None = None,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the beginning until ``count`` records (or the time-out)."""
    consumer: AIOKafkaConsumer = kafka_consumer(settings.kafka, topic, group_id=None)
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(json.loads(r.value) for r in batch if r.value is not None)
            for service in services or []:
                if not service.alive():
                    raise AssertionError(f"{service.name} died:\n{service.log.read_text()[-3000:]}")
    finally:
        await consumer.stop()
    return records


async def topic_size(settings: Settings, topic: str) -> int:
    """How many records a topic holds (end offsets; the test topics are never compacted)."""
    consumer = kafka_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster metadata
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()

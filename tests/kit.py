"""Helpers shared by the integration tests: service processes, topic reads, free ports."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from core.clients import kafka_consumer
from core.net import free_port
from core.settings import Settings
from devkit.processes import ServiceProcess
from schemas.events import Feedback, FeedbackKind, Platform
from schemas.topics import VERDICTS, TopicSpec

REPO = Path(__file__).resolve().parents[1]


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
            # Tests act on fresh communities from their first verdict; first-day mode (the
            # default: act on nothing until go-live) has tests of its own that turn it on.
            "WARDEN_ACTIONER__FIRST_DAY": "off",
            # Scorers run the shipped model whatever a developer promoted; the registry's
            # tests follow a registry of their own.
            "WARDEN_MODEL__FOLLOW_REGISTRY": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


# A `warden <service>` process: the helper `warden run` and `warden bench` use too (spawn with a
# log file, ready by its metrics, stop with its exit code).
Service = ServiceProcess


async def consume(
    settings: Settings,
    topic: str,
    *,
    count: int,
    timeout_s: float = 90.0,
    services: list[Service] | None = None,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the beginning until ``count`` records, or until ``until`` says the
    records read so far are enough (or the time-out)."""
    consumer: AIOKafkaConsumer = kafka_consumer(settings.kafka, topic, group_id=None)
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(json.loads(r.value) for r in batch if r.value is not None)
            if until is not None and batches and until(records):
                break
            for service in services or []:
                if not service.alive():
                    raise AssertionError(f"{service.name} died:\n{service.log.read_text()[-3000:]}")
    finally:
        await consumer.stop()
    return records


async def consume_covering(
    settings: Settings,
    topic: str,
    message_ids: set[str],
    *,
    services: list[Service],
    timeout_s: float = 180.0,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the beginning until every one of ``message_ids`` has a record
    (redelivered ones are read, and returned, as often as they are there)."""
    return await consume(
        settings,
        topic,
        count=10 * len(message_ids),
        services=services,
        timeout_s=timeout_s,
        until=lambda found: {r["message_id"] for r in found} >= message_ids,
    )


async def group_lag(settings: Settings, service: str, topic: TopicSpec) -> int | None:
    """Records of ``topic`` (this test's) that ``service``'s consumer group has not committed
    yet; None while the group has committed nothing."""
    from aiokafka import TopicPartition

    from core.clients import group_id, kafka_admin

    name = topic.name_for(settings.kafka.topic_suffix)
    partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
    admin = kafka_admin(settings.kafka)
    consumer = kafka_consumer(settings.kafka, group_id=None)
    try:
        await admin.start()
        await consumer.start()
        committed = await admin.list_consumer_group_offsets(group_id(settings.kafka, service))
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    if not committed:
        return None
    return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())


async def settled_actions(
    settings: Settings,
    actioner: Service,
    *,
    message_prefix: str | None = None,
    communities: Sequence[str] = (),
    topics: Sequence[TopicSpec] = (VERDICTS,),
    timeout_s: float = 90.0,
) -> int:
    """Wait until the actioner has decided every record on this test's ``topics`` (its group
    has committed them all: decisions are in the ledger before the commit) and published every
    result it decided (the ledger holds nothing open or unpublished for the messages starting
    with ``message_prefix`` or in ``communities``); the number of results it published. What
    the actions topic then holds is all there will be: a test reads exactly that many instead
    of waiting out a time-out for a count it cannot know. Entries due later (a raid mode's
    end) are neither waited for nor counted."""
    import psycopg

    if message_prefix is not None:
        where = "message_id LIKE %s"
        value: Any = message_prefix.replace("_", r"\_").replace("%", r"\%") + "%"
    else:
        where, value = "community = ANY(%s)", list(communities)
    deadline = time.monotonic() + timeout_s
    dsn = settings.postgres.dsn.get_secret_value()
    while True:
        if not actioner.alive():
            raise AssertionError(f"{actioner.name} died:\n{actioner.log_tail()}")
        lags = [await group_lag(settings, "actioner", topic) for topic in topics]
        if all(lag == 0 for lag in lags):
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE state IN ('pending', 'in_flight')"
                    " OR NOT published), count(*) FROM action_ledger"
                    f" WHERE {where} AND NOT (state = 'pending' AND due_at > now())",
                    (value,),
                )
                row = await cur.fetchone()
            if row is not None and row[0] == 0:
                return int(row[1])
        if time.monotonic() > deadline:
            raise AssertionError(f"actions not settled after {timeout_s:.0f} s (lag {lags})")
        await asyncio.sleep(0.3)


class ThrowawayKafka:
    """A second single-node Kafka (KRaft) in its own directory on free ports, for tests that
    stop and restart a broker; the shared stack's broker is never touched.

    Started from the same cached jars and templates as `warden stack up` (deploy/stack/).
    ``start``/``stop`` block (seconds, a JVM starts); call them through ``asyncio.to_thread``
    from async code.
    """

    def __init__(self, root: Path, settings: Settings) -> None:
        from deploy.stack import Paths, kafka_version

        stack = settings.stack.model_copy(
            update={"dir": root, "kafka_port": free_port(), "kafka_controller_port": free_port()}
        )
        libs = stack.cache_dir.expanduser().resolve() / f"kafka-{kafka_version()}" / "libs"
        self.stack = stack
        self.paths = Paths(root=root, libs=libs, pg_root=root / "postgres")
        self.kafka = settings.kafka.model_copy(
            update={"bootstrap_servers": f"127.0.0.1:{stack.kafka_port}"}
        )
        self.pid: int | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        import asyncio

        from deploy.stack import kafka_server, processes

        self.pid = kafka_server.start(self.stack, self.paths)
        processes.wait_until(
            "kafka",
            lambda: (
                processes.port_open(self.stack.kafka_port)
                and asyncio.run(kafka_server.answers(self.kafka))
            ),
            self.paths,
            self.pid,
            timeout_s,
        )

    def stop(self) -> None:
        from deploy.stack import processes

        if self.pid is not None:
            processes.terminate(self.pid)
            self.pid = None


class ThrowawayPostgres:
    """A second PostgreSQL in its own directory on a free port below the ephemeral range, for
    tests that stop and restart the database; the shared stack's server is never touched.

    Initialised and started by the same helpers as `warden stack up` (deploy/stack/), with a
    ``warden`` role and database, migrated. ``start``/``stop`` block (a second or two); call them
    through ``asyncio.to_thread`` from async code. ``remove`` stops it and deletes its data.
    """

    def __init__(self, root: Path, settings: Settings) -> None:
        from pydantic import SecretStr

        from deploy.stack.paths import Paths, pg_root

        root = root.resolve()
        self.stack = settings.stack.model_copy(update={"dir": root, "postgres_port": free_port()})
        self.paths = Paths(root=root, libs=root / "libs", pg_root=pg_root(root))
        self.dsn = f"postgresql://warden@127.0.0.1:{self.stack.postgres_port}/warden"
        self.settings = settings.model_copy(
            update={"postgres": settings.postgres.model_copy(update={"dsn": SecretStr(self.dsn)})}
        )
        self.pid: int | None = None
        self._prepared = False

    def start(self, timeout_s: float = 60.0) -> None:
        from deploy import migrations
        from deploy.stack import postgres_server, processes

        root = self.paths.root
        root.mkdir(parents=True, exist_ok=True)
        self.pid = postgres_server.start(self.stack, self.paths)
        processes.wait_until(
            "postgres",
            lambda: postgres_server.answers(self.stack),
            self.paths,
            self.pid,
            timeout_s,
        )
        if not self._prepared:
            postgres_server.ensure_database(self.stack, "warden", "warden")
            migrations.apply(self.settings)
            self._prepared = True

    def stop(self) -> None:
        from deploy.stack import postgres_server, processes

        pid = self.pid or processes.read_pid(self.paths.pg_data / "postmaster.pid")
        if pid is not None:
            postgres_server.stop(self.paths, pid)
        self.pid = None

    def remove(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.paths.pg_root, ignore_errors=True)


def run_warden(
    settings: Settings, *args: str, timeout_s: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m warden *args`` against this test's topics, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "warden", *args],
        env=service_env(settings, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def review(verdict_id: str, community: str, toxic: bool, moderator: str = "mod1") -> Feedback:
    """A moderator's review of a Discord message (``moderation.feedback.v1``)."""
    return Feedback(
        feedback_id=f"r-{verdict_id}-{moderator}",
        kind=FeedbackKind.REVIEW,
        message_id=verdict_id,
        platform=Platform.DISCORD,
        community=community,
        user=moderator,
        label_toxic=toxic,
        created_at=datetime.now(UTC),
    )

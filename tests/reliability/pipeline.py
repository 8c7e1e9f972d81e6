"""The whole pipeline on a throwaway stack, for fault trials.

A :class:`ChaosStack` is a second local stack (Kafka, Redis, PostgreSQL started by
``deploy.stack`` in the test's own directory, on free ports below the ephemeral range) whose
servers a trial may stop and start at will; the shared stack of the other tests is never
touched. A :class:`Trial` runs ``warden scorer`` and ``warden actioner`` (against a fake Discord
that counts every call) and ``warden ingest replay`` as real processes on one topic suffix,
injects a fault while the replay runs, and then counts what came out:

* every message the replay accepted has a verdict (``lost`` counts the ones that do not);
* no platform action happened twice: every mutating call to the fake Discord (delete, DM,
  timeout, kick, ban) is counted per target, and each stream user is unique, so a second call
  for a target is a repeat;
* no action result was published twice (``action_id`` on ``moderation.actions.v1``);
* the services are alive and ready (``warden_ready 1``) afterwards, and stop promptly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from fakes.discord import DISCORD_LIMITS, FakeDiscord, Limit
from kit import REPO, Service, service_env
from pydantic import SecretStr

from core.clients import group_id, kafka_admin, kafka_consumer, kafka_producer
from core.net import free_port
from core.settings import Settings
from devkit.processes import ServiceFailed, ServiceNotReady, wait_ready
from schemas.topics import ACTIONS, CHAT_MESSAGES, DEADLETTER, VERDICTS

SAMPLE = REPO / "ingest" / "samples" / "livestream.jsonl"
DISCORD_TOKEN = "chaos-discord-token"
# Buckets of the fake Discord that change something on the platform.
MUTATING = {
    "message-delete",
    "bulk-delete",
    "member-modify",
    "member-kick",
    "ban",
    "message-create",
}


class ChaosStack:
    """A throwaway Kafka + Redis + PostgreSQL whose servers a trial may stop and start."""

    SERVERS = ("kafka", "redis", "postgres")

    def __init__(self, root: Path, base: Settings) -> None:
        from deploy.stack import local_settings

        stack = base.stack.model_copy(
            update={
                "dir": root,
                "kafka_port": free_port(),
                "kafka_controller_port": free_port(),
                "redis_port": free_port(),
                "postgres_port": free_port(),
            }
        )
        settings = base.model_copy(update={"stack": stack})
        settings = local_settings(settings)
        redis = settings.redis.model_copy(
            update={"url": SecretStr(f"redis://127.0.0.1:{stack.redis_port}/0")}
        )
        self.settings = settings.model_copy(update={"redis": redis})

    def up(self) -> None:
        """Start whatever is not running and wait until every server answers (blocking)."""
        from deploy import stack

        stack.up(self.settings)

    def down(self) -> None:
        """Stop every server and remove PostgreSQL's data, which may live outside the test's
        directory (``deploy.stack.paths.pg_root``: the postgres user must be able to enter it)."""
        from deploy import stack

        stack.down(self.settings)
        paths = stack.Paths.of(self.settings.stack)
        if not paths.pg_root.is_relative_to(paths.root):
            shutil.rmtree(paths.pg_root, ignore_errors=True)

    def stop(self, server: str, *, kill: bool = False) -> None:
        """Stop one server (SIGTERM, or SIGKILL with ``kill``); blocking."""
        from deploy.stack import Paths, postgres_server, processes

        paths = Paths.of(self.settings.stack)
        pid = processes.running_pid(paths, server)
        if pid is None:
            raise AssertionError(f"{server} is not running")
        if kill:
            processes.send_signal(pid, signal.SIGKILL)
            processes.wait_gone(pid, 10)
            if server == "postgres":
                # The postmaster's children outlive it for a moment; pg_ctl cleans up.
                postgres_server.stop(paths, pid)
        elif server == "postgres":
            postgres_server.stop(paths, pid)
        else:
            processes.terminate(pid)
        paths.pidfile(server).unlink(missing_ok=True)


def stream(path: Path, count: int, *, prefix: str, guild: str) -> list[str]:
    """Write ``count`` lines of the sample livestream as Discord chat; returns their ids.

    Each line gets its own author, so that every platform action has its own target and a
    second call for one target can only be a repeat.
    """
    sample = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    ids = []
    with path.open("w") as out:
        for i in range(count):
            record = dict(sample[i % len(sample)])
            record.update(
                message_id=f"{prefix}{i:06d}",
                platform="discord",
                community=guild,
                channel=str(5000 + i % 4),
                user=str(10**15 + i),
                reply_to=None,
            )
            ids.append(record["message_id"])
            out.write(json.dumps(record) + "\n")
    return ids


@dataclass
class Outcome:
    """What a trial measured; the report's row."""

    trial: str
    fault: str
    messages: int
    outage_s: float
    replay_exit: int | None = None
    replay_summary: str = ""
    verdicts: int = 0
    lost: int = 0
    lost_detail: list[str] = field(default_factory=list)
    duplicate_verdicts: int = 0
    conflicting_duplicates: int = 0
    degraded_verdicts: int = 0
    dead_letters: int = 0
    actions_done: int = 0
    platform_calls: int = 0
    repeated_platform_calls: int = 0
    results_published_twice: int = 0
    longest_verdict_gap_s: float = 0.0
    ready_after: dict[str, bool] = field(default_factory=dict)
    alive_after: dict[str, bool] = field(default_factory=dict)
    stop_seconds: dict[str, float] = field(default_factory=dict)
    log_lines: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return asdict(self)


Fault = Callable[["Trial"], Awaitable[None]]


class Trial:
    """One pipeline run on a :class:`ChaosStack` with one fault injected while it runs."""

    def __init__(
        self,
        name: str,
        chaos: ChaosStack,
        workdir: Path,
        *,
        messages: int,
        rate: float,
        outage_s: float,
        fault_name: str,
    ) -> None:
        self.name = name
        self.chaos = chaos
        self.workdir = workdir
        suffix = f".c{uuid.uuid4().hex[:10]}"
        base = chaos.settings
        self.settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"topic_suffix": suffix})}
        )
        self.messages = messages
        self.rate = rate
        self.outage_s = outage_s
        self.guild = str(900_000_000_000 + int(uuid.uuid4().hex[:8], 16))
        self.prefix = f"{name}-{uuid.uuid4().hex[:6]}-"
        # Rate limits are another test's subject (tests/integration/test_actioner.py): here
        # they would only stretch the trial (Discord allows 10 timeouts per 10 s per guild).
        self.discord = FakeDiscord(
            DISCORD_TOKEN,
            limits={bucket: Limit(10_000, 1.0) for bucket in DISCORD_LIMITS},
            global_limit=None,
        )
        self.services: dict[str, Service] = {}
        self.ports: dict[str, int] = {}
        self.outcome = Outcome(name, fault_name, messages, outage_s)
        self.fault_started: float | None = None
        self.fault_ended: float | None = None

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str, **env: str) -> Service:
        log = self.workdir / f"{self.name}-{name}.log"
        port = free_port()
        role = {"scorer": "SCORER", "actioner": "ACTIONER"}.get(name, "INGEST")
        self.ports[name] = port
        service = Service.spawn(
            *args,
            name=name,
            env=service_env(self.settings, **{f"WARDEN_METRICS__{role}_PORT": str(port), **env}),
            log=log,
            cwd=REPO,
            metrics_port=port,
        )
        self.services[name] = service
        return service

    async def start(self) -> None:
        from core.topic_admin import create_topics

        await create_topics(self.settings.kafka, self.settings.kafka.topic_suffix)
        await self.discord.start()
        self._spawn("scorer", "scorer")
        self._spawn(
            "actioner",
            "actioner",
            WARDEN_ACTIONER__EXECUTOR="discord",
            WARDEN_PLATFORMS__DISCORD__TOKEN=DISCORD_TOKEN,
            WARDEN_PLATFORMS__DISCORD__API_BASE_URL=self.discord.base_url,
            WARDEN_ACTIONER__BACKOFF_BASE_S="0.05",
        )
        await self.wait_ready(("scorer", "actioner"), timeout_s=240)

    async def wait_ready(self, names: tuple[str, ...], timeout_s: float) -> bool:
        """True once all are ready, False after ``timeout_s``; a service that died fails."""
        try:
            await wait_ready([self.services[name] for name in names], timeout_s)
        except ServiceNotReady:
            return False
        except ServiceFailed as exc:
            raise AssertionError(f"a service died: {exc}") from exc
        return True

    # -- the run -----------------------------------------------------------------------------

    async def run(self, fault: Fault, *, fault_at: float = 0.3) -> Outcome:
        """Replay the stream, inject ``fault`` at ``fault_at`` of the replay, count the rest."""
        path = self.workdir / f"{self.name}.jsonl"
        ids = stream(path, self.messages, prefix=self.prefix, guild=self.guild)
        replay = self._spawn("replay", "ingest", "replay", str(path), "--rate", str(self.rate))
        await asyncio.sleep(self.messages / self.rate * fault_at)
        self.fault_started = time.monotonic()
        await fault(self)
        self.fault_ended = time.monotonic()
        replay_timeout = self.messages / self.rate + self.outage_s + 240
        code = await asyncio.to_thread(replay.process.wait, replay_timeout)
        self.outcome.replay_exit = code
        lines = replay.log.read_text().splitlines()
        self.outcome.replay_summary = (
            next(
                (line for line in reversed(lines) if line.startswith("replayed")), lines[-1:] or ""
            )
            if lines
            else ""
        )
        await self._count_verdicts(set(ids))
        await self._settle_actions()
        await self._count_actions()
        await self._finish()
        return self.outcome

    async def inject_records(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        """Write raw (key, value) records straight to a topic, past every schema."""
        producer: AIOKafkaProducer = kafka_producer(
            self.settings.kafka, max_request_size=8 * 1024 * 1024
        )
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(
                    topic + self.settings.kafka.topic_suffix, value, key=key
                )
        finally:
            await producer.stop()

    async def _read(
        self, topic: str, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float
    ) -> list[dict[str, Any]]:
        consumer = kafka_consumer(self.settings.kafka, topic, group_id=None)
        await consumer.start()
        records: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                got = [r for batch in batches.values() for r in batch]
                records.extend(json.loads(r.value) for r in got if r.value is not None)
                if not got and until(records):
                    break
        finally:
            await consumer.stop()
        return records

    async def _where_lost(self, missing: set[str]) -> list[str]:
        """Where the messages without a verdict are on the chat topic, against the scorer's
        committed offsets: lost before the broker, or skipped by the scorer."""
        suffix = self.settings.kafka.topic_suffix
        consumer = kafka_consumer(
            self.settings.kafka, CHAT_MESSAGES.name_for(suffix), group_id=None
        )
        await consumer.start()
        found: dict[str, str] = {}
        try:
            while batches := await consumer.getmany(timeout_ms=2000, max_records=5000):
                for tp, records in batches.items():
                    for r in records:
                        message_id = json.loads(r.value).get("message_id") if r.value else None
                        if message_id in missing:
                            found[message_id] = f"{tp.partition}@{r.offset}"
        finally:
            await consumer.stop()
        admin = kafka_admin(self.settings.kafka)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(
                group_id(self.settings.kafka, "scorer")
            )
        finally:
            await admin.close()
        marks = ", ".join(f"{tp.partition}:{meta.offset}" for tp, meta in sorted(committed.items()))
        return [
            f"{m}: {found.get(m, 'not on the chat topic')} (scorer committed {marks})"
            for m in sorted(missing)[:10]
        ]

    async def _count_verdicts(self, expected: set[str]) -> None:
        suffix = self.settings.kafka.topic_suffix

        def complete(found: list[dict[str, Any]]) -> bool:
            return expected <= {v["message_id"] for v in found}

        found = await self._read(VERDICTS.name_for(suffix), complete, timeout_s=300)
        mine = [v for v in found if v["message_id"] in expected]
        ids = Counter(v["message_id"] for v in mine)
        decisions: dict[str, set[tuple[str, bool]]] = {}
        for v in mine:
            decisions.setdefault(v["message_id"], set()).add((v["severity"], v["flagged"]))
        out = self.outcome
        out.verdicts = len(ids)
        out.lost = len(expected - set(ids))
        if out.lost:
            try:
                out.lost_detail = await self._where_lost(expected - set(ids))
            except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the loss
                out.lost_detail = [f"not looked up ({exc!r})"]
        out.duplicate_verdicts = sum(n - 1 for n in ids.values())
        out.conflicting_duplicates = sum(1 for d in decisions.values() if len(d) > 1)
        out.degraded_verdicts = sum(1 for v in mine if v.get("degraded"))
        scored = sorted(datetime.fromisoformat(v["scored_at"]).timestamp() for v in mine)
        out.longest_verdict_gap_s = round(
            max((b - a for a, b in itertools.pairwise(scored)), default=0.0), 2
        )
        dead = await self._read(DEADLETTER.name_for(suffix), lambda _: True, timeout_s=5)
        out.dead_letters = len(dead)

    async def _settle_actions(self, timeout_s: float = 180) -> None:
        """Wait until the ledger holds nothing unfinished or unpublished for this guild."""
        dsn = self.settings.postgres.dsn.get_secret_value()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=3) as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FILTER (WHERE state IN ('pending', 'in_flight')"
                        " OR NOT published), count(*) FROM action_ledger WHERE community = %s",
                        (self.guild,),
                    )
                    row = await cur.fetchone()
            except psycopg.OperationalError:
                row = None
            # Nothing open in the ledger is not enough: verdicts the actioner has not read yet
            # (it is catching up after an outage) have no ledger rows at all.
            if row is not None and row[0] == 0 and row[1] > 0 and await self._actioner_lag() == 0:
                return
            await asyncio.sleep(1)
        self.outcome.notes.append(f"actions not settled after {timeout_s:.0f} s")

    async def _actioner_lag(self) -> int | None:
        """Verdicts the actioner's consumer group has not committed yet (None: unknown)."""
        from aiokafka import TopicPartition
        from aiokafka.errors import KafkaError

        kafka = self.settings.kafka
        topic = VERDICTS.name_for(kafka.topic_suffix)
        partitions = [TopicPartition(topic, p) for p in range(VERDICTS.partitions)]
        admin = kafka_admin(kafka)
        consumer = kafka_consumer(kafka, group_id=None)
        try:
            await admin.start()
            await consumer.start()
            committed = await admin.list_consumer_group_offsets(group_id(kafka, "actioner"))
            ends = await consumer.end_offsets(partitions)
        except KafkaError:
            return None
        finally:
            await consumer.stop()
            await admin.close()
        return sum(
            end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
        )

    async def _count_actions(self) -> None:
        suffix = self.settings.kafka.topic_suffix
        results = await self._read(ACTIONS.name_for(suffix), lambda _: True, timeout_s=10)
        mine = [r for r in results if r["community"] == self.guild]
        per_action = Counter(r["action_id"] for r in mine)
        out = self.outcome
        out.results_published_twice = sum(n - 1 for n in per_action.values())
        done = {r["action_id"] for r in mine if r["status"] == "done"}
        out.actions_done = len(done)
        targets: Counter[tuple[str, str]] = Counter()
        for request in self.discord.requests:
            if request.bucket not in MUTATING or request.status == 429 or request.status >= 500:
                continue
            if request.bucket == "bulk-delete":
                for message in (request.body or {}).get("messages", []):
                    targets[("delete", str(message))] += 1
            elif request.bucket == "message-delete":
                targets[("delete", request.path.rsplit("/", 1)[-1])] += 1
            else:
                # One member (or one DM channel) per stream user, each user acted on once.
                targets[(request.bucket, request.path)] += 1
        out.platform_calls = sum(targets.values())
        out.repeated_platform_calls = sum(n - 1 for n in targets.values())

    async def _finish(self) -> None:
        out = self.outcome
        for name in ("scorer", "actioner"):
            out.alive_after[name] = self.services[name].alive()
        ready = await self.wait_ready(("scorer", "actioner"), timeout_s=60)
        for name in ("scorer", "actioner"):
            out.ready_after[name] = ready or self.services[name].ready()
        for name, service in self.services.items():
            if name == "replay":
                continue
            began = time.monotonic()
            # In a thread: the fake Discord runs on this event loop and must keep answering
            # while the actioner drains.
            code = await asyncio.to_thread(service.stop, signal.SIGTERM)
            out.stop_seconds[name] = round(time.monotonic() - began, 1)
            if code not in (0, -signal.SIGTERM):
                out.notes.append(f"{name} exited with {code} on SIGTERM")
        for name, service in self.services.items():
            out.log_lines[name] = len(service.log.read_text(errors="replace").splitlines())

    async def close(self) -> None:
        for service in self.services.values():
            await asyncio.to_thread(service.stop, signal.SIGKILL)
        await self.discord.close()

    # -- checks ------------------------------------------------------------------------------

    def assert_nothing_lost(self) -> None:
        out = self.outcome
        logs = {n: s.log.read_text(errors="replace")[-3000:] for n, s in self.services.items()}
        assert out.replay_exit == 0, f"replay exited {out.replay_exit}: {logs['replay']}"
        assert out.lost == 0, (
            f"{out.lost} of {out.messages} messages have no verdict: {out.lost_detail}"
        )
        assert out.conflicting_duplicates == 0, out
        assert out.actions_done > 0, f"no action was done: {logs['actioner']}"
        assert out.repeated_platform_calls == 0, out
        assert out.results_published_twice == 0, out
        assert all(out.alive_after.values()), (out.alive_after, logs)
        assert all(out.ready_after.values()), (out.ready_after, logs)
        assert not out.notes, out.notes
        assert max(out.stop_seconds.values()) < 35, out.stop_seconds

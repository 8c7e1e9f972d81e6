"""The actioner on the real stack against fake platforms: verdicts in -> the right actions out.

Each test runs `warden actioner` as a process pointed at a fake Discord (or Slack) server that
runs in the test, and counts what that platform was asked to do and actually did.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from fakes.discord import TOKEN, FakeDiscord, Limit
from fakes.slack import BOT_TOKEN, FakeSlack
from fakes.webhook import SECRET as WEBHOOK_SECRET
from fakes.webhook import FakeWebhook
from kit import Service, ThrowawayKafka, ThrowawayPostgres, consume

from actioners import commands
from actioners.database import Database
from actioners.policy import action_id
from benchmarks.actioner import bench_actioner
from core.clients import kafka_producer
from core.net import free_port
from core.settings import Settings
from core.topic_admin import create_topics, topic_size
from deploy import migrations
from schemas.events import (
    ActionKind,
    ImageFinding,
    Platform,
    Severity,
    Verdict,
    VerdictKind,
)
from schemas.topics import ACTIONS, DEADLETTER, VERDICTS

SENT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
P_TOXIC = {"LOW": 0.35, "MEDIUM": 0.6, "HIGH": 0.9}
# Discord limits opening DM channels hard; tests that warn many users at once relax it.
ROOMY_DMS = {"dm-create": Limit(100, 1.0)}


@pytest.fixture(scope="session")
def migrated(stack: Settings) -> Settings:
    migrations.apply(stack)
    return stack


def snowflake() -> str:
    return str(int(uuid.uuid4().hex[:15], 16))


def verdict(
    message_id: str,
    *,
    community: str,
    user: str,
    channel: str = "100",
    severity: str = "MEDIUM",
    platform: str = "discord",
    roles: tuple[str, ...] = (),
    labels: tuple[str, ...] = (),
) -> Verdict:
    return Verdict(
        message_id=message_id,
        platform=Platform(platform),
        community=community,
        channel=channel,
        user=user,
        user_roles=list(roles),
        text="(redacted)",
        p_toxic=P_TOXIC[severity],
        severity=Severity(severity),
        flagged=severity != "LOW",
        labels=list(labels),
        model_version="test-model-1",
        sent_at=SENT,
        received_at=SENT,
        scored_at=SENT + timedelta(milliseconds=20),
    )


async def publish(settings: Settings, producer: AIOKafkaProducer, verdicts: list[Verdict]) -> None:
    topic = VERDICTS.name_for(settings.kafka.topic_suffix)
    for v in verdicts:
        await producer.send(topic, v.to_json_bytes(), key=v.key.encode())
    await producer.flush()


async def results(
    settings: Settings, count: int, services: list[Service], timeout_s: float = 60
) -> list[dict[str, Any]]:
    found = await consume(
        settings,
        ACTIONS.name_for(settings.kafka.topic_suffix),
        count=count,
        services=services,
        timeout_s=timeout_s,
    )
    assert len(found) >= count, (
        f"only {len(found)} of {count} results:\n{services[0].log.read_text()[-3000:]}"
    )
    return found


def audit(settings: Settings, community: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        cur = conn.execute(
            "SELECT action_id, kind, status, reason, policy_version, model_version, duration_s"
            " FROM action_audit WHERE community = %s ORDER BY action_id",
            (community,),
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


async def with_db(settings: Settings, work: Callable[[Database], Any]) -> Any:
    db = await Database.connect(settings.postgres)
    try:
        return await work(db)
    finally:
        await db.close()


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(limits=ROOMY_DMS)
    await fake.start()
    yield fake
    await fake.close()


def discord_env(fake: FakeDiscord, **extra: str) -> dict[str, str]:
    return {
        "WARDEN_ACTIONER__EXECUTOR": "discord",
        "WARDEN_PLATFORMS__DISCORD__TOKEN": TOKEN,
        "WARDEN_PLATFORMS__DISCORD__API_BASE_URL": fake.base_url,
        "WARDEN_ACTIONER__BACKOFF_BASE_S": "0.05",
        **extra,
    }


def by_message(found: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for r in sorted(found, key=lambda r: r["action_id"]):
        out.setdefault(r["message_id"], []).append((r["kind"], r["status"]))
    return out


async def test_a_strike_sequence_climbs_the_ladder_and_a_pardon_resets_it(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    discord: FakeDiscord,
) -> None:
    guild, user, moderator = snowflake(), snowflake(), snowflake()
    await with_db(
        settings,
        lambda db: commands.set_policy(
            db, "discord", guild, {"exempt_roles+": "moderator"}, author="test"
        ),
    )
    actioner = service_factory("actioner", **discord_env(discord))
    severities = ["MEDIUM", "MEDIUM", "HIGH", "MEDIUM", "MEDIUM"]
    first = [
        verdict(f"{guild}{i}", community=guild, user=user, severity=s)
        for i, s in enumerate(severities)
    ]
    exempt = verdict(f"{guild}9", community=guild, user=moderator, roles=("moderator",))
    safe = verdict(f"{guild}8", community=guild, user=user, severity="LOW")
    await publish(settings, producer, [*first, exempt, safe])

    found = await results(settings, 12, [actioner])
    ids = [v.message_id for v in first]
    assert by_message(found) == {
        ids[0]: [("delete", "done"), ("warn", "done")],
        ids[1]: [("delete", "done"), ("timeout", "done")],
        ids[2]: [("delete", "done"), ("timeout", "done")],
        ids[3]: [("delete", "done"), ("kick", "done")],
        ids[4]: [("ban", "done"), ("delete", "done")],
        exempt.message_id: [("delete", "skipped"), ("warn", "skipped")],
    }
    timeouts = {r["message_id"]: r["duration_s"] for r in found if r["kind"] == "timeout"}
    assert timeouts == {ids[1]: 600, ids[2]: 86400}
    reasons = {r["action_id"]: r["reason"] for r in found}
    assert "strikes 2 -> 4" in reasons[f"{ids[2]}:timeout"]
    assert f"discord:{guild}@v1" in reasons[f"{ids[2]}:timeout"]
    assert "exempt role moderator" in reasons[f"{exempt.message_id}:delete"]

    # What Discord was asked to do, exactly once each; nothing for the moderator.
    effects = discord.effect_counts()
    assert sorted(t for (k, t) in effects if k == "delete") == sorted(ids)
    assert [k for (k, _) in discord.effects if k != "delete"] == [
        "dm",
        "timeout",
        "timeout",
        "kick",
        "ban",
    ]
    assert set(effects.values()) == {1}

    report = await with_db(settings, lambda db: commands.user_strikes(db, "discord", guild, user))
    assert report.active == 6 and report.next_rung.action == "ban"
    # An appeal can see why: the rule, the threshold, the strike count, the versions.
    why = await with_db(settings, lambda db: commands.explain(db, ids[2]))
    assert why.decision["strikes_added"] == 2 and why.decision["strikes_active"] == 4
    assert why.decision["severity"] == "HIGH" and why.decision["shadow"] is False
    assert why.decision["model_version"] == "test-model-1"
    assert [(e.request.kind.value, e.state.value) for e in why.actions] == [
        ("delete", "done"),
        ("timeout", "done"),
    ]
    await with_db(
        settings,
        lambda db: commands.pardon(
            db, "discord", guild, user, moderator="mod-7", reason="appeal accepted"
        ),
    )
    again = verdict(f"{guild}7", community=guild, user=user)
    await publish(settings, producer, [again])
    found = await results(settings, 14, [actioner])
    assert by_message(found)[again.message_id] == [("delete", "done"), ("warn", "done")]
    assert (
        "strikes 0 -> 1" in {r["action_id"]: r["reason"] for r in found}[f"{again.message_id}:warn"]
    )

    rows = audit(settings, guild)
    assert len(rows) == 14
    assert all(r["policy_version"] == f"discord:{guild}@v1" for r in rows)
    assert all(r["model_version"] == "test-model-1" and r["reason"] for r in rows)
    assert actioner.alive()


async def test_shadow_mode_acts_on_nothing_and_records_everything(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    discord: FakeDiscord,
) -> None:
    guild, users = snowflake(), [snowflake(), snowflake()]
    await with_db(
        settings, lambda db: commands.set_policy(db, "discord", guild, {"shadow": True}, author="t")
    )
    actioner = service_factory("actioner", **discord_env(discord))
    verdicts = [
        verdict(f"{guild}{i}", community=guild, user=users[i % 2], severity=s)
        for i, s in enumerate(["MEDIUM", "HIGH", "MEDIUM", "HIGH", "MEDIUM"])
    ]
    await publish(settings, producer, verdicts)

    found = await results(settings, 10, [actioner])
    assert {r["status"] for r in found} == {"skipped"}
    assert all("shadow mode" in r["detail"] and "shadow mode" in r["reason"] for r in found)
    # What would have been done climbs the ladder as it would have: user 0 reaches 1, 2, 3.
    user0 = [
        r["kind"] for r in sorted(found, key=lambda r: r["message_id"]) if r["user"] == users[0]
    ]
    assert [k for k in user0 if k != "delete"] == ["warn", "timeout", "timeout"]
    # Discord was asked for nothing but who we are.
    assert [r.bucket for r in discord.requests] == ["me"]
    assert len(audit(settings, guild)) == 10
    report = await with_db(
        settings, lambda db: commands.user_strikes(db, "discord", guild, users[0])
    )
    assert report.active == 0 and report.shadow == 3


async def test_a_429_storm_is_waited_out_not_dropped(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    fake = FakeDiscord(
        limits={**ROOMY_DMS, "message-delete": Limit(3, 0.5), "message-create": Limit(5, 1.0)},
        global_limit=Limit(25, 1.0),
    )
    await fake.start()
    try:
        fake.storm(30, retry_after=0.3)
        fake.storm(5, retry_after=0.5, is_global=True)
        guild = snowflake()
        actioner = service_factory(
            "actioner", **discord_env(fake, WARDEN_ACTIONER__BULK_DELETE_MIN="100")
        )
        verdicts = [
            verdict(f"{guild}{i}", community=guild, user=snowflake(), channel=str(200 + i % 4))
            for i in range(30)
        ]
        await publish(settings, producer, verdicts)
        found = await results(settings, 60, [actioner], timeout_s=90)
        assert len({r["action_id"] for r in found}) == 60
        assert {r["status"] for r in found} == {"done"}
        assert fake.rate_limited >= 35
        effects = fake.effect_counts()
        assert sorted(t for (k, t) in effects if k == "delete") == sorted(
            v.message_id for v in verdicts
        )
        assert sum(1 for (k, _) in effects if k == "dm") == 30
        assert set(effects.values()) == {1}
        assert fake.count("message-create", 200) == 30  # no DM sent twice
    finally:
        await fake.close()


async def test_killed_mid_stream_and_restarted_every_action_happens_exactly_once(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    fake = FakeDiscord(limits=ROOMY_DMS, global_limit=None, latency_s=0.02)
    await fake.start()
    try:
        guild = snowflake()
        env = discord_env(fake, WARDEN_ACTIONER__COMMUNITY_CONCURRENCY="2")
        first = service_factory("actioner", **env)
        killed = asyncio.Event()

        def kill_while_a_dm_is_sent(kind: str, target: str) -> None:
            # Discord has sent the DM (and deleted some messages); the actioner dies before it
            # hears so, before any bookkeeping or offset commit: the worst moment.
            if kind == "dm" and len(fake.effects) >= 20 and not killed.is_set():
                os.kill(first.process.pid, signal.SIGKILL)
                killed.set()

        fake.on_effect = kill_while_a_dm_is_sent
        verdicts = [
            verdict(f"{guild}{i:03d}", community=guild, user=snowflake(), channel=str(300 + i % 8))
            for i in range(40)
        ]
        await publish(settings, producer, verdicts)
        await asyncio.wait_for(killed.wait(), timeout=60)
        assert first.process.wait(timeout=10) == -signal.SIGKILL
        before = len(fake.effects)
        assert before < 80, "the actioner was to be killed mid-stream"

        second = service_factory("actioner", **env)
        found = await results(settings, 80, [second], timeout_s=90)
        expected = {f"{v.message_id}:{k}" for v in verdicts for k in ("delete", "warn")}
        assert {r["action_id"] for r in found} == expected
        assert {r["status"] for r in found} == {"done"}
        assert any("reconciled after a restart" in r["detail"] for r in found)

        effects = fake.effect_counts()
        assert sorted(t for (k, t) in effects if k == "delete") == sorted(
            v.message_id for v in verdicts
        )
        assert sum(1 for (k, _) in effects if k == "dm") == 40
        assert set(effects.values()) == {1}, [e for e, n in effects.items() if n > 1]
        # Never blindly repeated: one DM request per warning, the interrupted one included.
        assert fake.count("message-create") == 40
        assert len(audit(settings, guild)) == 80
        second.stop()
        # Each result was published once, but a crash between publishing and recording it
        # may publish one again: consumers dedupe by action_id (at-least-once topic).
        assert await topic_size(settings.kafka, ACTIONS) <= 80 + 25
    finally:
        await fake.close()


async def test_a_raid_is_bulk_deleted_and_forbidden_actions_go_to_the_dead_letters(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    discord: FakeDiscord,
) -> None:
    guild = snowflake()
    discord.forbidden_channels.add("666")
    actioner = service_factory("actioner", **discord_env(discord))
    raid = [
        verdict(f"{guild}{i:02d}", community=guild, user=snowflake(), channel="500")
        for i in range(25)
    ]
    locked = verdict(f"{guild}99", community=guild, user=snowflake(), channel="666")
    await publish(settings, producer, [*raid, locked])

    found = await results(settings, 52, [actioner])
    status = {r["action_id"]: r["status"] for r in found}
    assert status.pop(f"{locked.message_id}:delete") == "failed"
    assert set(status.values()) == {"done"}
    # One bulk request (or a few, as batches fall) instead of 25 deletes.
    assert 1 <= discord.count("bulk-delete", 204) <= 3
    assert discord.count("message-delete", 204) < 25 - 2 * 3
    assert sorted(t for (k, t) in discord.effects if k == "delete") == sorted(
        v.message_id for v in raid
    )
    # The forbidden delete was tried once (permanent: no retry) and dead-lettered with why.
    assert discord.count("message-delete", 403) == 1
    dead = await consume(settings, DEADLETTER.name_for(settings.kafka.topic_suffix), count=1)
    assert dead[0]["service"] == "actioner"
    assert "Missing Permissions" in dead[0]["error"]
    assert locked.message_id in dead[0]["raw"]


async def test_slack_deletes_warns_and_waits_out_retry_after(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    fake = FakeSlack()
    await fake.start()
    try:
        fake.storm(3, retry_after=0.5)
        team, user = f"T{snowflake()}", f"U{snowflake()}"
        actioner = service_factory(
            "actioner",
            WARDEN_ACTIONER__EXECUTOR="slack",
            WARDEN_PLATFORMS__SLACK__BOT_TOKEN=BOT_TOKEN,
            WARDEN_PLATFORMS__SLACK__API_BASE_URL=fake.base_url,
        )
        verdicts = [
            verdict(
                f"C1:1700000000.{snowflake()[:6]}{i}",
                community=team,
                user=user,
                channel="C1",
                severity=s,
                platform="slack",
            )
            for i, s in enumerate(["MEDIUM", "MEDIUM"])
        ]
        other = verdict(snowflake(), community=team, user=user)  # not Slack's
        await publish(settings, producer, [*verdicts, other])
        found = await results(settings, 6, [actioner])
        assert by_message(found) == {
            verdicts[0].message_id: [("delete", "done"), ("warn", "done")],
            verdicts[1].message_id: [("delete", "done"), ("timeout", "skipped")],
            other.message_id: [("delete", "skipped"), ("warn", "skipped")],
        }
        assert fake.rate_limited == 3
        assert Counter(k for k, _ in fake.effects) == {"delete": 2, "ephemeral": 1}
    finally:
        await fake.close()


async def test_webhook_actions_are_signed_and_retried(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    hook = FakeWebhook(script=[503, 429])
    await hook.start()
    try:
        channel, user = snowflake(), snowflake()
        actioner = service_factory(
            "actioner",
            WARDEN_ACTIONER__EXECUTOR="webhook",
            WARDEN_PLATFORMS__WEBHOOK__URL=hook.url,
            WARDEN_PLATFORMS__WEBHOOK__SECRET=WEBHOOK_SECRET,
            WARDEN_ACTIONER__BACKOFF_BASE_S="0.05",
        )
        twitch = verdict(snowflake(), community=channel, user=user, platform="twitch")
        await publish(settings, producer, [twitch])
        found = await results(settings, 2, [actioner])
        assert {(r["kind"], r["status"]) for r in found} == {("delete", "done"), ("warn", "done")}
        assert all(d.valid_signature for d in hook.deliveries)
        # One 503 and one 429 answered, then each action acted on once.
        assert len(hook.deliveries) == 4
        assert sorted(hook.acted) == sorted(f"{twitch.message_id}:{k}" for k in ("delete", "warn"))
    finally:
        await hook.close()


async def test_the_bench_runs_the_actioner_against_the_fake_discord(migrated: Settings) -> None:
    numbers = await bench_actioner(migrated, 120, rate_per_s=400.0, timeout_s=60)
    assert numbers["actions"] == 2 * numbers["flagged"] > 0
    assert numbers["actions_done"] == numbers["actions"]
    assert 0 < numbers["latency_p50_s"] <= numbers["latency_p99_s"] < 60
    assert numbers["actions_per_s"] > 0 and numbers["platform_requests"] >= numbers["actions"] / 2


def raw_verdict(v: Verdict, **fields: str) -> bytes:
    """``v`` as JSON with ``fields`` replaced, written as raw bytes (not built by our schema)."""
    document = v.model_dump(mode="json")
    document.update(fields)
    return json.dumps(document).encode()


async def test_records_that_cannot_be_stored_become_dead_letters_and_the_rest_is_acted_on(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    discord: FakeDiscord,
) -> None:
    guild = snowflake()
    topic = VERDICTS.name_for(settings.kafka.topic_suffix)
    good = [verdict(f"{guild}{i:02d}", community=guild, user=snowflake()) for i in range(12)]
    template = verdict(f"{guild}bad", community=guild, user=snowflake())
    # PostgreSQL refuses NUL in text and jsonb. (An id of 200 characters is acted on: the action
    # ids made from it keep its head and a hash, within the schema's 200.)
    poison = [
        raw_verdict(template, message_id=f"{guild}\u0000nul"),
        raw_verdict(template, message_id=f"{guild}nul-user", user="\u0000"),
    ]
    good.append(verdict((guild + "x" * 200)[:200], community=guild, user=snowflake()))
    # All in before the actioner starts, so that they share its first batch.
    for i, v in enumerate(good):
        await producer.send(topic, v.to_json_bytes(), key=v.key.encode())
        if i % 4 == 1 and i // 4 < len(poison):
            await producer.send(topic, poison[i // 4], key=template.key.encode())
    await producer.flush()

    actioner = service_factory("actioner", **discord_env(discord))
    dead = await consume(
        settings,
        DEADLETTER.name_for(settings.kafka.topic_suffix),
        count=2,
        services=[actioner],
    )
    assert len(dead) == 2, actioner.log.read_text()[-3000:]
    assert {d["service"] for d in dead} == {"actioner"}
    assert sorted(json.loads(d["raw"])["message_id"] for d in dead) == sorted(
        json.loads(p)["message_id"] for p in poison
    )
    found = await results(settings, 26, [actioner])
    assert {r["action_id"] for r in found} == {
        action_id(v.message_id, ActionKind(k)) for v in good for k in ("delete", "warn")
    }
    assert all(len(r["action_id"]) <= 200 for r in found)
    # The stream goes on after them, and the good ones were acted on exactly once.
    later = verdict(f"{guild}99", community=guild, user=snowflake())
    await publish(settings, producer, [later])
    found = await results(settings, 28, [actioner])
    assert {r["status"] for r in found} == {"done"} and len(found) == 28
    effects = discord.effect_counts()
    assert sorted(t for (k, t) in effects if k == "delete") == sorted(
        v.message_id for v in [*good, later]
    )
    assert set(effects.values()) == {1}
    assert actioner.alive()


def ready(port: int) -> float | None:
    """warden_ready{service="actioner"} from the actioner's metrics port (None: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith('warden_ready{service="actioner"}'):
            return float(line.split()[-1])
    return None


async def test_a_postgres_outage_is_ridden_out_without_loss_or_repeats(
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    tmp_path: Path,
) -> None:
    database = ThrowawayPostgres(tmp_path / "pg", settings)
    fake = FakeDiscord(limits=ROOMY_DMS, global_limit=None, latency_s=0.01)
    await fake.start()
    try:
        await asyncio.to_thread(database.start)
        port = free_port()
        actioner = service_factory(
            "actioner",
            **discord_env(
                fake,
                WARDEN_POSTGRES__DSN=database.dsn,
                WARDEN_POSTGRES__RECONNECT_MAX_S="1",
                WARDEN_METRICS__ACTIONER_PORT=str(port),
                WARDEN_ACTIONER__DRAIN_TIMEOUT_S="5",
            ),
        )
        guild = snowflake()
        waves = [
            [verdict(f"{guild}{w}{i:02d}", community=guild, user=snowflake()) for i in range(n)]
            for w, n in enumerate((20, 20, 10))
        ]
        await publish(settings, producer, waves[0])
        await results(settings, 10, [actioner])
        readings: list[float | None] = [await asyncio.to_thread(ready, port)]

        await asyncio.to_thread(database.stop)
        await publish(settings, producer, waves[1])  # decided only once PostgreSQL is back
        for _ in range(24):
            await asyncio.sleep(0.5)
            readings.append(await asyncio.to_thread(ready, port))
            assert actioner.alive(), actioner.log.read_text()[-3000:]
        await asyncio.to_thread(database.start)
        await publish(settings, producer, waves[2])

        verdicts = [v for wave in waves for v in wave]
        expected = {f"{v.message_id}:{k}" for v in verdicts for k in ("delete", "warn")}
        found = await results(settings, len(expected), [actioner], timeout_s=120)
        for _ in range(20):
            readings.append(await asyncio.to_thread(ready, port))
            if readings[-1] == 1:
                break
            await asyncio.sleep(0.5)
        # Ready before, not ready while PostgreSQL was away, ready again after.
        assert readings[0] == 1 and 0 in readings and readings[-1] == 1, readings
        assert {r["action_id"] for r in found} == expected
        assert {r["status"] for r in found} == {"done"}
        # No result twice: each was recorded as published before the actioner moved on.
        assert len(found) == len(expected), Counter(r["action_id"] for r in found).most_common(3)
        effects = fake.effect_counts()
        assert sorted(t for (k, t) in effects if k == "delete") == sorted(
            v.message_id for v in verdicts
        )
        assert set(effects.values()) == {1}
        assert fake.count("message-create") == len(verdicts)  # one DM per warning
        assert "PostgreSQL unavailable" in actioner.log.read_text()

        # SIGTERM while PostgreSQL is away and a batch waits on it: out within the drain time.
        await asyncio.to_thread(database.stop)
        await publish(settings, producer, [verdict(f"{guild}9", community=guild, user="1")])
        await asyncio.sleep(2)
        assert actioner.alive()
        began = time.monotonic()
        code = await asyncio.to_thread(actioner.stop)
        assert code == 0 and time.monotonic() - began < 5 + 8, actioner.log.read_text()[-2000:]
    finally:
        await fake.close()
        await asyncio.to_thread(database.remove)


async def test_a_kafka_outage_is_ridden_out_and_sigterm_is_prompt_while_it_lasts(
    migrated: Settings,
    settings: Settings,
    service_factory: Callable[..., Service],
    tmp_path: Path,
) -> None:
    broker = ThrowawayKafka(tmp_path / "kafka", settings)
    fake = FakeDiscord(limits=ROOMY_DMS, global_limit=None, latency_s=0.01)
    await fake.start()
    await asyncio.to_thread(broker.start)
    try:
        kafka = broker.kafka.model_copy(update={"topic_suffix": settings.kafka.topic_suffix})
        own = settings.model_copy(update={"kafka": kafka})
        await create_topics(kafka)
        port = free_port()
        actioner = service_factory(
            "actioner",
            **discord_env(
                fake,
                WARDEN_KAFKA__BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
                WARDEN_METRICS__ACTIONER_PORT=str(port),
                WARDEN_ACTIONER__DRAIN_TIMEOUT_S="5",
            ),
        )
        guild = snowflake()
        waves = [
            [verdict(f"{guild}{w}{i:02d}", community=guild, user=snowflake()) for i in range(10)]
            for w in range(2)
        ]
        sender = kafka_producer(kafka)
        await sender.start()
        try:
            await publish(own, sender, waves[0])
        finally:
            await sender.stop()
        await results(own, 20, [actioner])

        # The second wave's actions are under way at the platform when the broker goes away:
        # their results can only be published after it is back.
        fake.latency_s = 2.0
        asked = len(fake.requests)
        sender = kafka_producer(kafka)
        await sender.start()
        try:
            await publish(own, sender, waves[1])
        finally:
            await sender.stop()
        for _ in range(100):
            if len(fake.requests) > asked:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(broker.stop)
        readings = []
        for _ in range(16):
            await asyncio.sleep(0.5)
            readings.append(await asyncio.to_thread(ready, port))
            assert actioner.alive(), actioner.log.read_text()[-3000:]
        assert 0 in readings, readings
        fake.latency_s = 0.01
        await asyncio.to_thread(broker.start)
        verdicts = [*waves[0], *waves[1]]
        found = await results(own, 40, [actioner], timeout_s=120)
        assert {r["action_id"] for r in found} == {
            f"{v.message_id}:{k}" for v in verdicts for k in ("delete", "warn")
        }
        effects = fake.effect_counts()
        assert sorted(t for (k, t) in effects if k == "delete") == sorted(
            v.message_id for v in verdicts
        )
        assert set(effects.values()) == {1}

        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(3)
        assert actioner.alive()
        began = time.monotonic()
        code = await asyncio.to_thread(actioner.stop)
        assert code == 0 and time.monotonic() - began < 5 + 10, actioner.log.read_text()[-2000:]
    finally:
        await fake.close()
        await asyncio.to_thread(broker.stop)


# Image verdicts (issue #17): an explicit picture is deleted and struck once, however often its
# verdict is delivered, beside its message's text verdict; a suggestive picture and a picture in
# an NSFW channel are left alone (balanced).


def image(
    base: Verdict, explicit: float, suggestive: float, *, nsfw: bool | None = None
) -> Verdict:
    labels = [
        name
        for name, value, cut in (
            ("sexual_explicit", explicit, 0.35),
            ("sexual_suggestive", suggestive, 0.5),
        )
        if value >= cut
    ]
    severity = "HIGH" if explicit >= 0.5 else "LOW" if labels else "SAFE"
    return base.model_copy(
        update={
            "kind": VerdictKind.IMAGE,
            "p_toxic": max(explicit, suggestive),
            "severity": Severity(severity),
            "flagged": bool(labels),
            "model_flagged": bool(labels),
            "labels": labels,
            "label_scores": {"sexual_explicit": explicit, "sexual_suggestive": suggestive},
            "model_version": "nudenet-test",
            "images": [ImageFinding(url="https://cdn.discordapp.com/a/1/x.png", index=0)],
            "channel_nsfw": nsfw,
            "scored_at": SENT + timedelta(seconds=2),
        }
    )


async def test_an_explicit_picture_is_acted_on_once_and_allowed_ones_are_not(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    discord: FakeDiscord,
) -> None:
    guild, user, other = snowflake(), snowflake(), snowflake()
    actioner = service_factory("actioner", **discord_env(discord))
    text = verdict(f"{guild}1", community=guild, user=user, severity="LOW")
    explicit = image(text, 0.92, 0.1)
    suggestive = image(verdict(f"{guild}2", community=guild, user=other), 0.05, 0.8)
    nsfw = image(verdict(f"{guild}3", community=guild, user=other), 0.95, 0.7, nsfw=True)
    # The text verdict, the image verdict twice (a redelivery), the allowed pictures.
    await publish(settings, producer, [text, explicit, explicit, suggestive, nsfw])

    found = await results(settings, 2, [actioner])
    assert by_message(found) == {explicit.decision_id: [("delete", "done"), ("timeout", "done")]}
    reasons = {r["action_id"]: r["reason"] for r in found}
    delete = reasons[f"{text.message_id}~image:delete"]
    assert "sexual_explicit (0.92)" in delete and "image model severity HIGH" in delete
    # Discord deleted the message itself, once, and timed the user out once.
    effects = discord.effect_counts()
    assert [t for (k, t) in effects if k == "delete"] == [text.message_id]
    assert set(effects.values()) == {1}
    assert actioner.alive()

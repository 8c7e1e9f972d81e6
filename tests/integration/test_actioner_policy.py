"""Livestream policies on the real stack: raid answers through the ledger, first-day mode and
go-live, review holds, and the detector thresholds mirrored to Redis for the scorer."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from kit import REPO, Service, consume, service_env

from actioners import commands
from actioners.database import Database
from actioners.detectors import DetectorMirror, MirrorError
from actioners.policy import RAID_USER, preset
from core.settings import Settings
from schemas.detection import DETECTORS_FIELD, DetectorThresholds, policy_key
from schemas.events import Platform, RaidEvent, Severity, Verdict
from schemas.topics import ACTIONS, RAIDS, VERDICTS

STARTED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Policies are re-read at once, so a go-live takes effect on the next verdict.
FRESH = {"WARDEN_ACTIONER__POLICY_CACHE_S": "0"}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def raid(community: str, *, harmful: bool, channel: str | None = None) -> RaidEvent:
    channel = channel or community
    return RaidEvent(
        raid_id=f"twitch:{community}:{channel}:{unique('m-')}",
        platform=Platform.TWITCH,
        community=community,
        channel=channel,
        started_at=STARTED,
        ended_at=STARTED + timedelta(seconds=20),
        size=25,
        messages=40,
        sample=["go kys streamer" if harmful else "VelvetVortex raid <3"],
        harmful=harmful,
        labels=["raid", "self_harm"] if harmful else ["raid"],
        accounts=[f"u{i}" for i in range(25)],
        detected_at=STARTED + timedelta(seconds=21),
    )


def verdict(community: str, message_id: str, text: str, labels: tuple[str, ...]) -> Verdict:
    return Verdict(
        message_id=message_id,
        platform=Platform.TWITCH,
        community=community,
        channel=community,
        user=unique("u"),
        text=text,
        p_toxic=0.93,
        severity=Severity.HIGH,
        flagged=True,
        labels=list(labels),
        label_scores=dict.fromkeys(labels, 0.93),
        model_version="test-model-1",
        sent_at=STARTED,
        received_at=STARTED,
        scored_at=STARTED + timedelta(milliseconds=20),
    )


async def send(
    settings: Settings, producer: AIOKafkaProducer, topic: str, events: list[Any]
) -> None:
    name = (RAIDS if topic == "raids" else VERDICTS).name_for(settings.kafka.topic_suffix)
    for event in events:
        await producer.send(name, event.to_json_bytes(), key=event.key.encode())
    await producer.flush()


async def results(
    settings: Settings, count: int, services: list[Service], timeout_s: float = 60
) -> list[dict[str, Any]]:
    return await consume(
        settings,
        ACTIONS.name_for(settings.kafka.topic_suffix),
        count=count,
        services=services,
        timeout_s=timeout_s,
    )


def rows(settings: Settings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        return conn.execute(sql, args).fetchall()


async def test_a_harmful_raid_gets_one_raid_mode_a_friendly_raid_none_and_a_replay_nothing(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    channel = unique("c")
    actioner = service_factory("actioner", WARDEN_ACTIONER__DEFAULT_PRESET="livestream", **FRESH)
    harmful, friendly = raid(channel, harmful=True), raid(channel, harmful=False)
    # The harmful raid reported twice (a scorer that published again after a crash).
    await send(settings, producer, "raids", [harmful, friendly, harmful])
    found = await results(settings, 1, [actioner])
    assert len(found) == 1, found
    (result,) = found
    assert result["kind"] == "raid_mode" and result["status"] == "done"
    assert result["message_id"] == harmful.raid_id and result["user"] == RAID_USER
    assert result["action_id"] == f"{harmful.raid_id}:raid_mode"
    assert result["modes"] == ["followers", "slow"] and result["duration_s"] == 600
    assert "harmful raid: 25 first-time accounts" in result["reason"]

    # Replayed once more after the first was acted on, and the actioner restarted: still one.
    actioner.stop()
    again = service_factory("actioner", WARDEN_ACTIONER__DEFAULT_PRESET="livestream", **FRESH)
    await send(settings, producer, "raids", [harmful])
    later = await results(settings, 2, [again], timeout_s=12)
    assert [r["action_id"] for r in later] == [result["action_id"]]
    ledger = rows(
        migrated,
        "SELECT kind, state FROM action_ledger WHERE community = %s ORDER BY action_id",
        channel,
    )
    # With the raid mode's end, waiting for its duration_s (600 s).
    assert ledger == [("raid_mode", "done"), ("raid_mode_off", "pending")]
    decided = rows(
        migrated,
        "SELECT message_id, rule, user_id FROM decisions WHERE community = %s ORDER BY rule",
        channel,
    )
    assert decided == [
        (friendly.raid_id, "nothing", RAID_USER),
        (harmful.raid_id, "raid mode followers, slow", RAID_USER),
    ]


async def test_a_new_community_acts_on_nothing_until_it_goes_live(
    migrated: Settings,
    settings: Settings,
    db: Database,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    redis: aioredis.Redis,
) -> None:
    channel = unique("c")
    actioner = service_factory(
        "actioner",
        WARDEN_ACTIONER__FIRST_DAY="shadow",
        WARDEN_ACTIONER__DEFAULT_PRESET="livestream",
        **FRESH,
    )
    first = verdict(channel, unique("m"), "i know where you live", ("threat",))
    borderline = verdict(channel, unique("m"), "ur bad", ("insult",))
    borderline = borderline.model_copy(update={"severity": Severity.MEDIUM, "p_toxic": 0.6})
    await send(settings, producer, "verdicts", [first, borderline])
    found = await results(settings, 3, [actioner])
    assert {(r["kind"], r["status"]) for r in found} == {
        ("delete", "skipped"),
        ("timeout", "skipped"),
        ("hold", "skipped"),
    }
    assert all("first-day mode" in r["reason"] for r in found)
    shown = await commands.show_policy(
        db, "twitch", channel, default_preset="livestream", first_day=True
    )
    assert shown.is_default and shown.version_id.startswith("first-day:livestream@")

    mirror = DetectorMirror(redis)
    stored = await commands.go_live(
        db,
        "twitch",
        channel,
        author="test-mod",
        default_preset="livestream",
        first_day=True,
        mirror=mirror,
    )
    assert stored.version == 1 and stored.policy.live and stored.policy.preset == "livestream"
    assert "was first-day mode" in stored.note
    mirrored = await redis.hget(policy_key("twitch", channel), DETECTORS_FIELD)  # type: ignore[misc]
    assert DetectorThresholds.model_validate_json(mirrored) == preset("livestream").detectors

    after = verdict(channel, unique("m"), "i will find you", ("threat",))
    held = verdict(channel, unique("m"), "ur so bad lol", ("insult",))
    held = held.model_copy(update={"severity": Severity.MEDIUM, "p_toxic": 0.6})
    await send(settings, producer, "verdicts", [after, held])
    found = await results(settings, 6, [actioner])
    live = {(r["kind"], r["status"]) for r in found if r["message_id"] == after.message_id}
    assert live == {("delete", "done"), ("timeout", "done")}
    review = [r for r in found if r["message_id"] == held.message_id]
    assert [(r["kind"], r["status"], r["detail"]) for r in review] == [
        ("hold", "skipped", "held for review")
    ]
    queue = await commands.open_holds(db, "twitch", channel)
    assert [(h.message_id, h.text, h.labels, h.held_action) for h in queue] == [
        (held.message_id, "ur so bad lol", ["insult"], "review")
    ]
    # The first-day hold is recorded, but it is not in the queue of lines to review.
    shadow_holds = rows(migrated, "SELECT shadow FROM holds WHERE community = %s", channel)
    assert sorted(shadow_holds) == [(False,), (True,)]
    listed = warden(migrated, "policy", "holds", channel, "--platform", "twitch")
    assert listed.returncode == 0, listed.stderr
    assert held.message_id in listed.stdout and borderline.message_id not in listed.stdout


async def test_every_stored_policy_mirrors_its_detectors_to_redis(
    db: Database, redis: aioredis.Redis
) -> None:
    guild = unique("g")
    mirror = DetectorMirror(redis)
    assert await mirror.read("discord", guild) is None
    await commands.apply_preset(db, "discord", guild, "strict", author="t", mirror=mirror)
    assert await mirror.read("discord", guild) == preset("strict").detectors
    await commands.set_policy(
        db,
        "discord",
        guild,
        {"detectors.spam_repeats": 4, "detectors.link_allow+": "clips.example.org"},
        author="t",
        mirror=mirror,
    )
    raw = await redis.hget(policy_key("discord", guild), DETECTORS_FIELD)  # type: ignore[misc]
    mirrored = json.loads(raw)
    assert mirrored["spam_repeats"] == 4 and "clips.example.org" in mirrored["link_allow"]
    # A policy stored without a mirror is written again by sync.
    await commands.replace_policy(db, "discord", guild, preset("lenient"), author="t")
    assert (await mirror.read("discord", guild) or preset("strict").detectors).spam_repeats == 4
    await commands.sync_detectors(db, "discord", guild, mirror)
    assert await mirror.read("discord", guild) == preset("lenient").detectors


async def test_a_mirror_to_a_redis_that_is_away_says_so_and_keeps_the_version(
    db: Database,
) -> None:
    guild = unique("g")
    away = DetectorMirror(aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.5))
    try:
        with pytest.raises(MirrorError, match="not mirrored to Redis"):
            await commands.apply_preset(db, "discord", guild, "strict", author="t", mirror=away)
    finally:
        await away.close()
    stored = await commands.show_policy(db, "discord", guild)
    assert stored.version == 1 and stored.policy.preset == "strict"


def warden(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", *args],
        env=service_env(settings, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_cli_keeps_first_day_mode_until_go_live_and_mirrors_each_version(
    migrated: Settings, redis: aioredis.Redis
) -> None:
    channel = unique("c")
    first_day = {"WARDEN_ACTIONER__FIRST_DAY": "shadow"}
    shown = warden(migrated, "policy", "show", channel, "--platform", "twitch", **first_day)
    assert shown.returncode == 0, shown.stderr
    assert "first-day mode: acts on nothing until `warden policy go-live`" in shown.stdout
    chosen = warden(
        migrated, "policy", "preset", channel, "livestream", "--platform", "twitch", **first_day
    )
    assert chosen.returncode == 0, chosen.stderr
    assert "in first-day mode" in chosen.stdout
    mirror = DetectorMirror(redis)
    assert await mirror.read("twitch", channel) == preset("livestream").detectors
    changed = warden(
        migrated,
        "policy",
        "set",
        channel,
        "detectors.raid_min_accounts=30",
        "strike_decay_hours=4",
        "--platform",
        "twitch",
        **first_day,
    )
    assert changed.returncode == 0, changed.stderr
    mirrored = await mirror.read("twitch", channel)
    assert mirrored is not None and mirrored.raid_min_accounts == 30
    live = warden(migrated, "policy", "go-live", channel, "--platform", "twitch", **first_day)
    assert live.returncode == 0, live.stderr
    assert f"stored twitch:{channel}@v3 (preset livestream): live" in live.stdout
    document = json.loads(
        warden(migrated, "policy", "show", channel, "--platform", "twitch").stdout.split("\n", 1)[1]
    )
    assert document["first_day"] is False and document["strike_decay_hours"] == 4
    assert document["detectors"]["raid_min_accounts"] == 30  # go-live keeps the changes
    history = warden(migrated, "policy", "show", channel, "--platform", "twitch", "--history")
    lines = history.stdout.splitlines()
    assert "first_day=False" in lines[0] and "go live (livestream; was first-day mode)" in lines[0]
    assert all("first_day=True" in line for line in lines[1:])
    strikes = warden(migrated, "strikes", "u1", "--community", channel, "--platform", "twitch")
    assert "decay 4 h" in strikes.stdout, strikes.stderr

"""`warden replay-decision` on the real stack: a message through the scorer (the shipped model)
and the actioner (a stored policy, mirrored to the scorer with its version) is made again from
what they stored and matches; a line the policy did not act on is found on the verdicts topic;
a tampered decision differs (exit 1); an unknown message id is one line (exit 4)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import psycopg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from kit import REPO, Service, consume, service_env

from actioners import commands
from actioners.database import Database
from actioners.detectors import DetectorMirror
from core.settings import Settings
from schemas.detection import VERSION_FIELD, policy_key
from schemas.events import ChatMessage, Platform, utcnow
from schemas.topics import CHAT_MESSAGES, VERDICTS

TOXIC = "you are a worthless pathetic idiot, nobody wants you here"
BENIGN = "gg that was a great round, see you all tomorrow"


def replay(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", "replay-decision", *args],
        env=service_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def message(guild: str, message_id: str, text: str) -> ChatMessage:
    now = utcnow()
    return ChatMessage(
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        channel="general",
        user="u-" + message_id,
        text=text,
        sent_at=now,
        received_at=now,
    )


async def decided(settings: Settings, message_id: str, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(
        settings.postgres.dsn.get_secret_value(), autocommit=True
    ) as conn:
        while time.monotonic() < deadline:
            found = await conn.execute(
                "SELECT 1 FROM decisions WHERE message_id = %s", (message_id,)
            )
            if await found.fetchone():
                return True
            await asyncio.sleep(0.3)
    return False


async def test_a_decision_is_made_again_from_what_was_stored(
    migrated: Settings,
    settings: Settings,
    db: Database,
    redis: aioredis.Redis,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    guild = f"g{uuid.uuid4().hex[:12]}"
    # A stored policy, mirrored to the scorer with its version id.
    stored = await commands.apply_preset(
        db, "discord", guild, "balanced", author="t", mirror=DetectorMirror(redis)
    )
    version = await redis.hget(policy_key("discord", guild), VERSION_FIELD)  # type: ignore[misc]
    assert version.decode() == stored.version_id == f"discord:{guild}@v1"
    scorer = service_factory("scorer")
    actioner = service_factory("actioner")
    toxic, benign = message(guild, f"{guild}-1", TOXIC), message(guild, f"{guild}-2", BENIGN)
    for m in (toxic, benign):
        topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
        await producer.send(topic, m.to_json_bytes(), key=m.key.encode())
    await producer.flush()
    verdicts = await consume(
        settings, VERDICTS.name_for(settings.kafka.topic_suffix), count=2, services=[scorer]
    )
    by_id = {v["message_id"]: v for v in verdicts}
    assert by_id[toxic.message_id]["flagged"] and not by_id[benign.message_id]["flagged"]
    for v in verdicts:
        assert v["policy_version"] == stored.version_id
        assert v["scoring"]["backend"] == "int8" and v["scoring"]["flag_severity"] == "MEDIUM"
    assert await decided(settings, toxic.message_id), actioner.log_tail()

    done = replay(settings, toxic.message_id, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["match"] and report["verdict_from"] == "decisions"
    assert report["policy_version"] == stored.version_id
    statuses = {p["name"]: p["status"] for p in report["parts"]}
    assert statuses == {"model": "MATCH", "detectors": "MATCH", "policy": "MATCH"}

    # Not acted on: no decision row; the verdict is read from the topic.
    quiet = replay(settings, benign.message_id)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert f"{VERDICTS.name_for(settings.kafka.topic_suffix)} partition" in quiet.stdout
    assert "replay: MATCH" in quiet.stdout

    # A stored decision that its inputs do not give.
    await asyncio.to_thread(tamper, migrated, toxic.message_id)
    differs = replay(settings, toxic.message_id)
    assert differs.returncode == 1, differs.stdout + differs.stderr
    assert "policy     DIFFERS" in differs.stdout and "model      MATCH" in differs.stdout
    assert "strikes_added" in differs.stdout and "replay: DIFFERS" in differs.stdout

    unknown = replay(settings, f"{guild}-never", "--since", "1h")
    assert unknown.returncode == 4, unknown.stdout + unknown.stderr
    assert unknown.stderr.startswith(f"warden: unknown message {guild}-never")
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert scorer.alive() and actioner.alive()


def tamper(settings: Settings, message_id: str) -> None:
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            "UPDATE decisions SET strikes_added = strikes_added + 2 WHERE message_id = %s",
            (message_id,),
        )

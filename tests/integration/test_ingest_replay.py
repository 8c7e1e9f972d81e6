"""`warden ingest replay` on the real broker: a CSV log looped, a broker restart mid-replay
(nothing lost), and a broker that never answers (non-zero exit)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from kit import REPO, ThrowawayKafka, consume, free_port, service_env

from core.settings import Settings
from core.topic_admin import create_topics, topic_size
from schemas.topics import CHAT_MESSAGES, DEADLETTER

CSV = """message_id,user,text,sent_at,received_at,platform,community,channel,user_roles
c1,u1,first,2024-06-15T18:00:00+00:00,2024-06-15T18:00:00.020+00:00,twitch,stream,#main,vip
c2,u2,"second, with a comma",2024-06-15T18:00:00.500+00:00,,twitch,stream,#main,
c3,u1,third,2024-06-15T18:00:01+00:00,,,,,moderator|subscriber
bad,,no user,2024-06-15T18:00:01+00:00,,,,,
"""


async def replay_to_the_end(env: dict[str, str], *args: str) -> tuple[int | None, str]:
    """`warden ingest replay ARGS` run to its end: its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "warden", "ingest", "replay", *args),
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(process.communicate(), timeout=120))[0].decode()
    return process.returncode, output


async def test_a_csv_log_is_replayed_in_loops(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "chat.csv"
    log.write_text(CSV)
    code, output = await replay_to_the_end(
        service_env(settings), str(log), "--speed", "4", "--loop", "2"
    )
    assert code == 0, output
    assert "replayed 6 messages (1 rejected)" in output
    suffix = settings.kafka.topic_suffix
    records = await consume(settings, CHAT_MESSAGES.name_for(suffix), count=6)
    assert sorted(r["message_id"] for r in records) == [
        "0-c1",
        "0-c2",
        "0-c3",
        "1-c1",
        "1-c2",
        "1-c3",
    ]
    first = next(r for r in records if r["message_id"] == "0-c1")
    assert first["platform"] == "twitch" and first["user_roles"] == ["vip"]
    assert await topic_size(settings.kafka, CHAT_MESSAGES) == 6
    dead = await consume(settings, DEADLETTER.name_for(suffix), count=1)
    assert dead[0]["source_topic"] == "replay:chat.csv:5"


async def test_an_opted_out_user_is_dropped_by_default(
    settings: Settings, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """No opt-out setting given: the adapter reads the opt-out set and drops its users."""
    log = tmp_path / "chat.csv"
    log.write_text(CSV)
    key = f"warden:optout:{settings.kafka.topic_suffix}"
    await redis.sadd(key, "twitch:stream:u2")  # type: ignore[misc]
    try:
        env = service_env(settings, WARDEN_INGEST__OPT_OUT_KEY=key)
        assert "WARDEN_INGEST__OPT_OUT" not in env
        code, output = await replay_to_the_end(env, str(log))
    finally:
        await redis.delete(key)
    assert code == 0, output
    records = await consume(settings, CHAT_MESSAGES.name_for(settings.kafka.topic_suffix), count=2)
    assert sorted(r["message_id"] for r in records) == ["c1", "c3"]
    assert await topic_size(settings.kafka, CHAT_MESSAGES) == 2


START = datetime(2024, 6, 15, 18, tzinfo=UTC)


def chat_log(path: Path, count: int, users: int) -> list[dict[str, Any]]:
    """A JSONL log of ``count`` messages from ``users`` authors, one a line."""
    records = [
        {
            "message_id": f"r{i:05d}",
            "platform": "replay",
            "community": "stream",
            "channel": "#main",
            "user": f"u{i % users}",
            "text": f"message {i}",
            "sent_at": (START + timedelta(milliseconds=10 * i)).isoformat(),
            "received_at": (START + timedelta(milliseconds=10 * i + 20)).isoformat(),
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


@pytest.fixture
def own_broker(tmp_path: Path, settings: Settings) -> Iterator[ThrowawayKafka]:
    broker = ThrowawayKafka(tmp_path / "kafka", settings)
    broker.start()
    try:
        asyncio.run(create_topics(broker.kafka, settings.kafka.topic_suffix))
        yield broker
    finally:
        broker.stop()


async def test_a_broker_restart_during_a_replay_loses_nothing(
    settings: Settings, own_broker: ThrowawayKafka, tmp_path: Path
) -> None:
    """The broker restarts mid-replay: after it the idempotent producer's buffered batches can
    be refused (OutOfOrderSequenceNumber); every message must still arrive, in order per user,
    and the replay must say so and exit 0."""
    count = 5000
    records = chat_log(tmp_path / "chat.jsonl", count, users=40)
    ours = settings.model_copy(update={"kafka": own_broker.kafka})
    log = tmp_path / "replay.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "warden", "ingest", "replay", str(tmp_path / "chat.jsonl")),
            *("--rate", "400"),  # about 12 s: the restart falls in the middle
            env=service_env(
                ours,
                WARDEN_KAFKA__BOOTSTRAP_SERVERS=own_broker.kafka.bootstrap_servers,
                WARDEN_INGEST__SHUTDOWN_TIMEOUT_S="120",
            ),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
            await consume(ours, topic, count=300, timeout_s=60)  # under way
            # Killed, not stopped: no controlled shutdown, as when a machine or a pod dies.
            assert own_broker.pid is not None
            os.kill(own_broker.pid, signal.SIGKILL)
            await asyncio.to_thread(own_broker.stop)  # reaps it
            await asyncio.sleep(2)
            await asyncio.to_thread(own_broker.start)
            returncode = await asyncio.wait_for(process.wait(), timeout=300)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    output = log.read_text()
    assert returncode == 0, output[-4000:]
    assert f"{count} published, 0 rejected, 0 dropped, 0 failed, 0 still buffered" in output
    delivered = await consume(ours, topic, count=count, timeout_s=120)
    ids = [r["message_id"] for r in delivered]
    assert set(ids) == {r["message_id"] for r in records}, f"{count - len(set(ids))} lost"
    # consume() reads partition by partition in offset order: first arrivals must keep each
    # user's order (a resent message may arrive twice; consumers de-duplicate by id).
    first_seen: dict[str, list[str]] = {}
    seen: set[str] = set()
    for record in delivered:
        if record["message_id"] not in seen:
            seen.add(record["message_id"])
            first_seen.setdefault(record["user"], []).append(record["message_id"])
    for user, got in first_seen.items():
        assert got == sorted(got), f"{user}'s messages out of order"
    restarts = output.count("replacing it and resending")
    print(f"{len(ids) - count} duplicates, {restarts} producer replacements")


async def test_a_replay_the_broker_never_takes_exits_non_zero(
    settings: Settings, tmp_path: Path
) -> None:
    chat_log(tmp_path / "chat.jsonl", 3, users=1)
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "warden", "ingest", "replay", str(tmp_path / "chat.jsonl"), "--speed", "0"),
        env=service_env(
            settings,
            WARDEN_KAFKA__BOOTSTRAP_SERVERS=nobody,
            WARDEN_INGEST__SHUTDOWN_TIMEOUT_S="1",
        ),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await asyncio.sleep(5)  # it waits for the broker, holding the three messages
    assert process.returncode is None, "a replay waits for an unreachable broker"
    process.send_signal(signal.SIGTERM)
    output = (await asyncio.wait_for(process.communicate(), timeout=60))[0].decode()
    assert process.returncode == 1, output
    assert "0 published, 0 rejected, 0 dropped, 0 failed, 3 still buffered" in output
    assert "warden: the replay did not deliver everything: 0 failed" in output

"""The scoring stream on the real stack: features, degradation without Redis, scale-out,
poison records, and a prompt stop whatever state the broker is in."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner
from kit import Service, ThrowawayKafka, consume, consume_covering, free_port

from core.clients import kafka_admin, kafka_consumer
from core.metrics import live_children, proc_stat
from core.settings import Settings
from core.topic_admin import create_topics
from schemas.events import ChatMessage
from schemas.topics import CHAT_MESSAGES, DEADLETTER, VERDICTS

Start = Callable[..., Service]
SENT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def chat(community: str, user: str, text: str, n: int) -> ChatMessage:
    return ChatMessage.model_validate(
        {
            "message_id": f"{community}-{n}",
            "platform": "twitch",
            "community": community,
            "channel": "#main",
            "user": user,
            "text": text,
            # One millisecond apart: first-seen in a channel is the sent_at of a user's first line.
            "sent_at": (SENT + timedelta(milliseconds=n)).isoformat(),
            "received_at": (SENT + timedelta(milliseconds=n + 10)).isoformat(),
        }
    )


async def publish(producer: AIOKafkaProducer, topic: str, messages: list[ChatMessage]) -> None:
    for message in messages:
        await producer.send(topic, message.to_json_bytes(), key=message.key.encode())
    await producer.flush()


async def verdicts_for(
    settings: Settings, count: int, services: list[Service], timeout_s: float = 90
) -> dict[str, dict]:
    records = await consume(
        settings,
        VERDICTS.name_for(settings.kafka.topic_suffix),
        count=count,
        services=services,
        timeout_s=timeout_s,
    )
    return {r["message_id"]: r for r in records}


async def test_verdicts_carry_context_features_from_redis(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start
) -> None:
    community = f"feat{settings.kafka.topic_suffix}"
    source = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    scorer = service_factory("scorer")
    first = [chat(community, "troll", "you are a fucking idiot", i) for i in range(3)]
    await publish(producer, source, first)
    seen = await verdicts_for(settings, 3, [scorer])
    # The three may be split over two batches; the first line always comes before any count.
    assert seen[f"{community}-0"]["features"]["user_bad_ratio_7d"] is None

    # One line, then the other once it has its verdict: the channel's counts are then the
    # same whichever batches the lines land in.
    await publish(producer, source, [chat(community, "troll", "hello again", 10)])
    await verdicts_for(settings, 4, [scorer])
    await publish(producer, source, [chat(community, "newbie", "hello all", 11)])
    seen = await verdicts_for(settings, 5, [scorer])
    troll, newbie = seen[f"{community}-10"], seen[f"{community}-11"]
    assert troll["features"]["user_bad_ratio_7d"] == 1.0
    assert troll["features"]["violation_count_7d"] == 3.0
    assert troll["features"]["is_new_to_channel"] == 0.0
    assert troll["features"]["hours_since_last_msg"] is not None
    assert newbie["features"]["user_bad_ratio_7d"] is None
    assert newbie["features"]["is_new_to_channel"] == 1.0
    assert newbie["features"]["channel_toxicity_ratio"] == 0.75  # 3 of 4 earlier lines toxic
    assert not any(v["degraded"] for v in seen.values())


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """A Redis of this test's own, to stop and start without disturbing the shared stack."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by `warden stack up`"
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp_path],
            stdout=subprocess.DEVNULL,
        )
        processes.append(process)
        return process

    start.port = port  # type: ignore[attr-defined]
    yield start
    for process in processes:
        process.kill()
        process.wait()


async def test_redis_outage_degrades_without_losing_a_message(
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Start,
    private_redis: Callable[[], subprocess.Popen[bytes]],
) -> None:
    community = f"deg{settings.kafka.topic_suffix}"
    source = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    redis_process = private_redis()
    port = private_redis.port  # type: ignore[attr-defined]
    scorer = service_factory(
        "scorer",
        WARDEN_REDIS__URL=f"redis://127.0.0.1:{port}/0",
        WARDEN_SCORER__REDIS_RETRY_AFTER_S="0.2",
    )
    await publish(producer, source, [chat(community, "u", f"line {i}", i) for i in range(20)])
    seen = await verdicts_for(settings, 20, [scorer])
    assert not any(v["degraded"] for v in seen.values())

    redis_process.terminate()
    redis_process.wait()
    await publish(producer, source, [chat(community, "u", f"line {i}", i) for i in range(20, 40)])
    seen = await verdicts_for(settings, 40, [scorer])
    outage = [seen[f"{community}-{i}"] for i in range(20, 40)]
    assert all(v["degraded"] for v in outage)
    assert all(v["features"]["user_bad_ratio_7d"] is None for v in outage)

    private_redis()
    await asyncio.sleep(1.0)  # Redis starts; the scorer's next try after 0.2 s finds it
    await publish(producer, source, [chat(community, "u", f"line {i}", i) for i in range(40, 60)])
    seen = await verdicts_for(settings, 60, [scorer])
    assert len(seen) == 60
    recovered = [seen[f"{community}-{i}"] for i in range(40, 60)]
    assert not recovered[-1]["degraded"]
    assert scorer.alive()


async def test_two_workers_share_the_stream_and_lose_nothing(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start
) -> None:
    community = f"scale{settings.kafka.topic_suffix}"
    source = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    users = [f"user{i}" for i in range(30)]
    messages = [
        chat(community, users[i % len(users)], f"msg {uuid.uuid4().hex[:6]}", i) for i in range(600)
    ]
    first = service_factory("scorer")
    await publish(producer, source, messages[:200])
    await verdicts_for(settings, 200, [first])

    second = service_factory("scorer")  # joins the group: partitions are rebalanced
    await publish(producer, source, messages[200:400])
    await verdicts_for(settings, 400, [first, second])
    first.stop()  # leaves the group: the second worker takes its partitions over
    await publish(producer, source, messages[400:])

    records = await consume(
        settings, VERDICTS.name_for(settings.kafka.topic_suffix), count=600, services=[second]
    )
    ids = Counter(r["message_id"] for r in records)
    assert set(ids) == {m.message_id for m in messages}
    # At-least-once: a rebalance may redeliver, and consumers de-duplicate by message_id.
    # Verdicts for one message are the same decision wherever they were made.
    for message_id, count in ids.items():
        if count > 1:
            same = {r["p_toxic"] for r in records if r["message_id"] == message_id}
            assert len(same) == 1
    # Verdicts go out in record batches per partition: each on its key's partition (a user's
    # verdicts in order on one partition, as a keyed send would place them).
    placed = await partitions_of(settings, VERDICTS.name_for(settings.kafka.topic_suffix))
    partitions = sorted({p for _, p in placed} | set(range(VERDICTS.partitions)))
    hashed = DefaultPartitioner()
    assert len(placed) >= 600
    assert all(p == hashed(key, partitions, partitions) for key, p in placed)
    assert len({p for _, p in placed}) > 1


async def partitions_of(settings: Settings, topic: str) -> list[tuple[bytes, int]]:
    """(key, partition) of every record now on ``topic``."""
    consumer = kafka_consumer(settings.kafka, topic, group_id=None)
    await consumer.start()
    try:
        placed: list[tuple[bytes, int]] = []
        while batches := await consumer.getmany(timeout_ms=1000):
            for tp, batch in batches.items():
                placed += [(r.key, tp.partition) for r in batch if r.key is not None]
        return placed
    finally:
        await consumer.stop()


async def scoring_a_backlog(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start, name: str
) -> tuple[list[ChatMessage], Service]:
    """A backlog of 1,500 unique lines (the worker cannot finish them in a moment) and a worker
    in small batches that has delivered 100 verdicts of it."""
    community = f"{name}{settings.kafka.topic_suffix}"
    messages = [
        chat(community, f"user{i % 40}", f"line {i} {uuid.uuid4().hex}", i) for i in range(1500)
    ]
    await publish(producer, CHAT_MESSAGES.name_for(settings.kafka.topic_suffix), messages)
    first = service_factory("scorer", WARDEN_SCORER__MAX_BATCH="32")
    verdicts = VERDICTS.name_for(settings.kafka.topic_suffix)
    before = await consume(settings, verdicts, count=100, services=[first])
    assert len(before) < len(messages), "stopped too late to test anything"
    return messages, first


async def test_a_killed_worker_loses_no_verdict(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start
) -> None:
    """SIGKILL while batches are in both stages: the restarted worker fills every gap."""
    messages, first = await scoring_a_backlog(settings, producer, service_factory, "kill")
    verdicts = VERDICTS.name_for(settings.kafka.topic_suffix)
    first.stop(signal.SIGKILL)

    second = service_factory("scorer")
    wanted = {m.message_id for m in messages}
    # Until every message has a verdict: redelivered ones count more than once.
    records = await consume_covering(settings, verdicts, wanted, services=[second])
    ids = Counter(r["message_id"] for r in records)
    assert set(ids) == wanted
    for message_id, count in ids.items():  # replayed batches repeat the same decision
        if count > 1:
            assert len({r["p_toxic"] for r in records if r["message_id"] == message_id}) == 1


def gone(pid: int, within_s: float) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        fields = proc_stat(pid)
        if fields is None or fields[0] == "Z":
            return True
        time.sleep(0.1)
    return False


async def test_a_killed_encoder_process_stops_its_worker_and_loses_no_verdict(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start
) -> None:
    """The encoder's sessions run in a child of the worker: if it dies, the batch in hand
    fails, the worker stops without acknowledging it, and its replacement scores it."""
    messages, first = await scoring_a_backlog(settings, producer, service_factory, "encoderkill")
    verdicts = VERDICTS.name_for(settings.kafka.topic_suffix)
    (encoder,) = live_children(first.process.pid)
    signal_sent = time.monotonic()
    os.kill(encoder, signal.SIGKILL)
    code = await asyncio.to_thread(first.process.wait, 60)
    assert code != 0
    assert time.monotonic() - signal_sent < 60

    second = service_factory("scorer")
    wanted = {m.message_id for m in messages}
    records = await consume_covering(settings, verdicts, wanted, services=[second])
    assert {r["message_id"] for r in records} == wanted


def chat_payload(community: str, n: int, **fields: object) -> bytes:
    """A chat message's JSON as a client could write it, bypassing our own validation."""
    payload = json.loads(chat(community, "u", f"line {n}", n).to_json_bytes())
    payload.update(fields)
    return json.dumps(payload).encode()


async def test_poison_records_become_dead_letters_and_the_scorer_goes_on(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start
) -> None:
    """A 1 MB text, 300 KB of quotes and a NUL id once crashed the worker at the same offset
    on every restart: each is now a bounded dead letter with its reason, and the rest is scored."""
    community = f"poison{settings.kafka.topic_suffix}".replace(".", "-")
    source = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    poison = {
        f"{community}-big": chat_payload(
            community, 1, message_id=f"{community}-big", text="x" * 950_000
        ),
        f"{community}-quotes": chat_payload(
            community, 2, message_id=f"{community}-quotes", text='"' * 300_000
        ),
        f"{community}-nul": chat_payload(
            community, 3, message_id=f"{community}-nul", user="u\x00x"
        ),
    }
    scorer = service_factory("scorer")
    good = [chat(community, f"user{i % 5}", f"hello {i}", 100 + i) for i in range(30)]
    await publish(producer, source, good[:10])
    for value in poison.values():
        await producer.send(source, value, key=f"twitch:{community}:u".encode())
    await publish(producer, source, good[10:])

    seen = await verdicts_for(settings, len(good), [scorer])
    assert set(seen) == {m.message_id for m in good}
    dead = await consume(
        settings,
        DEADLETTER.name_for(settings.kafka.topic_suffix),
        count=len(poison),
        services=[scorer],
    )
    assert len(dead) == len(poison)
    for letter in dead:
        assert len(json.dumps(letter).encode()) < 100_000
        assert letter["service"] == "scorer" and letter["error_type"] == "ValidationError"
    big = next(d for d in dead if f"{community}-big" in d["raw"])
    assert big["raw_truncated"] and big["raw_bytes"] == len(poison[f"{community}-big"])
    assert big["raw_sha256"] == hashlib.sha256(poison[f"{community}-big"]).hexdigest()
    assert "text" in big["error"]
    quotes = next(d for d in dead if f"{community}-quotes" in d["raw"])
    assert quotes["raw_truncated"] and "text" in quotes["error"]
    nul = next(d for d in dead if f"{community}-nul" in d["raw"])
    assert not nul["raw_truncated"] and "user" in nul["error"]
    # Alive, and not restarted: one process scored all of it and goes on scoring.
    assert scorer.alive()
    late = [chat(community, "late", "still here", 500)]
    await publish(producer, source, late)
    seen = await verdicts_for(settings, len(good) + 1, [scorer])
    assert f"{community}-500" in seen


async def test_a_verdict_topic_with_a_smaller_message_limit_still_gets_every_verdict(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start
) -> None:
    """The scorer puts a batch's verdicts for a partition in one record batch of up to 512 KiB
    (WARDEN_SCORER__RECORD_BATCH_BYTES). A broker or topic that allows less refuses such a
    batch; its verdicts then go again one record at a time: all of them land, and none becomes
    a dead letter."""
    topic = VERDICTS.name_for(settings.kafka.topic_suffix)
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        limit = {"max.message.bytes": "20000"}  # about a dozen verdicts
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, limit)])
    finally:
        await admin.close()
    community = f"limit{settings.kafka.topic_suffix}".replace(".", "-")
    source = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    # One user, so one partition; a backlog before the scorer starts, so its batches are full.
    texts = [f"{uuid.uuid4().hex} is what I think of round {i}, chat" for i in range(300)]
    messages = [chat(community, "talker", text, i) for i, text in enumerate(texts)]
    await publish(producer, source, messages)
    scorer = service_factory("scorer")

    records = await consume_covering(
        settings, topic, {m.message_id for m in messages}, services=[scorer]
    )
    assert {r["message_id"] for r in records} == {m.message_id for m in messages}
    letters = DEADLETTER.name_for(settings.kafka.topic_suffix)
    assert await consume(settings, letters, count=1, timeout_s=3) == []
    assert scorer.alive()


def scrape(port: int, name: str) -> float | None:
    """One sample of ``name`` from a service's /metrics (None: not exposed, or no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return None


async def wait_metric(
    port: int, name: str, value: float, service: Service, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(scrape, port, name) == value:
            return
        assert service.alive(), service.log.read_text()[-3000:]
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"{name} != {value} after {timeout_s} s:\n{service.log.read_text()[-3000:]}"
    )


READY = 'warden_ready{service="scorer"}'


async def test_sigterm_stops_a_scorer_promptly_while_its_broker_is_down(
    settings: Settings, service_factory: Start, tmp_path: Path
) -> None:
    """The scorer once ignored SIGTERM for minutes while the broker was away."""
    broker = ThrowawayKafka(tmp_path / "kafka", settings)
    await asyncio.to_thread(broker.start)
    try:
        kafka = broker.kafka.model_copy(update={"topic_suffix": settings.kafka.topic_suffix})
        await create_topics(kafka)
        port = free_port()
        scorer = service_factory(
            "scorer",
            WARDEN_KAFKA__BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
            WARDEN_METRICS__SCORER_PORT=str(port),
        )
        await wait_metric(port, READY, 1.0, scorer, timeout_s=120)
        assert await asyncio.to_thread(scrape, port, 'warden_dependency_up{dependency="kafka"') in (
            None,
            1.0,
        )
        await asyncio.to_thread(broker.stop)
        await wait_metric(port, READY, 0.0, scorer, timeout_s=15)
        await asyncio.sleep(5)  # let its clients settle into their reconnect loops

        started = time.monotonic()
        scorer.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(scorer.process.wait, 60)
        elapsed = time.monotonic() - started
        assert elapsed < 20, f"took {elapsed:.1f} s to stop"
    finally:
        await asyncio.to_thread(broker.stop)


async def test_sigterm_stops_a_running_scorer_cleanly(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Start
) -> None:
    community = f"term{settings.kafka.topic_suffix}"
    port = free_port()
    scorer = service_factory("scorer", WARDEN_METRICS__SCORER_PORT=str(port))
    await publish(
        producer,
        CHAT_MESSAGES.name_for(settings.kafka.topic_suffix),
        [chat(community, "u", f"line {i}", i) for i in range(5)],
    )
    await verdicts_for(settings, 5, [scorer])
    await wait_metric(port, READY, 1.0, scorer, timeout_s=30)
    (encoder,) = live_children(
        scorer.process.pid
    )  # the encoder's sessions (toxicity.encoder_process)
    started = time.monotonic()
    code = await asyncio.to_thread(scorer.stop)
    assert time.monotonic() - started < 15
    assert code == 0
    assert await asyncio.to_thread(gone, encoder, 10.0), "the encoder process outlived its worker"

"""The actioner's benchmark: verdict -> platform action latency and actions/s, against a local
Discord server that keeps Discord-like rate limits (``devkit.platforms.discord.DISCORD_LIMITS``:
per-route buckets per channel or guild, a global 50 requests/s, 429s with ``retry_after``).

The real actioner (``actioners.service.serve``, the Discord executor through discord.py) runs in
this process on its own topics (a unique suffix) against the local stack's Kafka and PostgreSQL
(migrated). Verdicts are produced at ``rate_per_s`` for ``communities`` guilds, a share of them
flagged; the default policy (balanced) turns each flagged verdict into a delete and the author's
strike-ladder step (a DM warning, a timeout, ...). The latency of an action runs from the moment
its verdict was produced to the moment the platform call finished (``completed_at``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from datetime import UTC, datetime

from pydantic import SecretStr

from actioners.platforms import build_executor
from actioners.service import serve
from core.clients import kafka_consumer, kafka_producer
from core.errors import StackError
from core.metrics import percentile
from core.settings import Settings
from core.topic_admin import create_topics
from devkit.platforms.discord import DiscordServer
from schemas.events import ActionResult, Platform, Severity, Verdict
from schemas.topics import ACTIONS, DEADLETTER, RAIDS, VERDICTS

logger = logging.getLogger(__name__)
BENCH_TOKEN = "bench-discord-token"  # noqa: S105 - the local Discord server's


async def bench_actioner(
    settings: Settings,
    verdict_count: int = 2000,
    *,
    flagged_share: float = 0.25,
    rate_per_s: float | None = 200.0,
    communities: int = 4,
    channels_per_community: int = 8,
    users: int = 500,
    timeout_s: float = 300.0,
    seed: int = 7,
) -> dict[str, float]:
    """Run the actioner against a local Discord; return latency percentiles and throughput.

    Keys: ``verdicts``, ``flagged``, ``actions``, ``actions_done``, ``elapsed_s`` (first verdict
    produced -> last action finished), ``actions_per_s``, ``latency_p50_s``,
    ``latency_p99_s``, ``delete_latency_p50_s``, ``delete_latency_p99_s``,
    ``platform_requests``, ``rate_limited`` (429s the platform answered), ``bulk_deletes``.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    run = uuid.uuid4().hex[:10]
    discord = DiscordServer(token=BENCH_TOKEN)
    await discord.start()
    platforms = settings.platforms.model_copy(
        update={
            "discord": settings.platforms.discord.model_copy(
                update={"token": SecretStr(BENCH_TOKEN), "api_base_url": discord.base_url}
            )
        }
    )
    bench = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic_suffix": f".bench{run}"}),
            # Fresh guilds act from their first verdict (not in first-day mode).
            "actioner": settings.actioner.model_copy(
                update={"executor": "discord", "first_day": "off"}
            ),
            "platforms": platforms,
        }
    )
    try:
        await create_topics(bench.kafka, specs=(VERDICTS, RAIDS, ACTIONS, DEADLETTER))
    except StackError:
        await discord.close()
        raise
    # Guild, channel and user ids as Discord's: numbers; unique to this run.
    base = int(run, 16) % 10**12 * 10**6
    guilds = [str(base + g) for g in range(communities)]
    produced_at: dict[str, float] = {}
    flagged = 0
    stop = asyncio.Event()
    actioner = asyncio.create_task(serve(bench, build_executor(bench), stop))
    producer = kafka_producer(bench.kafka)
    consumer = kafka_consumer(
        bench.kafka, ACTIONS.name_for(bench.kafka.topic_suffix), group_id=None
    )
    await producer.start()
    await consumer.start()
    try:
        topic = VERDICTS.name_for(bench.kafka.topic_suffix)
        began = time.time()
        for i in range(verdict_count):
            if actioner.done():
                actioner.result()  # raises what stopped it
            guild = rng.choice(guilds)
            is_flagged = rng.random() < flagged_share
            severity = rng.choice([Severity.MEDIUM, Severity.MEDIUM, Severity.HIGH])
            now = time.time()
            message_id = str(base * 10 + i)
            verdict = Verdict(
                message_id=message_id,
                platform=Platform.DISCORD,
                community=guild,
                channel=str(int(guild) * 100 + rng.randrange(channels_per_community)),
                user=str(int(guild) * 10_000 + rng.randrange(users)),
                text="(bench)",
                p_toxic=0.9 if is_flagged else 0.05,
                severity=severity if is_flagged else Severity.SAFE,
                flagged=is_flagged,
                model_version="bench",
                sent_at=datetime.fromtimestamp(now, UTC),
                received_at=datetime.fromtimestamp(now, UTC),
                scored_at=datetime.fromtimestamp(now, UTC),
            )
            if is_flagged:
                flagged += 1
                produced_at[message_id] = now
            await producer.send(topic, verdict.to_json_bytes(), key=verdict.key.encode())
            if rate_per_s:
                ahead = began + (i + 1) / rate_per_s - time.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()

        # The balanced preset: a delete and a ladder step per flagged verdict.
        expected = 2 * flagged
        results: dict[str, ActionResult] = {}
        deadline = time.monotonic() + timeout_s
        while len(results) < expected and time.monotonic() < deadline:
            if actioner.done():
                actioner.result()
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                for record in batch:
                    if record.value is not None:
                        result = ActionResult.model_validate_json(record.value)
                        results[result.action_id] = result
        if len(results) < expected:
            logger.warning(
                "bench: %d of %d actions within %.0f s", len(results), expected, timeout_s
            )
    finally:
        stop.set()
        try:
            await asyncio.wait_for(actioner, timeout=30)
        except (TimeoutError, asyncio.CancelledError):
            actioner.cancel()
        await consumer.stop()
        await producer.stop()
        await discord.close()

    latencies: list[float] = []
    deletes: list[float] = []
    last = began
    for result in results.values():
        done_at = result.completed_at.timestamp()
        last = max(last, done_at)
        latency = done_at - produced_at.get(result.message_id, done_at)
        latencies.append(latency)
        if result.kind.value == "delete":
            deletes.append(latency)
    elapsed = last - began
    return {
        "verdicts": float(verdict_count),
        "flagged": float(flagged),
        "actions": float(len(results)),
        "actions_done": float(sum(r.status.value == "done" for r in results.values())),
        "elapsed_s": round(elapsed, 3),
        "actions_per_s": round(len(results) / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_p50_s": round(percentile(latencies, 50), 4),
        "latency_p99_s": round(percentile(latencies, 99), 4),
        "delete_latency_p50_s": round(percentile(deletes, 50), 4),
        "delete_latency_p99_s": round(percentile(deletes, 99), 4),
        "platform_requests": float(len(discord.requests)),
        "rate_limited": float(discord.rate_limited),
        "bulk_deletes": float(discord.count("bulk-delete", 204)),
    }

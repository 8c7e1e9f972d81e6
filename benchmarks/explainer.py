"""The explainer's benchmark: explanations per second and their latency after the verdict.

The real explainer (``explainers.service.serve``) runs in this process on its own topics (a
unique suffix) against the local stack's Kafka, with the configured sample count and queue.
Its verdicts are the bundled sample's lines (``ingest/samples/livestream.jsonl``) that the
model grades at ``min_severity`` or above, scored here first, as the scorer would.

Two phases:
1. a burst: ``count`` flagged verdicts at once; explanations/s = explanations / (last
   explanation - first verdict). Latency here is mostly queueing (newest first: the oldest wait);
2. a steady stream at half the burst rate: latency from the verdict's ``scored_at`` to the
   explanation's ``created_at``, p50 and p99, what a moderator sees in normal running.

The cache hit rate is the share of perturbed texts that needed no encoder time (repeats within
an explanation, and lines explained before).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from core.clients import kafka_consumer, kafka_producer
from core.metrics import percentile
from core.settings import Settings
from core.topic_admin import create_topics
from explainers.service import load_explainer, serve
from schemas.events import Platform, Severity, Verdict
from schemas.topics import DEADLETTER, EXPLANATIONS, FEEDBACK, VERDICTS
from toxicity.explanation import Explainer

logger = logging.getLogger(__name__)
SAMPLE = Path(__file__).resolve().parent.parent / "ingest" / "samples" / "livestream.jsonl"


def flagged_lines(explainer: Explainer, min_severity: str, limit: int) -> list[dict[str, Any]]:
    """The sample's lines the model grades at ``min_severity`` or above, with their scores."""
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    scores = explainer.scorer.score([r["text"] for r in records])
    floor = Severity(min_severity).rank
    out = []
    for record, score in zip(records, scores, strict=True):
        if score.severity.rank >= floor:
            out.append({**record, "p_toxic": score.p_toxic, "severity": score.severity.value})
    return out[:limit]


def verdict_of(record: dict[str, Any], message_id: str, version: str) -> Verdict:
    now = datetime.now(UTC)
    return Verdict(
        message_id=message_id,
        platform=Platform.REPLAY,
        community=record["community"],
        channel=record["channel"],
        user=record["user"],
        text=record["text"],
        p_toxic=record["p_toxic"],
        severity=Severity(record["severity"]),
        flagged=True,
        model_version=version,
        sent_at=now,
        received_at=now,
        scored_at=now,
    )


async def bench_explainer(
    settings: Settings, count: int = 200, *, timeout_s: float = 300.0
) -> dict[str, float]:
    """Run the explainer on ``count`` flagged sample lines; return its rate and latency.

    Keys: ``samples``, ``explanations``, ``explanations_per_s`` (burst), ``burst_p50_s``,
    ``burst_p99_s``, ``steady_rate_per_s``, ``latency_p50_s``, ``latency_p99_s`` (steady),
    ``cache_hit_rate``, ``embedded_per_explanation``, ``shed``.
    """
    run = uuid.uuid4().hex[:10]
    bench = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_suffix": f".bench{run}"})}
    )
    suffix = bench.kafka.topic_suffix
    await create_topics(bench.kafka, specs=(VERDICTS, FEEDBACK, EXPLANATIONS, DEADLETTER))
    explainer = await asyncio.to_thread(load_explainer, bench)
    lines = await asyncio.to_thread(
        flagged_lines, explainer, bench.explainer.min_severity, count + count // 2
    )
    burst, steady = lines[:count], lines[count:]
    shed_before = _shed()
    stop = asyncio.Event()
    service = asyncio.create_task(serve(bench, stop, explainer))
    producer = kafka_producer(bench.kafka)
    reader = kafka_consumer(bench.kafka, EXPLANATIONS.name_for(suffix), group_id=None)
    await producer.start()
    await reader.start()
    try:
        deadline = time.monotonic() + 120
        while REGISTRY.get_sample_value("warden_ready", {"service": "explainer"}) != 1.0:
            if service.done():
                service.result()
            if time.monotonic() > deadline:
                raise TimeoutError("the explainer did not get ready in 120 s")
            await asyncio.sleep(0.2)
        before = explainer.stats.samples, explainer.stats.embedded
        topic = VERDICTS.name_for(suffix)

        async def send(record: dict[str, Any], message_id: str) -> None:
            verdict = verdict_of(record, message_id, explainer.version)
            await producer.send(topic, verdict.to_json_bytes(), key=verdict.key.encode())

        started = time.monotonic()
        for i, record in enumerate(burst):
            await send(record, f"b{run}-{i}")
        await producer.flush()
        burst_latency, last = await _collect(reader, f"b{run}-", len(burst), timeout_s)
        burst_seconds = max(last - started, 1e-9)
        rate = len(burst_latency) / burst_seconds
        steady_rate = max(rate / 2, 0.1)
        for i, record in enumerate(steady):
            await send(record, f"s{run}-{i}")
            await producer.flush()
            await asyncio.sleep(1 / steady_rate)
        steady_latency, _ = await _collect(reader, f"s{run}-", len(steady), timeout_s)
        samples = explainer.stats.samples - before[0]
        embedded = explainer.stats.embedded - before[1]
        explained = len(burst_latency) + len(steady_latency)
        return {
            "samples": bench.explainer.samples,
            "explanations": explained,
            "explanations_per_s": round(rate, 2),
            "burst_p50_s": round(percentile(burst_latency, 50), 2),
            "burst_p99_s": round(percentile(burst_latency, 99), 2),
            "steady_rate_per_s": round(steady_rate, 2),
            "latency_p50_s": round(percentile(steady_latency, 50), 3),
            "latency_p99_s": round(percentile(steady_latency, 99), 3),
            "cache_hit_rate": round(1 - embedded / samples, 3) if samples else 0.0,
            "embedded_per_explanation": round(embedded / max(explained, 1), 1),
            "shed": _shed() - shed_before,
        }
    finally:
        stop.set()
        await asyncio.gather(service, return_exceptions=True)
        await reader.stop()
        await producer.stop()


def _shed() -> float:
    return sum(
        REGISTRY.get_sample_value("warden_explanations_shed_total", {"severity": s}) or 0.0
        for s in ("LOW", "MEDIUM", "HIGH", "SAFE")
    )


async def _collect(
    reader: Any, prefix: str, count: int, timeout_s: float
) -> tuple[list[float], float]:
    """Latencies (s) of the explanations of ``prefix`` verdicts, and when the last arrived."""
    latency: dict[str, float] = {}
    last = time.monotonic()
    deadline = last + timeout_s
    while len(latency) < count and time.monotonic() < deadline:
        batches = await reader.getmany(timeout_ms=250)
        for records in batches.values():
            for record in records:
                payload = json.loads(record.value)
                if not payload["message_id"].startswith(prefix):
                    continue
                created = datetime.fromisoformat(payload["created_at"])
                scored = datetime.fromisoformat(payload["verdict_scored_at"])
                latency[payload["message_id"]] = (created - scored).total_seconds()
                last = time.monotonic()
    if len(latency) < count:
        logger.warning("%d of %d explanations arrived in %.0f s", len(latency), count, timeout_s)
    return list(latency.values()), last

"""One benchmark run on this machine: the model alone, the pipeline, the per-message HTTP design.

Workloads come from ``devkit.chatgen`` with a fixed seed:
- *unique*: every text distinct, so no cache can help (the honest throughput);
- *livestream*: realistic chat with repetition (emote spam, copypasta) and raids.

Measurements, in order:
1. model-only ceiling: batched inference on unique texts in this process, no Kafka (then
   Redis's feature read, and 50,000 records through the broker to warm it up);
2. pipeline throughput: one scorer worker drains messages published to fresh topics (encoded
   before the first send, so that publishing costs the drain little); the rate comes from the
   verdicts' own ``scored_at`` stamps, and the end is found by one consumer asking the verdict
   topic's end offsets every 0.25 s; then the ceiling once more, with the worker idle. The
   ratios divide by the mean of the two ceiling readings: this machine's speed moves within
   minutes, and a ceiling read only before the drains compared them with another machine;
   then (after step 3) the same drains on one scorer per core, one encoder session each, and
   a third ceiling reading: their ratios divide by the mean of the second and third;
3. pipeline latency at fixed offered loads (100 msg/s and others, for the plot): messages
   stamped when published, latency = verdict read back by this process - ``sent_at``;
4. the per-message HTTP design: a FastAPI ``/predict`` around the same model, called once per
   message, sequentially, as the seed consumers did;
5. optionally the actioner: verdict -> action latency and actions/s against a local Discord;
6. optionally the explainer: LIME explanations/s and their latency after the verdict
   (``benchmarks.explainer``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.cpu_sampler import CpuSampler, disturbance, stack_pids
from benchmarks.host import machine
from benchmarks.stage_costs import STAGE_METRIC, THREAD_METRIC, stage_costs, stage_table
from core.clients import kafka_consumer, kafka_producer
from core.metrics import percentile
from core.net import free_port
from core.settings import Settings
from core.topic_admin import TopicEnds
from devkit.chatgen import load_messages
from devkit.processes import ServiceProcess
from schemas.events import ChatMessage
from schemas.topics import CHAT_MESSAGES, VERDICTS
from toxicity.encoder import default_workers

if TYPE_CHECKING:
    from toxicity.base import TextScorer

logger = logging.getLogger(__name__)
SEED = 42
READ_TARGET_BATCH = 128  # messages in a batch of the Redis feature read's latency target


@dataclass(frozen=True)
class Plan:
    ceiling_messages: int
    unique_messages: int
    livestream_messages: int
    latency_seconds: float
    loads: tuple[float, ...]
    http_seconds: float
    actioner_verdicts: int
    # Flagged verdicts the explainer explains in its burst (0 = skip it).
    explanations: int = 0

    @classmethod
    def quick(cls) -> Plan:
        return cls(2_000, 4_000, 6_000, 20.0, (50.0, 100.0, 200.0, 400.0), 15.0, 400, 60)

    @classmethod
    def full(cls) -> Plan:
        loads = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0)
        return cls(10_000, 20_000, 30_000, 60.0, loads, 60.0, 2_000, 200)


@dataclass
class Report:
    results: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)


def workload(kind: str, count: int, prefix: str) -> list[dict[str, Any]]:
    """Messages of one workload, with ids unique to this run."""
    messages = load_messages(
        count,
        seed=SEED,
        unique=kind == "unique",
        raid_every=None if kind == "unique" else 1_500,
        community=f"bench-{kind}",
    )
    out = []
    for message in messages:
        message["message_id"] = prefix + message["message_id"]
        out.append(message)
    return out


def stamped(record: dict[str, Any]) -> ChatMessage:
    now = datetime.now(UTC).isoformat()
    return ChatMessage.model_validate({**record, "sent_at": now, "received_at": now})


# --- 1. the model alone -------------------------------------------------------------------


def model_ceiling(model: TextScorer, texts: Sequence[str], batch: int) -> float:
    """Messages a second that ``model`` scores alone, ``batch`` unique texts a call.

    The first call warms the model up (first-call allocations, lazy initialisation) and is not
    timed, nor are its texts scored again: the encoder remembers what it embedded, and until
    the fifteenth session of issue #16 the timed calls included the warm-up's texts, served
    from that memory (512 of a full run's 10,000 texts, a quarter of a quick run's 2,000).
    """
    warm = min(batch, len(texts) // 2)
    model.score(list(texts[:warm]))
    timed = texts[warm:]
    started = time.perf_counter()
    for start in range(0, len(timed), batch):
        model.score(list(timed[start : start + batch]))
    return len(timed) / (time.perf_counter() - started)


# --- 2./3. the pipeline -------------------------------------------------------------------


class Worker(ServiceProcess):
    """A `warden scorer` process on this run's own topics, with its counters."""

    @classmethod
    def start(cls, settings: Settings, env: dict[str, str], log: Path) -> Worker:
        return cls.spawn(
            "scorer",
            env=env,
            log=log,
            metrics_port=int(env["WARDEN_METRICS__SCORER_PORT"]),
            host=settings.metrics.host,
        )

    def counter(self, name: str, labels: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(f"{name}{{") and labels in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def cpu(self) -> dict[str, float]:
        """The scorer's CPU seconds so far: per stage, and per thread (``thread:<kind>``)."""
        out: dict[str, float] = {}
        for line in self.metrics().splitlines():
            for name, prefix in ((STAGE_METRIC, ""), (THREAD_METRIC, "thread:")):
                if line.startswith(name + "{"):
                    label = line.split('"', 2)[1]
                    out[prefix + label] = float(line.rsplit(" ", 1)[1])
        return out


class WorkerGroup:
    """Scorer workers in one consumer group, read as one: counters and CPU summed."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)

    @property
    def log(self) -> Path:
        return self.workers[0].log

    def counter(self, name: str, labels: str) -> float:
        return sum(w.counter(name, labels) for w in self.workers)

    def cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for worker in self.workers:
            for name, seconds in worker.cpu().items():
                out[name] = out.get(name, 0.0) + seconds
        return out

    def alive(self) -> bool:
        return all(w.alive() for w in self.workers)

    def pids(self) -> dict[str, int]:
        if len(self.workers) == 1:
            return {"scorer": self.workers[0].pid}
        return {f"scorer_{i}": w.pid for i, w in enumerate(self.workers, 1)}


async def publish_all(settings: Settings, records: list[dict[str, Any]]) -> None:
    # Encoded before the first send: the scorer starts on the first records at once, and while
    # it drains, this process should cost the two cores as little as it can.
    messages = [stamped(record) for record in records]
    payloads = [(m.key.encode(), m.to_json_bytes()) for m in messages]
    producer = kafka_producer(settings.kafka, linger_ms=20)
    await producer.start()
    try:
        topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
        for key, value in payloads:
            await producer.send(topic, value, key=key)
    finally:
        await producer.stop()


async def fresh_topics(settings: Settings, tag: str) -> Settings:
    """``settings`` on topics of their own (suffix ``.<tag><8 hex>``), created on the broker."""
    from core.topic_admin import create_topics

    suffix = f".{tag}{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_suffix": suffix})}
    )
    await create_topics(local.kafka, suffix)
    return local


async def warm_broker(settings: Settings, count: int) -> float:
    """Send ``count`` chat records through the broker and read them back (scratch topics, no
    scorer); seconds taken. A broker just started runs its request paths interpreted until the
    JVM has compiled them: a first run on a fresh stack put 286 us of the broker's CPU on each
    unique message, against 57 once warm."""
    started = time.monotonic()
    local = await fresh_topics(settings, "warm")
    await publish_all(local, workload("unique", count, "warm-"))
    topic = CHAT_MESSAGES.name_for(local.kafka.topic_suffix)
    consumer = kafka_consumer(local.kafka, topic, group_id=None)
    await consumer.start()
    try:
        seen, deadline = 0, time.monotonic() + 120
        while seen < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            seen += sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()
    return time.monotonic() - started


async def read_verdicts(settings: Settings, prefix: str, count: int) -> list[dict[str, Any]]:
    consumer = kafka_consumer(
        settings.kafka, VERDICTS.name_for(settings.kafka.topic_suffix), group_id=None
    )
    await consumer.start()
    found: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + 120
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                for record in records:
                    verdict = json.loads(record.value)
                    if verdict["message_id"].startswith(prefix):
                        found[verdict["message_id"]] = verdict
    finally:
        await consumer.stop()
    return list(found.values())


async def drain_rate(
    settings: Settings,
    worker: Worker | WorkerGroup,
    records: list[dict[str, Any]],
    prefix: str,
    pids: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Publish ``records``, wait until the worker has scored them all, return its rate.

    With ``pids`` (name -> process; the worker and this process are added), also the machine's
    CPU over the scoring span (``machine_cpu``, :class:`benchmarks.cpu_sampler.CpuSampler`).
    A :class:`WorkerGroup` drains as one: its counters and CPU are summed.
    """
    if isinstance(worker, Worker):
        worker = WorkerGroup([worker])
    hits_before = worker.counter("warden_cache_lookups_total", 'result="hit"')
    misses_before = worker.counter("warden_cache_lookups_total", 'result="miss"')
    reused_before = worker.counter("warden_encoder_reused_total", 'service="scorer"')
    detector_s_before = worker.counter("warden_detector_seconds_sum", 'service="scorer"')
    cpu_before = worker.cpu()
    watched = {**worker.pids(), "harness": os.getpid(), **(pids or {})}
    sampler: CpuSampler | AbstractContextManager[None] = (
        CpuSampler(watched) if pids is not None else nullcontext()
    )
    with sampler:
        await _drain(settings, worker, records)
    await asyncio.sleep(0.2)  # the last batch's acknowledgement and stage sums
    costs = stage_costs(cpu_before, worker.cpu(), len(records))
    verdicts = await read_verdicts(settings, prefix, len(records))
    stamps = sorted(datetime.fromisoformat(v["scored_at"]).timestamp() for v in verdicts)
    first = stamps[0]
    after_first_batch = sum(1 for s in stamps if s > first)
    span = stamps[-1] - first
    hits = worker.counter("warden_cache_lookups_total", 'result="hit"') - hits_before
    misses = worker.counter("warden_cache_lookups_total", 'result="miss"') - misses_before
    reused = worker.counter("warden_encoder_reused_total", 'service="scorer"') - reused_before
    detector_s = worker.counter("warden_detector_seconds_sum", 'service="scorer"')
    rate = after_first_batch / span if span > 0 else float("nan")
    return {
        "costs": costs,
        "msgs_per_s": rate,
        "messages": float(len(verdicts)),
        "machine_cpu": (
            _scorers_summed(sampler.between(first, stamps[-1], rate))
            if isinstance(sampler, CpuSampler)
            else None
        ),
        "cache_hit_rate": hits / (hits + misses) if hits + misses else 0.0,
        # Of the misses, those whose token ids the encoder had embedded before (no run).
        "encoder_reused_rate": reused / misses if misses else 0.0,
        # The stream detectors' wall time (traits, one Redis round trip, labels) per message.
        "detector_us_per_msg": 1e6 * (detector_s - detector_s_before) / max(1, len(verdicts)),
        "labelled_by_detectors": float(
            sum(1 for v in verdicts if set(v.get("reasons", {})) - {"hard_slur"})
        ),
    }


def _scorers_summed(machine_cpu: dict[str, Any] | None) -> dict[str, Any] | None:
    """Several workers' rows (``scorer_1``...) also as one ``scorer`` row."""
    if machine_cpu is None:
        return None
    us = machine_cpu["us_per_msg"]
    workers = [name for name in us if name.startswith("scorer_")]
    if workers:
        machine_cpu["us_per_msg"] = {"scorer": round(sum(us[n] for n in workers), 1), **us}
    return machine_cpu


async def _drain(settings: Settings, worker: WorkerGroup, records: list[dict[str, Any]]) -> None:
    """Publish ``records`` and return once the verdict topic holds as many more verdicts."""
    # One consumer for the whole wait: a client per question took CPU from the scorer measured
    # here, on the same two cores.
    async with TopicEnds(settings.kafka, VERDICTS) as verdict_ends:
        target = await verdict_ends.size() + len(records)
        await publish_all(settings, records)
        deadline = time.monotonic() + 600
        while await verdict_ends.size() < target:
            if time.monotonic() > deadline or not worker.alive():
                raise RuntimeError(f"the scorer did not drain the stream; see {worker.log}")
            # The rate comes from the verdicts' stamps: this only decides when to stop.
            await asyncio.sleep(0.25)


async def latency_at(
    settings: Settings, records: list[dict[str, Any]], rate: float, seconds: float
) -> dict[str, float]:
    """Offer ``rate`` msg/s for ``seconds``; end-to-end latency of each verdict read back."""
    count = max(1, int(rate * seconds))
    records = records[:count]
    prefix = records[0]["message_id"].split("-", 1)[0] + "-"
    sent: dict[str, float] = {}
    received: set[str] = set()
    latencies: list[float] = []
    consumer = kafka_consumer(
        settings.kafka,
        VERDICTS.name_for(settings.kafka.topic_suffix),
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    for partition in consumer.assignment():
        await consumer.position(partition)
    producer = kafka_producer(settings.kafka)
    await producer.start()
    topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)

    async def offer() -> None:
        started = time.monotonic()
        for i, record in enumerate(records):
            wait = started + i / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            message = stamped(record)
            sent[message.message_id] = message.sent_at.timestamp()
            await producer.send(topic, message.to_json_bytes(), key=message.key.encode())

    offering = asyncio.create_task(offer())
    deadline = time.monotonic() + seconds + 60
    try:
        while len(received) < len(records) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for batch in batches.values():
                for record in batch:
                    verdict = json.loads(record.value)
                    message_id = verdict["message_id"]
                    if message_id.startswith(prefix) and message_id not in received:
                        received.add(message_id)
                        sent_at = datetime.fromisoformat(verdict["sent_at"]).timestamp()
                        latencies.append(now - sent_at)
        await offering
    finally:
        await producer.stop()
        await consumer.stop()
    # Above capacity not every verdict arrives in the window: those count with the time they
    # had waited so far, so the percentiles are lower bounds, never flattered by leaving out.
    ended = time.time()
    latencies += [ended - sent[m] for m in sent if m not in received]
    ms = [1000 * x for x in latencies]
    return {
        "offered_msgs_per_s": rate,
        "messages": float(len(records)),
        "received": float(len(received)),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
    }


async def redis_read_latency(settings: Settings, batches: int, batch_size: int) -> dict[str, float]:
    """Feature reads as the scorer does them: one pipelined read per batch of messages."""
    from redis.asyncio import Redis

    from core.clients import redis_client
    from scorers.context_store import FeatureStore, Outcome

    client: Redis = redis_client(settings.redis)
    store = FeatureStore(client)
    records = workload("livestream", batches * batch_size, "f-")
    messages = [stamped(r) for r in records]
    try:
        for start in range(0, len(messages), batch_size):  # counted as the scorer counts them
            batch = messages[start : start + batch_size]
            await store.update(batch, [Outcome(bad=False, violation=False)] * len(batch))
        times = []
        for start in range(0, len(messages), batch_size):
            began = time.perf_counter()
            await store.read(messages[start : start + batch_size])
            times.append(1000 * (time.perf_counter() - began))
    finally:
        await client.aclose()
    return {
        "batch_size": float(batch_size),
        "p50_ms": round(percentile(times, 50), 3),
        "p99_ms": round(percentile(times, 99), 3),
    }


# --- 4. the per-message HTTP design ------------------------------------------------------


def http_baseline(
    env: dict[str, str], records: list[dict[str, Any]], seconds: float, log: Path
) -> float:
    import httpx

    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "benchmarks.http_baseline", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the HTTP baseline did not start; see {log}")
                time.sleep(0.5)
            for record in records[:20]:  # warm-up
                client.post("/predict", json={"text": record["text"]}).raise_for_status()
            done = 0
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                record = records[done % len(records)]
                client.post("/predict", json={"text": record["text"]}).raise_for_status()
                done += 1
            return done / (time.monotonic() - started)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


# --- the run --------------------------------------------------------------------------------


def worker_env(settings: Settings, suffix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "WARDEN_KAFKA__TOPIC_SUFFIX": suffix,
            "WARDEN_METRICS__SCORER_PORT": str(free_port()),
            "WARDEN_MODEL__KIND": settings.model.kind,
            "WARDEN_MODEL__DEVICE": settings.model.device,
            "WARDEN_MODEL__QUANTIZE": settings.model.quantize,
            "WARDEN_SCORER__MAX_BATCH": str(settings.scorer.max_batch),
            "WARDEN_SCORER__MAX_WAIT_MS": str(settings.scorer.max_wait_ms),
        }
    )
    return env


async def run(settings: Settings, plan: Plan, log_dir: Path) -> Report:
    report = Report()
    results = report.results
    results["machine"] = machine()
    results["settings"] = {
        "model_kind": settings.model.kind,
        "device": settings.model.device,
        "quantize": settings.model.quantize,
        "max_batch": settings.scorer.max_batch,
        "max_wait_ms": settings.scorer.max_wait_ms,
        "cache_size": settings.scorer.cache_size,
    }
    from toxicity.loading import load_model

    logger.info("1/5 model-only ceiling on %d unique texts", plan.ceiling_messages)
    model = await asyncio.to_thread(load_model, settings.model)
    # Readings on texts of their own each: the encoder remembers the texts it embedded. Two
    # around the one-scorer drains, two around the per-core drains.
    texts = [m["text"] for m in workload("unique", 4 * plan.ceiling_messages, "c-")]
    before, after, per_core_before, last = (
        texts[i * plan.ceiling_messages : (i + 1) * plan.ceiling_messages] for i in range(4)
    )
    batch = settings.scorer.max_batch
    ceilings = [await asyncio.to_thread(model_ceiling, model, before, batch)]
    results["model_version"] = model.version

    # Batches of 128, as the read's target (p99 < 5 ms) was set, and of the scorer's largest:
    # a backlog's batches, whose read a message pays a share of.
    results["redis_feature_read"] = await redis_read_latency(
        settings, batches=500, batch_size=READ_TARGET_BATCH
    )
    if settings.scorer.max_batch != READ_TARGET_BATCH:
        results["redis_feature_read_max_batch"] = await redis_read_latency(
            settings,
            batches=max(50, 500 * READ_TARGET_BATCH // settings.scorer.max_batch),
            batch_size=settings.scorer.max_batch,
        )
    results["broker_warm_up_s"] = round(await warm_broker(settings, 50_000), 1)

    local = await fresh_topics(settings, "bench")
    suffix = local.kafka.topic_suffix
    env = worker_env(settings, suffix)
    # The broker's and Redis's CPU too, when they are the local stack's.
    pids = stack_pids(settings)
    worker = Worker.start(local, env, log_dir / "bench-scorer.log")
    try:
        await worker.wait_ready(180)
        logger.info("2/5 pipeline throughput: unique texts, then the livestream replay")
        unique = await drain_rate(
            local, worker, workload("unique", plan.unique_messages, "u-"), "u-", pids
        )
        replay = await drain_rate(
            local, worker, workload("livestream", plan.livestream_messages, "r-"), "r-", pids
        )
        results["pipeline_unique_msgs_per_s"] = round(unique["msgs_per_s"], 1)
        results["pipeline_replay_msgs_per_s"] = round(replay["msgs_per_s"], 1)
        results["cache_hit_rate"] = round(replay["cache_hit_rate"], 3)
        results["encoder_reused_rate"] = round(replay["encoder_reused_rate"], 3)
        # Where each message's CPU goes (us per message), and the same as a table.
        results["stage_costs_us_per_msg"] = {"unique": unique["costs"], "replay": replay["costs"]}
        logger.info("per-stage CPU:\n%s", stage_table(results["stage_costs_us_per_msg"]))
        # The machine over each scoring span: the scorer, broker, Redis, this process, idle.
        results["machine_cpu_us_per_msg"] = {
            "unique": unique["machine_cpu"],
            "replay": replay["machine_cpu"],
        }
        logger.info("machine CPU over the drains: %s", results["machine_cpu_us_per_msg"])
        results["detectors"] = {
            "unique_us_per_msg": round(unique["detector_us_per_msg"], 1),
            "replay_us_per_msg": round(replay["detector_us_per_msg"], 1),
            "replay_labelled_share": round(
                replay["labelled_by_detectors"] / max(1.0, replay["messages"]), 3
            ),
        }
        logger.info("the model-only ceiling again, after the drains")
        ceilings.append(await asyncio.to_thread(model_ceiling, model, after, batch))
        ceiling = sum(ceilings) / len(ceilings)
        results["ceiling_msgs_per_s"] = round(ceiling, 1)
        results["ceiling_readings_msgs_per_s"] = [round(c, 1) for c in ceilings]

        logger.info("3/5 end-to-end latency at offered loads %s msg/s", plan.loads)
        for i, rate in enumerate(sorted({100.0, *plan.loads})):
            seconds = plan.latency_seconds if rate == 100.0 else plan.latency_seconds / 2
            records = workload("livestream", int(rate * seconds) + 1, f"l{i}-")
            point = await latency_at(local, records, rate, seconds)
            report.curve.append(point)
            if rate == 100.0:
                results["p50_ms_at_100_msgs_per_s"] = round(point["p50_ms"], 1)
                results["p95_ms_at_100_msgs_per_s"] = round(point["p95_ms"], 1)
                results["p99_ms_at_100_msgs_per_s"] = round(point["p99_ms"], 1)
    finally:
        worker.stop()

    cores = default_workers()
    if cores > 1:
        logger.info("3b. the drains again on %d scorers, one per core", cores)
        # Its ratios divide by the readings just before and after its own drains (the latency
        # phases take minutes, and this machine's speed moves within minutes).
        ceilings.append(await asyncio.to_thread(model_ceiling, model, per_core_before, batch))
        per_core = await per_core_drains(settings, plan, log_dir, cores, pids, model.version)
        logger.info("the model-only ceiling a fourth time, after those drains")
        ceilings.append(await asyncio.to_thread(model_ceiling, model, last, batch))
        per_core["ceiling_msgs_per_s"] = round((ceilings[2] + ceilings[3]) / 2, 1)
        results["ceiling_readings_msgs_per_s"] = [round(c, 1) for c in ceilings]
        results["per_core"] = per_core
        logger.info(
            "per-stage CPU, %d scorers:\n%s", cores, stage_table(per_core["stage_costs_us_per_msg"])
        )
    del model  # its sessions' memory

    logger.info("4/5 the per-message HTTP design for %.0f s", plan.http_seconds)
    http_rate = await asyncio.to_thread(
        http_baseline,
        worker_env(settings, suffix),
        workload("livestream", 5_000, "h-"),
        plan.http_seconds,
        log_dir / "bench-http.log",
    )
    results["per_message_http_msgs_per_s"] = round(http_rate, 1)

    if plan.actioner_verdicts:
        from benchmarks.actioner import bench_actioner

        logger.info("5/5 the actioner against a rate-limited local Discord")
        results["actioner"] = await bench_actioner(settings, plan.actioner_verdicts)

    if plan.explanations:
        from benchmarks.explainer import bench_explainer

        logger.info("6. the explainer on %d flagged sample lines", plan.explanations)
        results["explainer"] = await bench_explainer(settings, plan.explanations)

    results["disturbed_drains"] = disturbed_drains(results)
    pipeline_unique = results["pipeline_unique_msgs_per_s"]
    pipeline_replay = results["pipeline_replay_msgs_per_s"]
    results["ratios"] = {
        "unique_vs_ceiling": round(pipeline_unique / ceiling, 2),
        "replay_vs_ceiling": round(pipeline_replay / ceiling, 2),
        "replay_vs_http": round(pipeline_replay / http_rate, 1),
        "unique_vs_http": round(pipeline_unique / http_rate, 1),
    }
    results["targets"] = {  # issue #16's, and the per-message HTTP design's
        "unique_at_least_0.85x_ceiling": pipeline_unique >= 0.85 * ceiling,
        "replay_at_least_3x_ceiling": pipeline_replay >= 3 * ceiling,
        "p99_under_50ms_at_100_msgs_per_s": results["p99_ms_at_100_msgs_per_s"] < 50,
        "replay_at_least_5x_http": pipeline_replay >= 5 * http_rate,
    }
    if "per_core" in results:
        per_core = results["per_core"]
        unique, replay = per_core["unique_msgs_per_s"], per_core["replay_msgs_per_s"]
        own = per_core["ceiling_msgs_per_s"]  # the readings around its drains
        results["ratios"]["per_core_unique_vs_ceiling"] = round(unique / own, 2)
        results["ratios"]["per_core_replay_vs_ceiling"] = round(replay / own, 2)
        results["ratios"]["per_core_replay_vs_http"] = round(replay / http_rate, 1)
        results["targets"].update(
            {
                "per_core_unique_at_least_0.85x_ceiling": unique >= 0.85 * own,
                "per_core_replay_at_least_3x_ceiling": replay >= 3 * own,
                "per_core_p99_under_50ms_at_100_msgs_per_s": per_core["p99_ms_at_100_msgs_per_s"]
                < 50,
                "per_core_replay_at_least_5x_http": replay >= 5 * http_rate,
            }
        )
    results["latency_curve"] = report.curve
    return report


async def per_core_drains(
    settings: Settings,
    plan: Plan,
    log_dir: Path,
    cores: int,
    pids: Mapping[str, int],
    model_version: str,
) -> dict[str, Any]:
    """The unique and replay drains, and the latency at 100 msg/s, on ``cores`` scorers in one
    consumer group, each with one encoder session, on topics of their own.

    One process per core rather than one process with a session per core: the processes'
    Python does not share one interpreter lock, so a scorer's event loop and another's model
    run side by side (on the replay, the machine's idle share over the drain falls from about
    15 % to about 3 %). The workers share their text-side rows through Redis, as deployments
    of several scorers do (``WARDEN_SCORER__SHARED_CACHE``): a user's lines go to one worker,
    and a line repeated by users of both would otherwise run the encoder in each. The rows of
    ``model_version`` are dropped before the drains (a run within the rows' TTL would find the
    same workload's) and after them.
    """
    from scorers.app import SharedCache

    shared = SharedCache(settings, model_version)
    local = await fresh_topics(settings, "bench")
    workers: list[Worker] = []
    try:
        dropped = await shared.clear()
        for i in range(cores):
            env = worker_env(settings, local.kafka.topic_suffix)  # a metrics port of its own
            env["WARDEN_MODEL__ENCODER_WORKERS"] = "1"
            env["WARDEN_SCORER__SHARED_CACHE"] = "true"
            log = log_dir / f"bench-scorer-{i + 1}-of-{cores}.log"
            workers.append(Worker.start(local, env, log))
        for worker in workers:  # ready: in the group, so the partitions are shared out
            await worker.wait_ready(180)
        group = WorkerGroup(workers)
        unique = await drain_rate(
            local, group, workload("unique", plan.unique_messages, "pu-"), "pu-", pids
        )
        replay = await drain_rate(
            local, group, workload("livestream", plan.livestream_messages, "pr-"), "pr-", pids
        )
        records = workload("livestream", int(100 * plan.latency_seconds) + 1, "pl-")
        point = await latency_at(local, records, 100.0, plan.latency_seconds)
    finally:
        for worker in workers:
            worker.stop()
        await shared.clear()
        await shared.close()
    return {
        "scorers": cores,
        "encoder_sessions_each": 1,
        "shared_cache": True,
        "shared_rows_dropped_before": dropped,
        "unique_msgs_per_s": round(unique["msgs_per_s"], 1),
        "replay_msgs_per_s": round(replay["msgs_per_s"], 1),
        "cache_hit_rate": round(replay["cache_hit_rate"], 3),
        "stage_costs_us_per_msg": {"unique": unique["costs"], "replay": replay["costs"]},
        "machine_cpu_us_per_msg": {
            "unique": unique["machine_cpu"],
            "replay": replay["machine_cpu"],
        },
        "p50_ms_at_100_msgs_per_s": round(point["p50_ms"], 1),
        "p99_ms_at_100_msgs_per_s": round(point["p99_ms"], 1),
    }


def disturbed_drains(results: dict[str, Any]) -> dict[str, str]:
    """The drains that other programs disturbed (``benchmarks.cpu_sampler.disturbance``)."""
    found: dict[str, str] = {}
    for deployment, machine_cpu in (
        ("one scorer", results.get("machine_cpu_us_per_msg")),
        ("one scorer per core", results.get("per_core", {}).get("machine_cpu_us_per_msg")),
    ):
        for workload_name, reading in (machine_cpu or {}).items():
            warning = disturbance(reading)
            if warning is not None:
                found[f"{deployment}, {workload_name}"] = warning
    return found


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = sorted(report.curve, key=lambda p: p["offered_msgs_per_s"])
    x = [p["offered_msgs_per_s"] for p in curve]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        ax.plot(x, [p[key] for p in curve], marker="o", label=label)
    ax.axhline(50, color="grey", linestyle="--", linewidth=1, label="p99 target at 100 msg/s")
    ceiling = report.results.get("ceiling_msgs_per_s")
    if ceiling:
        ax.axvline(ceiling, color="red", linestyle=":", linewidth=1, label="model-only ceiling")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (messages/s, livestream replay)")
    ax.set_ylabel("end-to-end latency (ms, sent -> verdict read)")
    machine_info = report.results["machine"]
    ax.set_title(
        f"ChatWarden scorer, {report.results.get('model_version')}, "
        f"{machine_info['cores']} cores{', ' + machine_info['gpu'] if machine_info['gpu'] else ''}"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

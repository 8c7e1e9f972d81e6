"""The explainer: moderation.verdicts.v1 -> LIME -> moderation.explanations.v1 (key message_id).

Every verdict at or above ``settings.explainer.min_severity`` is explained
(``toxicity.explanation``) and published as an ``Explanation``. It runs in its own process and
consumer group, so scoring never waits for it; LIME runs in one worker thread off the event
loop, fed by a bounded priority queue (``explainers.backlog``: disputes first, then HIGH,
MEDIUM, LOW, newest first) that sheds the least urgent when full, counted in
``warden_explanations_shed_total{severity}``.

On demand: the explainer also reads moderation.feedback.v1. A dispute of a message that was not
explained (below ``min_severity``, or shed) is explained with ``on_demand=true``, ahead of
everything else, from the verdict it remembers (the last ``recent_verdicts`` verdicts it did
not explain, bounded in characters too). A dispute of a message it never saw (before it started,
or forgotten) is counted (``warden_errors_total{kind="dispute_unknown_message"}``), not guessed.

Delivery is best-effort, on purpose: an explanation is advice for a person, not a decision. The
offsets of a batch are committed once its verdicts are queued (or shed), before they are
explained: a crash or restart loses at most the queue, and never makes a restarted explainer
work through history while new verdicts wait. A new consumer group starts at the end of the
topics for the same reason. An explanation may still be published twice (a rebalance during a
batch); its key is the message id, so a reader keeps the latest.

A record that is not a valid verdict or feedback event, or whose explanation fails, goes to the
dead-letter topic with the reason; the stream goes on. SIGTERM stops it within a few seconds:
the explanation under way is abandoned with the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from core import metrics
from core.clients import kafka_producer
from core.settings import Settings
from core.side_consumer import (
    ConsumerReadiness,
    close_quietly,
    consume_batches,
    join_group,
    watch_broker,
)
from core.stopping import until_stopped
from explainers.backlog import GRADES, Backlog, Job
from schemas.events import (
    DeadLetter,
    Feedback,
    FeedbackKind,
    Severity,
    Verdict,
    VerdictKind,
)
from schemas.topics import DEADLETTER, EXPLANATIONS, FEEDBACK, VERDICTS
from toxicity.explanation import Explainer

logger = logging.getLogger(__name__)
SERVICE = "explainer"
# Text kept in the recent-verdict memory at most, whatever ``recent_verdicts`` says.
RECENT_MAX_CHARS = 10_000_000
# Message ids explained, remembered so that a dispute of one is not explained again.
EXPLAINED_MEMORY = 50_000

EXPLANATIONS_TOTAL = Counter(
    "warden_explanations_total",
    "Explanations published, by the verdict's severity and whether a dispute asked for it.",
    ["severity", "on_demand"],
)
EXPLANATIONS_SHED = Counter(
    "warden_explanations_shed_total",
    "Verdicts not explained because the queue was full (the least urgent are shed).",
    ["severity"],
)
EXPLANATION_LATENCY = Histogram(
    "warden_explanation_latency_seconds",
    "From the verdict's scored_at to the explanation's created_at.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
EXPLAIN_SECONDS = Histogram(
    "warden_explain_seconds",
    "LIME time per explanation (perturbed texts scored and the local fit).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUEUE_DEPTH = Gauge("warden_explanations_queued", "Verdicts waiting to be explained.", ["grade"])
PERTURBED = Counter(
    "warden_explainer_perturbed_total",
    "Perturbed texts scored for LIME: hit (cached or repeated, no encoder time) or miss.",
    ["result"],
)


class RecentVerdicts:
    """The verdicts not explained, by message id, bounded in count and in characters."""

    def __init__(self, max_entries: int, max_chars: int = RECENT_MAX_CHARS) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.chars = 0
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()

    def add(self, verdict: Verdict) -> None:
        if self.max_entries <= 0 or len(verdict.text) > self.max_chars:
            return
        self.pop(verdict.message_id)
        self._verdicts[verdict.message_id] = verdict
        self.chars += len(verdict.text)
        while len(self._verdicts) > self.max_entries or self.chars > self.max_chars:
            _, old = self._verdicts.popitem(last=False)
            self.chars -= len(old.text)

    def pop(self, message_id: str) -> Verdict | None:
        verdict = self._verdicts.pop(message_id, None)
        if verdict is not None:
            self.chars -= len(verdict.text)
        return verdict


class ExplainerService:
    """Reads verdicts and disputes, queues them, explains one at a time, publishes."""

    def __init__(
        self,
        settings: Settings,
        explainer: Explainer,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
    ) -> None:
        suffix = settings.kafka.topic_suffix
        self.settings = settings
        self.explainer = explainer
        self.consumer = consumer
        self.producer = producer
        self.verdicts_topic = VERDICTS.name_for(suffix)
        self.feedback_topic = FEEDBACK.name_for(suffix)
        self.explanations_topic = EXPLANATIONS.name_for(suffix)
        self.deadletter_topic = DEADLETTER.name_for(suffix)
        self.min_rank = Severity(settings.explainer.min_severity).rank
        self.backlog = Backlog(settings.explainer.queue_size)
        self.recent = RecentVerdicts(settings.explainer.recent_verdicts)
        self.explained: OrderedDict[str, None] = OrderedDict()
        self.published = 0
        # One thread: LIME and the model are CPU work; more threads would take more from the
        # scorer on a shared machine (settings.explainer.threads sizes the model's own).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lime")

    # --- intake -------------------------------------------------------------------------

    async def handle(self, records: Sequence[Any]) -> None:
        """Queue the verdicts to explain and the disputes to answer; dead-letter the rest."""
        letters: list[DeadLetter] = []
        for record in records:
            try:
                if record.topic == self.feedback_topic:
                    self.on_feedback(Feedback.model_validate_json(record.value or b""))
                else:
                    self.on_verdict(Verdict.model_validate_json(record.value or b""))
            except ValidationError as exc:
                metrics.ERRORS.labels(SERVICE, "invalid_payload").inc()
                letters.append(self._letter(record, exc))
            spec = FEEDBACK if record.topic == self.feedback_topic else VERDICTS
            metrics.MESSAGES_IN.labels(SERVICE, spec.name).inc()
        self._gauge()
        for letter in letters:
            await self._dead_letter(letter)

    def on_verdict(self, verdict: Verdict) -> None:
        if verdict.kind is not VerdictKind.TEXT:
            return  # word-level explanations are for text; an image verdict lists its detections
        if verdict.severity.rank >= self.min_rank:
            self.queue(Job(verdict))
        else:
            self.recent.add(verdict)

    def on_feedback(self, feedback: Feedback) -> None:
        if feedback.kind is not FeedbackKind.DISPUTE or feedback.message_id in self.explained:
            return
        verdict = self.recent.pop(feedback.message_id)
        if verdict is None:
            # Queued already (it will be explained), or never seen: nothing to go on.
            if not self.backlog.holds(feedback.message_id):
                metrics.ERRORS.labels(SERVICE, "dispute_unknown_message").inc()
                logger.info("dispute of %s: its verdict is not known here", feedback.message_id)
            return
        self.queue(Job(verdict, on_demand=True))

    def queue(self, job: Job) -> None:
        shed = self.backlog.put(job)
        if shed is not None:
            EXPLANATIONS_SHED.labels(shed.verdict.severity.value).inc()
            # Shed but remembered: a dispute of it can still be explained.
            self.recent.add(shed.verdict)

    def _gauge(self) -> None:
        for grade, depth in self.backlog.depth().items():
            QUEUE_DEPTH.labels(grade).set(depth)

    # --- the worker ---------------------------------------------------------------------

    async def work(self) -> None:
        """Explain queued jobs one at a time, most urgent first, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            job = await self.backlog.get()
            self._gauge()
            started = time.perf_counter()
            before = self.explainer.stats.embedded, self.explainer.stats.hits
            try:
                explained = await loop.run_in_executor(
                    self._pool, self.explainer.explain_verdict, job.verdict
                )
                event = explained.event(
                    job.verdict.message_id, verdict=job.verdict, on_demand=job.on_demand
                )
            except Exception as exc:  # noqa: BLE001 - one message's failure; the stream goes on
                logger.warning(
                    "cannot explain %s: %s: %s",
                    job.verdict.message_id,
                    type(exc).__name__,
                    str(exc)[:200],
                )
                metrics.ERRORS.labels(SERVICE, "unexplainable").inc()
                await self._dead_letter(
                    DeadLetter.from_error(
                        exc,
                        job.verdict.to_json_bytes(),
                        service=SERVICE,
                        source_topic=self.verdicts_topic,
                        key=job.verdict.message_id.encode(),
                    )
                )
                continue
            EXPLAIN_SECONDS.observe(time.perf_counter() - started)
            PERTURBED.labels("miss").inc(self.explainer.stats.embedded - before[0])
            PERTURBED.labels("hit").inc(self.explainer.stats.hits - before[1])
            try:
                await self.producer.send_and_wait(
                    self.explanations_topic,
                    event.to_json_bytes(),
                    key=job.verdict.message_id.encode(),
                )
            except KafkaError as exc:
                # Best-effort (module doc): the next explanation is tried as usual.
                logger.warning("explanation of %s not published: %r", event.message_id, exc)
                metrics.ERRORS.labels(SERVICE, "publish_failed").inc()
                continue
            self.published += 1
            self.explained[event.message_id] = None
            while len(self.explained) > EXPLAINED_MEMORY:
                self.explained.popitem(last=False)
            EXPLANATIONS_TOTAL.labels(job.verdict.severity.value, str(job.on_demand).lower()).inc()
            metrics.MESSAGES_OUT.labels(SERVICE, EXPLANATIONS.name).inc()
            latency = (event.created_at - job.verdict.scored_at).total_seconds()
            EXPLANATION_LATENCY.observe(max(latency, 0.0))

    # --- Kafka --------------------------------------------------------------------------

    def _letter(self, record: Any, exc: Exception) -> DeadLetter:
        return DeadLetter.from_record(exc, record, service=SERVICE)

    async def _dead_letter(self, letter: DeadLetter) -> None:
        try:
            await self.producer.send_and_wait(
                self.deadletter_topic, letter.to_json_bytes(), key=letter.source_topic.encode()
            )
        except KafkaError as exc:
            logger.warning("dead letter not published: %r", exc)
            return
        metrics.DEAD_LETTERS.labels(SERVICE).inc()

    async def run(self, stop: asyncio.Event) -> None:
        """Read and queue until ``stop``, committing after each batch is queued."""
        worker = asyncio.create_task(self.work())
        try:
            await consume_batches(self.consumer, stop, self.handle, worker, max_records=500)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)


def load_explainer(settings: Settings) -> Explainer:
    """The configured hybrid model, on ``settings.explainer.threads`` threads, in an Explainer."""
    import torch

    from core.paths import model_cache_dir
    from toxicity.hybrid import HybridScorer
    from toxicity.loading import load_scorer

    threads = settings.explainer.threads
    torch.set_num_threads(threads)
    model = settings.model.model_copy(update={"kind": "hybrid", "encoder_workers": threads})
    scorer = load_scorer(model, cache_dir=model_cache_dir(settings, writable=True))
    if not isinstance(scorer, HybridScorer):  # pragma: no cover - load_scorer's contract
        raise TypeError(f"explanations need the hybrid model, not {type(scorer).__name__}")
    config = settings.explainer
    return Explainer(
        scorer, samples=config.samples, max_words=config.max_words, cache_size=config.cache_size
    )


async def serve(settings: Settings, stop: asyncio.Event, explainer: Explainer | None = None) -> int:
    """Run one explainer until ``stop``; returns the number of explanations published."""
    readiness = ConsumerReadiness(SERVICE)
    probe = asyncio.create_task(watch_broker(readiness, settings.kafka.bootstrap_list))
    consumer: AIOKafkaConsumer | None = None
    producer = kafka_producer(settings.kafka)
    service: ExplainerService | None = None
    try:
        if explainer is None:
            loading = asyncio.ensure_future(asyncio.to_thread(load_explainer, settings))
            if not (await until_stopped(stop, loading))[0]:
                return 0
            explainer = loading.result()
        logger.info("model %s loaded for explanations", explainer.version)
        topics = [
            VERDICTS.name_for(settings.kafka.topic_suffix),
            FEEDBACK.name_for(settings.kafka.topic_suffix),
        ]
        consumer, started = await join_group(
            settings.kafka, SERVICE, topics, readiness, producer, stop
        )
        if not started:
            return 0
        service = ExplainerService(settings, explainer, consumer, producer)
        logger.info(
            "explainer consuming %s, explaining %s and above (%d samples) to %s",
            " and ".join(topics),
            settings.explainer.min_severity,
            explainer.samples,
            service.explanations_topic,
        )
        await service.run(stop)
        return service.published
    finally:
        readiness.set("running", False)
        probe.cancel()
        if consumer is not None:
            await close_quietly("the Kafka consumer", consumer.stop())
        await close_quietly("the Kafka producer", producer.stop())
        for grade in GRADES:
            QUEUE_DEPTH.labels(grade).set(0)

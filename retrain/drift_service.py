"""The drift monitor: moderation.verdicts.v1 -> per-community windows -> Evidently every
``check_every_s`` -> metrics, HTML reports and ``DriftEvent`` on moderation.drift.v1.

It runs in its own process and consumer group (``<group_prefix>.drift``), so scoring never waits
for it; the Evidently tests run in one worker thread off the event loop, so reading goes on while
they run. What is measured and against what: ``retrain.drift``.

Delivery is best-effort, like the explainer's: drift is a trend over a thousand verdicts, not a
decision about one. Offsets are committed once a batch is in the windows; the windows live in
memory (a restart empties them and they refill from new verdicts; the references are files and
survive). A new consumer group starts at the end of the topic, so a monitor started on a busy
cluster never works through two weeks of history first. A record that is not a valid verdict is
counted (``warden_errors_total{service="drift",kind="invalid_payload"}``) and skipped: the
explainer and the actioner already dead-letter it, and a third copy would say nothing new.

A drifted community gets a ``DriftEvent`` (keyed ``platform:community``) and an HTML report at
most once per ``cooldown_s``; the cooldown is kept in memory, so a restart may repeat one.
Metrics are labelled by community for the ``metrics_communities`` largest windows and ``other``
for the rest (the worst of them), so a platform with ten thousand communities does not make
ten thousand series per feature.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from core import metrics
from core.clients import kafka_consumer, kafka_producer
from core.settings import DriftSettings, Settings
from core.side_consumer import (
    ConsumerReadiness,
    close_quietly,
    consume_batches,
    join_group,
    watch_broker,
)
from core.stopping import until_stopped
from retrain.drift import (
    DriftResult,
    ReferenceStore,
    Row,
    Sample,
    Window,
    Windows,
    compare,
    drift_event,
    folders,
    load_evidently,
    row_of,
    write_report,
)
from schemas.events import Verdict, VerdictKind, utcnow
from schemas.topics import DRIFT, VERDICTS

logger = logging.getLogger(__name__)
SERVICE = "drift"
OTHER = "other"

DRIFT_SCORE = Gauge(
    "warden_drift_score",
    "Evidently's drift score of one column of a community's verdicts against its reference "
    "(WARDEN_DRIFT__METHOD, psi by default: 0 the same, 0.1 some change, 0.25 a major one).",
    ["community", "feature"],
)
DRIFT_SHARE = Gauge(
    "warden_drift_share", "Share of a community's tested columns that drifted.", ["community"]
)
DRIFT_DETECTED = Gauge(
    "warden_drift_detected",
    "1 while a community's last test found drift (drift share or flag-rate shift over its "
    "threshold), else 0.",
    ["community"],
)
FLAG_RATE_SHIFT = Gauge(
    "warden_flag_rate_shift",
    "A community's flag rate in its current window minus its reference's (-1 to 1).",
    ["community"],
)
DRIFT_EVENTS = Counter("warden_drift_events_total", "DriftEvents published.")
DRIFT_CHECKS = Counter(
    "warden_drift_checks_total", "Community drift tests, by result (ok, drift, error).", ["result"]
)
CHECK_SECONDS = Histogram(
    "warden_drift_check_seconds",
    "Time of one community's drift test (Evidently, and the report when one is written).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
COMMUNITIES = Gauge(
    "warden_drift_communities",
    "Communities with a window (tracked) and with a reference (pinned).",
    ["state"],
)


@dataclass
class Job:
    """One community to test, taken from the windows on the event loop."""

    window: Window
    current: Sample
    reference: Sample
    may_report: bool


def run_job(job: Job, config: DriftSettings, reports: Path, when: datetime) -> DriftResult:
    """Test one community (in the worker thread); write its report when it drifted and its
    cooldown allows an event."""
    started = time.perf_counter()
    result = compare(job.current, job.reference, config)
    if result.detected and job.may_report:
        try:
            write_report(result, reports, config.keep_reports, when)
        except OSError as exc:  # a full disk must not cost the event
            logger.warning("drift report of %s not written: %s", job.window.key, exc)
    result.snapshot = None  # the report is written; the snapshot holds the whole data set
    CHECK_SECONDS.observe(time.perf_counter() - started)
    return result


class Gauges:
    """The drift gauges, with bounded community labels: the largest windows by name, the rest
    collapsed into ``other`` (each gauge the worst of them)."""

    def __init__(self, top: int) -> None:
        self.top = top
        self._series: set[tuple[str, ...]] = set()

    def label_of(self, results: dict[str, DriftResult], sizes: dict[str, int]) -> dict[str, str]:
        ranked = sorted(results, key=lambda key: (-sizes.get(key, 0), key))
        named = set(ranked[: self.top])
        return {key: key if key in named else OTHER for key in results}

    def export(self, results: dict[str, DriftResult], sizes: dict[str, int]) -> None:
        labels = self.label_of(results, sizes)
        scores: dict[tuple[str, str], float] = {}
        shares: dict[str, float] = {}
        detected: dict[str, int] = {}
        shifts: dict[str, float] = {}
        for key, result in results.items():
            label = labels[key]
            for feature, score in result.scores.items():
                scores[label, feature] = max(score, scores.get((label, feature), 0.0))
            shares[label] = max(result.share, shares.get(label, 0.0))
            detected[label] = max(int(result.detected), detected.get(label, 0))
            shift = result.flag_rate_shift
            if abs(shift) >= abs(shifts.get(label, 0.0)):
                shifts[label] = shift
        series: set[tuple[str, ...]] = set()
        for (label, feature), score in scores.items():
            DRIFT_SCORE.labels(label, feature).set(score)
            series.add(("score", label, feature))
        for label in shares:
            DRIFT_SHARE.labels(label).set(shares[label])
            DRIFT_DETECTED.labels(label).set(detected[label])
            FLAG_RATE_SHIFT.labels(label).set(shifts[label])
            series.add(("community", label))
        for gone in self._series - series:
            if gone[0] == "score":
                DRIFT_SCORE.remove(gone[1], gone[2])
            else:
                for gauge in (DRIFT_SHARE, DRIFT_DETECTED, FLAG_RATE_SHIFT):
                    gauge.remove(gone[1])
        self._series = series


class DriftService:
    """Reads verdicts into the windows; tests them on a schedule; publishes what drifted."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
    ) -> None:
        self.settings = settings
        self.config = settings.drift
        self.consumer = consumer
        self.producer = producer
        references, self.reports = folders(settings)
        self.windows = Windows(self.config, ReferenceStore(references))
        self.drift_topic = DRIFT.name_for(settings.kafka.topic_suffix)
        self.results: dict[str, DriftResult] = {}
        self.last_event: dict[str, float] = {}
        self.gauges = Gauges(self.config.metrics_communities)
        self.published = 0
        # One thread: Evidently is CPU work on a machine the scorer shares.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift")

    def handle(self, records: Sequence[Any]) -> None:
        """Fold a batch of verdict records into the windows."""
        for record in records:
            metrics.MESSAGES_IN.labels(SERVICE, VERDICTS.name).inc()
            try:
                verdict = Verdict.model_validate_json(record.value or b"")
            except ValidationError:
                metrics.ERRORS.labels(SERVICE, "invalid_payload").inc()
                continue
            if verdict.kind is not VerdictKind.TEXT:
                continue  # the monitor watches the text model's inputs and outputs
            self.windows.add(verdict)
        for key in self.windows.pinned:
            logger.info("reference pinned for %s from its first verdicts", key)
        self.windows.pinned.clear()

    def jobs(self, now: float) -> list[Job]:
        jobs = []
        for window in self.windows.due():
            assert window.reference is not None  # due() returns only windows with one
            window.checked_at_seen = window.seen
            last = self.last_event.get(window.key)
            jobs.append(
                Job(
                    window=window,
                    current=self.windows.current(window),
                    reference=window.reference.sample,
                    may_report=last is None or now - last >= self.config.cooldown_s,
                )
            )
        return jobs

    async def check(self) -> list[DriftResult]:
        """Test every community that is due; publish events; export the gauges."""
        loop = asyncio.get_running_loop()
        done: list[DriftResult] = []
        for job in self.jobs(time.time()):
            when = utcnow()
            try:
                result = await loop.run_in_executor(
                    self._pool, run_job, job, self.config, self.reports, when
                )
            except Exception as exc:  # noqa: BLE001 - one community's data; the others go on
                logger.warning(
                    "drift test of %s failed: %s: %s", job.window.key, type(exc).__name__, exc
                )
                metrics.ERRORS.labels(SERVICE, "drift_check_failed").inc()
                DRIFT_CHECKS.labels("error").inc()
                continue
            DRIFT_CHECKS.labels("drift" if result.detected else "ok").inc()
            if self.windows.get(job.window.key) is None:
                continue  # evicted while it was tested
            self.results[job.window.key] = result
            done.append(result)
            if result.detected and job.may_report:
                await self.publish(result, when)
        # Communities evicted from the windows leave the gauges too.
        self.results = {k: r for k, r in self.results.items() if self.windows.get(k) is not None}
        sizes = {w.key: len(w.rows) for w in self.windows}
        self.gauges.export(self.results, sizes)
        COMMUNITIES.labels("tracked").set(len(sizes))
        COMMUNITIES.labels("pinned").set(sum(w.reference is not None for w in self.windows))
        return done

    async def publish(self, result: DriftResult, when: datetime) -> None:
        event = drift_event(result, when)
        try:
            await self.producer.send_and_wait(
                self.drift_topic, event.to_json_bytes(), key=event.key.encode()
            )
        except KafkaError as exc:
            # Tried again at the next check: the cooldown starts only once one is out.
            logger.warning("drift event of %s not published: %r", result.key, exc)
            metrics.ERRORS.labels(SERVICE, "publish_failed").inc()
            self._retry(result.key)
            return
        self.last_event[result.key] = time.time()
        self.published += 1
        DRIFT_EVENTS.inc()
        metrics.MESSAGES_OUT.labels(SERVICE, DRIFT.name).inc()
        logger.warning(
            "drift in %s: %s drifted (share %.2f), flag rate %.3f -> %.3f; report %s",
            result.key,
            ", ".join(result.drifted) or "no column",
            result.share,
            result.reference_flag_rate,
            result.flag_rate,
            result.report or "not written",
        )

    def _retry(self, key: str) -> None:
        """Test ``key`` again at the next check, new verdicts or not."""
        window = self.windows.get(key)
        if window is not None:
            window.checked_at_seen = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Read until ``stop``, committing after each batch; test every ``check_every_s``."""
        checker = asyncio.create_task(self._every())
        try:
            await consume_batches(self.consumer, stop, self.handle, checker, max_records=1000)
        finally:
            checker.cancel()
            await asyncio.gather(checker, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_every_s)
            await self.check()


async def serve(settings: Settings, stop: asyncio.Event) -> int:
    """Run the drift monitor until ``stop``; returns the number of DriftEvents published."""
    readiness = ConsumerReadiness(SERVICE)
    probe = asyncio.create_task(watch_broker(readiness, settings.kafka.bootstrap_list))
    consumer: AIOKafkaConsumer | None = None
    producer = kafka_producer(settings.kafka)
    try:
        # Evidently takes seconds to import: before joining the group, so that "ready" means
        # the first test will not wait for it (and a broken install fails here, at start).
        loading = asyncio.ensure_future(asyncio.to_thread(load_evidently))
        if not (await until_stopped(stop, loading))[0]:
            return 0
        topic = VERDICTS.name_for(settings.kafka.topic_suffix)
        consumer, started = await join_group(
            settings.kafka, SERVICE, [topic], readiness, producer, stop
        )
        if not started:
            return 0
        service = DriftService(settings, consumer, producer)
        config = settings.drift
        logger.info(
            "drift monitor (Evidently %s) consuming %s: windows of %d, tested every %gs by %s "
            "at %g; references in %s, reports in %s; events to %s",
            loading.result(),
            topic,
            config.window_rows,
            config.check_every_s,
            config.method,
            config.column_threshold,
            service.windows.store.folder,
            service.reports,
            service.drift_topic,
        )
        await service.run(stop)
        return service.published
    finally:
        readiness.set("running", False)
        probe.cancel()
        if consumer is not None:
            await close_quietly("the Kafka consumer", consumer.stop())
        await close_quietly("the Kafka producer", producer.stop())


async def read_tail(settings: Settings, windows: Windows, per_partition: int) -> int:
    """Fold the newest ``per_partition`` verdicts of each partition into ``windows``, oldest
    first by ``scored_at`` (a community's verdicts are spread over the partitions), for the
    one-shot commands: no consumer group, nothing committed. The number of records read."""
    topic = VERDICTS.name_for(settings.kafka.topic_suffix)
    consumer = kafka_consumer(settings.kafka, group_id=None, enable_auto_commit=False)
    await consumer.start()
    read = 0
    rows: list[tuple[datetime, str, str, Row, str]] = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set(range(VERDICTS.partitions))
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        starts = await consumer.beginning_offsets(assigned)
        ends = await consumer.end_offsets(assigned)
        for tp in assigned:
            consumer.seek(tp, max(starts[tp], ends[tp] - per_partition))
        pending = {tp for tp in assigned if ends[tp] > starts[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            if not batches:
                break
            for tp, records in batches.items():
                for record in records:
                    read += 1
                    try:
                        verdict = Verdict.model_validate_json(record.value or b"")
                    except ValidationError:
                        continue
                    if verdict.kind is not VerdictKind.TEXT:
                        continue
                    # Rows, not verdicts: a verdict may hold 40,000 characters of text.
                    row = row_of(verdict, windows.config.features)
                    rows.append(
                        (
                            verdict.scored_at,
                            verdict.platform.value,
                            verdict.community,
                            row,
                            verdict.model_version,
                        )
                    )
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    rows.sort(key=lambda item: item[0])
    for scored_at, platform, community, row, version in rows:
        windows.add_row(platform, community, row, scored_at, version)
    return read

"""Prometheus metrics every service exposes, on its own port.

Each service labels the shared families with its name (``service``), so that one dashboard
covers them all: messages in and out, errors by kind, and a processing-latency histogram.

Two rules keep the alerts in deploy/prometheus/alerts.yml honest:

- Series exist from the start. ``increase()`` needs two samples, so a counter whose series is
  born at 1 by its first increment never fires an alert on that first event. Each service calls
  :func:`initialise` at start, which creates its error, dead-letter and degraded series at 0
  for every known label value (``ERROR_KINDS``).
- Label values are bounded. Outcome metrics (verdicts, actions, disputes, reviews) are
  labelled by community: the first ``WARDEN_METRICS__COMMUNITIES`` communities a process sees
  (``platform:community``) are named, the rest share ``community="other"`` (see
  :class:`CommunityLabels`); verdict labels outside ``schemas.labels.TAXONOMY`` and
  ``IMAGE_LABELS`` are ``other``.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from core.errors import ConfigError
from schemas.events import ActionStatus, Verdict
from schemas.labels import IMAGE_LABELS, TAXONOMY

logger = logging.getLogger(__name__)

# Seconds. Work inside a service (a batch, a model run): chat moderation cares about 5 ms - 5 s,
# and a loaded CPU or a database that is waited out reaches a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds. Waits that outages and platform rate limits stretch: end-to-end latency through a
# backlog, an action waiting out 429s (up to WARDEN_ACTIONER__RATE_LIMIT_MAX_WAIT_S, 600 s by
# default), a message buffered by ingest while the broker is away.
WAIT_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
)  # fmt: skip
# A verdict's p_toxic (0..1): finer where the severity thresholds usually sit.
P_TOXIC_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
OTHER = "other"

MESSAGES_IN = Counter(
    "warden_messages_in_total", "Events consumed or received.", ["service", "topic"]
)
MESSAGES_OUT = Counter("warden_messages_out_total", "Events produced.", ["service", "topic"])
ERRORS = Counter("warden_errors_total", "Events that failed, by kind.", ["service", "kind"])
DEAD_LETTERS = Counter(
    "warden_dead_letters_total", "Events sent to the dead-letter topic.", ["service"]
)
PROCESSING_SECONDS = Histogram(
    "warden_processing_seconds",
    "Time to process one event (or one batch) inside the service.",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
END_TO_END_SECONDS = Histogram(
    "warden_end_to_end_seconds",
    "From the message's received_at to this service's output.",
    ["service"],
    buckets=WAIT_BUCKETS,
)
READY = Gauge(
    "warden_ready",
    "1 while the service can do its work (joined its consumer group, its dependencies answer);"
    " 0 while it rebalances, a dependency is away or it stops.",
    ["service"],
)
DEPENDENCY_UP = Gauge(
    "warden_dependency_up",
    "1 while the service reaches the dependency (kafka, redis, postgres); 0 while it is away.",
    ["service", "dependency"],
)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def serve(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> None:
    """Expose /metrics on host:port (port 0 disables it)."""
    if port == 0:
        return
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:  # most often a second instance on the same machine and port
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} (set this service's "
            "WARDEN_METRICS__*_PORT to a free port, or 0 to turn metrics off)"
        ) from exc
    logger.info("metrics on http://%s:%d/metrics", host, port)


# The scorer's own: what a micro-batch looks like and where its time goes.
BATCH_SIZE = Histogram(
    "warden_batch_size",
    "Messages per micro-batch.",
    ["service"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
)
MODEL_SECONDS = Histogram(
    "warden_model_seconds", "Model time per batch.", ["service"], buckets=LATENCY_BUCKETS
)
REDIS_SECONDS = Histogram(
    "warden_redis_seconds",
    "Redis time per round trip (feature reads and updates).",
    ["service", "op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CACHE_LOOKUPS = Counter(
    "warden_cache_lookups_total",
    "Text-side cache lookups: hit (no encoder time) or miss.",
    ["service", "result"],
)
ENCODER_REUSED = Counter(
    "warden_encoder_reused_total",
    "Text-side cache misses whose token ids the encoder had embedded before (no encoder run).",
    ["service"],
)
DEGRADED = Counter(
    "warden_degraded_total",
    "Messages scored without context features because Redis was unreachable.",
    ["service"],
)
MODEL_INFO = Gauge(
    "warden_model_info",
    "1 for the model version this worker scores with (0 for one it replaced).",
    ["service", "version"],
)
MODEL_SWAPS = Counter(
    "warden_model_swaps_total",
    "Promoted models swapped in between batches (result: swapped, failed).",
    ["service", "result"],
)
CONSUMER_LAG = Gauge(
    "warden_consumer_lag",
    "Messages behind the partition's end, as of the last batch.",
    ["service", "topic", "partition"],
)
DETECTOR_LABELS = Counter(
    "warden_detector_labels_total",
    "Stream-detector labels written on verdicts (spam, flood, caps, link, raid...).",
    ["service", "label"],
)
DETECTOR_SECONDS = Histogram(
    "warden_detector_seconds",
    "Stream-detector time per batch: text traits, the Redis round trip and the labels.",
    ["service"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RAIDS = Counter("warden_raids_total", "Raid events published.", ["service"])
# Where a scored message's CPU goes (``scorers.stages.StageClock``; `warden bench` reads both).
SCORER_STAGE_SECONDS = Counter(
    "warden_scorer_stage_seconds",
    "Scorer CPU seconds by stage (thread CPU time, summed per batch; decode, redis, encode...).",
    ["stage"],
)


class _ThreadCpu:
    """``warden_thread_cpu_seconds{thread}``: CPU seconds so far per thread kind (``main``,
    ``model``, ``encoder``...: names without their numbers) and for the whole ``process``,
    read from the threads' CPU clocks when scraped (nothing is counted per message)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "warden_thread_cpu_seconds",
            "CPU seconds used so far per thread kind and by the whole process.",
            labels=["thread"],
        )
        used: dict[str, float] = {}
        for thread in threading.enumerate():
            if thread.ident is None:
                continue
            try:
                seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except OSError:  # ended meanwhile
                continue
            service = getattr(thread, "service", None)  # mode's service threads (faust's consumer)
            if thread is threading.main_thread():
                kind = "main"
            elif service is not None:
                kind = type(service).__name__
            else:
                kind = _THREAD_NUMBER.sub("", thread.name) or type(thread).__name__
            used[kind] = used.get(kind, 0.0) + seconds
        children = _children_cpu()
        if children:
            used["encoder_process"] = children
        used["process"] = time.process_time() + children
        for kind, seconds in sorted(used.items()):
            family.add_metric([kind], seconds)
        yield family


def _children_cpu() -> float:
    """CPU seconds of this process's live child processes: a scorer's one child is its
    encoder's (toxicity.encoder_process), whose CPU is the scorer's too."""
    ticks = 0
    for kid in live_children(os.getpid()):
        fields = proc_stat(kid)
        if fields is not None:  # else ended meanwhile
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command's name (state first), or None
    when the process is gone (or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def live_children(pid: int) -> list[int]:
    """The live child processes of ``pid``, whichever of its threads started them."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone, or no /proc here
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as kids:
                found += [int(k) for k in kids.read().split()]
        except OSError:
            continue
    return found


_THREAD_NUMBER = re.compile(r"(?:[-_ ]\d+)+$|-\d+ \(.*\)$")
_thread_cpu_exported = False


def export_thread_cpu() -> None:
    """Expose ``warden_thread_cpu_seconds`` (once per process; `warden bench` reads it)."""
    global _thread_cpu_exported
    if not _thread_cpu_exported:
        REGISTRY.register(_ThreadCpu())
        _thread_cpu_exported = True


# The ingest adapters' own, labelled by adapter (discord, slack, twitch, webhook, replay).
INGEST_RECEIVED = Counter(
    "warden_ingest_received_total", "Events an adapter received from its platform.", ["adapter"]
)
INGEST_PUBLISHED = Counter(
    "warden_ingest_published_total",
    "Chat messages acknowledged by the broker (acks=all).",
    ["adapter"],
)
INGEST_REJECTED = Counter(
    "warden_ingest_rejected_total",
    "Events that were not valid chat messages (sent to the dead-letter topic).",
    ["adapter"],
)
INGEST_DROPPED = Counter(
    "warden_ingest_dropped_total",
    "Messages dropped on purpose before anything was stored, by reason (opt_out).",
    ["adapter", "reason"],
)
INGEST_FAILED = Counter(
    "warden_ingest_failed_total",
    "Accepted records the broker refused for good (undeliverable), by reason.",
    ["adapter", "reason"],
)
INGEST_PRODUCER_RESTARTS = Counter(
    "warden_ingest_producer_restarts_total",
    "Producers replaced after a fatal producer error (unacknowledged records resent), by error.",
    ["adapter", "reason"],
)
INGEST_BUFFERED = Gauge(
    "warden_ingest_buffered",
    "Messages accepted but not yet acknowledged by the broker.",
    ["adapter"],
)
INGEST_BUFFERED_BYTES = Gauge(
    "warden_ingest_buffered_bytes", "Bytes held by the publisher's buffer.", ["adapter"]
)
INGEST_PUBLISH_SECONDS = Histogram(
    "warden_ingest_publish_seconds",
    "From accepting a message to the broker's acknowledgement (includes buffering).",
    ["adapter"],
    buckets=WAIT_BUCKETS,
)
INGEST_BUFFER_MAX_MESSAGES = Gauge(
    "warden_ingest_buffer_max_messages",
    "The publisher's buffer limit in messages (WARDEN_INGEST__BUFFER_MAX_MESSAGES): beyond it"
    " the adapter refuses or waits.",
    ["adapter"],
)
INGEST_BUFFER_MAX_BYTES = Gauge(
    "warden_ingest_buffer_max_bytes",
    "The publisher's buffer limit in bytes (WARDEN_INGEST__BUFFER_MAX_BYTES).",
    ["adapter"],
)

# Moderation outcomes, for operators and analysts (the outcomes dashboard). Labelled by
# community through ``COMMUNITIES`` (bounded), verdicts also by ``kind`` (``text`` from the
# scorer, ``image`` from the image scorer); counted once per verdict delivered, per action
# finished, per dispute taken and per review decided. Delivery is at least once, so a verdict
# replayed after a crash between its delivery and its acknowledgement is counted again.
VERDICTS = Counter(
    "warden_verdicts_total",
    "Verdicts delivered to moderation.verdicts.v1, by kind (text, image), severity and whether"
    " they were flagged.",
    ["community", "kind", "severity", "flagged"],
)
VERDICT_LABELS = Counter(
    "warden_verdict_labels_total",
    "Labels on delivered verdicts (schemas.labels' text and image labels; others are `other`),"
    " one per verdict.",
    ["community", "kind", "label"],
)
P_TOXIC = Histogram(
    "warden_verdict_p_toxic",
    "The p_toxic of delivered verdicts (an image verdict's is its p_unsafe).",
    ["community", "kind"],
    buckets=P_TOXIC_BUCKETS,
)
COMMUNITY_ACTIONS = Counter(
    "warden_community_actions_total",
    "Finished actions by community, kind and result (done, skipped, failed); the alerts use"
    " warden_actions_total, whose series exist from the start.",
    ["community", "kind", "status"],
)
DISPUTES = Counter(
    "warden_disputes_total",
    "Disputes the review service took, by what became of them (opened, counted: a second user"
    " or route for an open one, repeat, not_the_author, nothing_to_dispute).",
    ["community", "outcome"],
)
REVIEWS = Counter(
    "warden_reviews_total",
    "Moderators' decisions (upheld, overturned, hold_approved, hold_dismissed).",
    ["community", "outcome"],
)

# The error kinds each service counts, created at 0 by ``initialise``. A kind missing here
# still counts; its alert only misses the very first one (tests/unit/core/test_metrics.py
# checks that every kind the code spells is listed). Ingest's kinds are the broker's exception
# names, an open set: its alert also matches series that are new (see alerts.yml).
ERROR_KINDS: dict[str, tuple[str, ...]] = {
    "scorer": ("invalid_payload", "undeliverable"),
    "actioner": (
        "invalid_payload",
        "unprocessable",
        "duplicate_verdict",
        "settle_failed",
        "modlog_dropped",
        "modlog_failed",
        "publish_refused",
    ),
    "review": ("invalid_payload", "background_failed", "publish_refused"),
    "explainer": ("invalid_payload", "dispute_unknown_message", "unexplainable", "publish_failed"),
    "images": ("invalid_payload",),
    "drift": ("invalid_payload", "drift_check_failed", "publish_failed"),
    "ingest": (),
}


class CommunityLabels:
    """The ``community`` label value of a platform's community: its ``platform:community`` key
    for the first ``limit`` keys seen (first come, for the life of the process), ``other`` for
    the rest. First come rather than largest: a label never changes its meaning while the
    process runs, so a counter's rate stays a rate. Each replica chooses its own; a community
    named by one and collapsed by another shows up under both labels."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._named: set[str] = set()

    def __call__(self, platform: str, community: str) -> str:
        key = f"{platform}:{community}"
        if key in self._named:
            return key
        if len(self._named) < self.limit:
            self._named.add(key)
            return key
        return OTHER


COMMUNITIES = CommunityLabels(20)


def initialise(service: str, communities: int | None = None) -> None:
    """Create ``service``'s failure series at 0 (see the module's docstring) and set the number
    of communities named in outcome labels (WARDEN_METRICS__COMMUNITIES). Call once at start."""
    if communities is not None:
        COMMUNITIES.limit = communities
    DEAD_LETTERS.labels(service)
    for kind in ERROR_KINDS.get(service, ()):
        ERRORS.labels(service, kind)
    if service == "scorer":
        DEGRADED.labels(service)
        MODEL_SWAPS.labels(service, "failed")
        RAIDS.labels(service)


# The labels named in warden_verdict_labels_total; any other is counted as ``other``.
KNOWN_LABELS = frozenset(TAXONOMY + IMAGE_LABELS)


def observe_verdicts(verdicts: Iterable[Verdict]) -> None:
    """Count delivered verdicts in the outcome metrics: each series' child is looked up once
    per batch, not once per verdict (a lookup costs more than the increment)."""
    counts: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
    label_counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for verdict in verdicts:
        community = COMMUNITIES(verdict.platform.value, verdict.community)
        kind = verdict.kind.value
        flagged = "true" if verdict.flagged else "false"
        counts[community, kind, verdict.severity.value, flagged] += 1
        scores[community, kind].append(verdict.p_toxic)
        for label in {label if label in KNOWN_LABELS else OTHER for label in verdict.labels}:
            label_counts[community, kind, label] += 1
    for key, n in counts.items():
        VERDICTS.labels(*key).inc(n)
    for label_key, n in label_counts.items():
        VERDICT_LABELS.labels(*label_key).inc(n)
    for series, values in scores.items():
        histogram = P_TOXIC.labels(*series)
        for value in values:
            histogram.observe(value)


def observe_action(platform: str, community: str, kind: str, status: ActionStatus) -> None:
    """Count one finished action in the outcome metrics."""
    COMMUNITY_ACTIONS.labels(COMMUNITIES(platform, community), kind, status.value).inc()

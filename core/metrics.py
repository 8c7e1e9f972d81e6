"""Prometheus metrics every service exposes, on its own port.

Each service builds one ``ServiceMetrics`` with its name as a label value, so that one dashboard
covers them all: messages in and out, errors by kind, and a processing-latency histogram.
"""

from __future__ import annotations

import logging
import math

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from core.errors import ConfigError

logger = logging.getLogger(__name__)

# Seconds; chat moderation cares about the 5 ms - 5 s range.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

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
    buckets=LATENCY_BUCKETS,
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
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
MODEL_SECONDS = Histogram(
    "warden_model_seconds", "Model time per batch.", ["service"], buckets=LATENCY_BUCKETS
)
REDIS_SECONDS = Histogram(
    "warden_redis_seconds",
    "Redis time per round trip (feature reads and updates).",
    ["service", "op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
CACHE_LOOKUPS = Counter(
    "warden_cache_lookups_total",
    "Text-side cache lookups: hit (no encoder time) or miss.",
    ["service", "result"],
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
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
RAIDS = Counter("warden_raids_total", "Raid events published.", ["service"])

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
    buckets=LATENCY_BUCKETS,
)

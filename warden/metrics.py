"""Prometheus metrics every service exposes, on its own port.

Each service builds one ``ServiceMetrics`` with its name as a label value, so that one dashboard
covers them all: messages in and out, errors by kind, and a processing-latency histogram.
"""

from __future__ import annotations

import logging

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

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
    "1 once the service has joined its consumer group and consumes; 0 while it rebalances.",
    ["service"],
)


def serve(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> None:
    """Expose /metrics on host:port (port 0 disables it)."""
    if port == 0:
        return
    start_http_server(port, addr=host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", host, port)

"""The scorer's readiness and its stop, which must hold while the broker or Redis is away.

``warden_ready{service="scorer"}`` is 1 only while the worker is in its consumer group (between
a completed rebalance and the next revocation), the broker answers and no stop was asked for.
Redis away does not clear it: the scorer goes on scoring without context (``degraded``
verdicts), which is what a load balancer or an operator should know, not a reason to route work
elsewhere; ``warden_dependency_up{service="scorer",dependency="redis"}`` says so instead, and
``dependency="kafka"`` says why the scorer is not ready.

The broker probe opens a TCP connection to a bootstrap server every few seconds: faust's own
clients hide an unreachable broker behind their retries (and log each one), so the probe is the
one place that turns "away" into a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import faust
from redis.exceptions import RedisError

from core import metrics
from core.net import reachable

logger = logging.getLogger(__name__)

PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 1.0
# After SIGTERM/SIGINT, faust gets this long to leave the group and close its clients; with the
# broker away its stop waits on request time-outs of minutes. Nothing is lost by cutting it
# short: events are acknowledged only after delivery, so unacknowledged ones are consumed again.
STOP_TIMEOUT_S = 10.0


class Readiness:
    """What ``warden_ready`` is made of, published on every change."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.joined = False
        self.broker = True
        self.stopping = False

    def set(self, **state: bool) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        ready = self.joined and self.broker and not self.stopping
        metrics.READY.labels(self.service).set(1 if ready else 0)


async def redis_answers(client: Any, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except (RedisError, OSError, TimeoutError):
        return False
    return True


async def watch(readiness: Readiness, hosts: list[str], redis: Any | None) -> None:
    """Probe the broker and Redis every PROBE_EVERY_S; log each change once."""
    kafka_up = metrics.DEPENDENCY_UP.labels(readiness.service, "kafka")
    redis_up = metrics.DEPENDENCY_UP.labels(readiness.service, "redis")
    while True:
        up = await reachable(hosts)
        if up != readiness.broker:
            if up:
                logger.info("broker answers again")
            else:
                logger.warning("broker unreachable (%s); not ready", ",".join(hosts))
        kafka_up.set(1 if up else 0)
        readiness.set(broker=up)
        if redis is not None:
            # Transitions are logged by scorers.context_store.ContextReader, which acts on them.
            redis_up.set(1 if await redis_answers(redis) else 0)
        await asyncio.sleep(PROBE_EVERY_S)


def _exit_now(reason: str) -> None:
    logger.warning("%s; exiting now (unacknowledged batches are consumed again)", reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    sys.stderr.flush()
    os._exit(0)


class Worker(faust.Worker):
    """faust's worker with a stop that cannot hang.

    On SIGTERM or SIGINT it drops readiness and starts faust's own stop, and a timer thread
    (not the event loop, which a hung stop may keep busy) ends the process after
    ``stop_timeout_s``; a second signal ends it at once.
    """

    def __init__(
        self, *args: Any, readiness: Readiness, stop_timeout_s: float = STOP_TIMEOUT_S, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.readiness = readiness
        self.stop_timeout_s = stop_timeout_s
        self._deadline: threading.Timer | None = None

    # mode's Worker sends both SIGTERM and SIGINT here (its handlers are installed at start).
    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        if self._deadline is not None:
            _exit_now(f"second {sig.name}")
        self.readiness.set(stopping=True)
        logger.info("%s: stopping (at most %.0f s)", sig.name, self.stop_timeout_s)
        self._deadline = threading.Timer(
            self.stop_timeout_s, _exit_now, [f"stop took over {self.stop_timeout_s:.0f} s"]
        )
        self._deadline.daemon = True
        self._deadline.start()
        super()._schedule_shutdown(sig)

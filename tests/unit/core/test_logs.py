"""The repeat filter: what a flood of identical errors turns into, on a clock we control."""

from __future__ import annotations

import io
import logging

import pytest

from core.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logged(clock: Clock):
    """A logger whose handler carries a RepeatFilter; yields (logger, lines written)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter(burst=5, interval_s=10.0, clock=clock))
    logger = logging.getLogger("aiokafka.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def lines() -> list[str]:
        return stream.getvalue().splitlines()

    yield logger, lines
    logger.removeHandler(handler)


def test_a_flood_becomes_a_burst_then_one_line_per_interval(logged, clock: Clock) -> None:
    logger, lines = logged
    # 3,200 a second for 30 s, the rate seen during a broker restart.
    for tick in range(30 * 100):
        clock.now = 1000.0 + tick / 100
        for node in range(32):
            logger.error("Unable connect to node with id %s: %s", node, "refused")
    out = lines()
    # 5 at the start, then one summary at 10 s and one at 20 s (the 30 s one comes with the
    # next record of the kind).
    assert len(out) == 7
    assert out[0] == "ERROR aiokafka.test_logs: Unable connect to node with id 0: refused"
    assert out[5].endswith("[repeated 31,995 times in the last 10 s]")
    assert out[6].endswith("[repeated 31,999 times in the last 10 s]")


def test_the_held_count_comes_with_the_next_record_of_the_kind(logged, clock: Clock) -> None:
    logger, lines = logged
    for _ in range(8):
        logger.warning("Heartbeat failed: %r", "x")
    clock.now += 60
    logger.warning("Heartbeat failed: %r", "y")
    out = lines()
    assert len(out) == 6
    assert (
        out[-1]
        == "WARNING aiokafka.test_logs: Heartbeat failed: 'y' [repeated 3 times in the last 60 s]"
    )


def test_a_quiet_interval_starts_a_new_burst(logged, clock: Clock) -> None:
    logger, lines = logged
    for _ in range(5):
        logger.error("broker down")
    clock.now += 11
    for _ in range(5):
        logger.error("broker down")
    out = lines()
    assert out == ["ERROR aiokafka.test_logs: broker down"] * 10


def test_kinds_are_counted_apart(logged, clock: Clock) -> None:
    logger, lines = logged
    for _ in range(10):
        logger.error("Unable to update metadata from %s", [1])
        logger.warning("Unable to update metadata from %s", [1])
        logger.error("Failed fetch messages from %s", 1)
    assert len(lines()) == 15


def test_our_info_lines_are_never_limited(clock: Clock) -> None:
    limiter = RepeatFilter(burst=1, interval_s=10.0, clock=clock)
    ours = [
        logging.LogRecord("ingest.replay", logging.INFO, __file__, 1, "sent %d", (n,), None)
        for n in range(50)
    ]
    assert all(limiter.filter(record) for record in ours)
    # The same lines from a noisy library, and our own warnings, are limited.
    theirs = [
        logging.LogRecord("faust.transport", logging.INFO, __file__, 1, "sent %d", (n,), None)
        for n in range(50)
    ]
    assert sum(limiter.filter(record) for record in theirs) == 1
    warnings = [
        logging.LogRecord("ingest.replay", logging.WARNING, __file__, 1, "lost %d", (n,), None)
        for n in range(50)
    ]
    assert sum(limiter.filter(record) for record in warnings) == 1


def test_configure_installs_the_filter_on_the_root_handlers() -> None:
    import subprocess
    import sys

    # A fresh interpreter: configure() is basicConfig, a no-op where handlers exist (pytest's).
    code = (
        "import logging\n"
        "from core import logs\n"
        "logs.configure('INFO')\n"
        "log = logging.getLogger('aiokafka.client')\n"
        "for n in range(1000):\n"
        "    log.error('Unable connect to node with id %s', n)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert len(done.stderr.splitlines()) == 5

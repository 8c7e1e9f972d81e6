"""Logging set-up shared by every service, with rate-limiting of repeated records.

While a dependency is down, client libraries log the same error on every retry: aiokafka's
"Unable connect to node ..." and "Unable to update metadata ..." came at thousands of lines a
second per process during a broker restart (935 MB in 11 minutes). ``RepeatFilter`` lets the
first few records of a kind through, then one line per interval that says how many were held
back, so an outage stays visible without filling the disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Per kind of record (logger, level, message template): this many pass in each interval...
BURST = 5
INTERVAL_S = 10.0
# ...for records at WARNING and above from any logger, and for every record from these
# libraries, which log their retries at INFO and DEBUG as well.
NOISY_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "redis", "psycopg", "asyncio", "aiohttp")
# Kinds remembered at most; beyond it the oldest are forgotten (messages built with f-strings
# would otherwise each be a kind of their own).
MAX_KINDS = 1024


@dataclass
class _Kind:
    window_start: float
    passed: int = 0
    held: int = 0


class RepeatFilter(logging.Filter):
    """Pass the first ``burst`` records of a kind per ``interval_s``, then one with a count.

    A kind is (logger name, level, message template before %-formatting), so "Unable connect
    to node with id 1" and "... id 2" are one kind. While a kind keeps coming, one record per
    interval passes, suffixed with how many were held back since the last one; after a quiet
    interval the kind starts afresh with a new burst. The count of the last interval of an
    outage appears with the next record of that kind (a filter has no timer of its own).
    """

    def __init__(
        self,
        burst: int = BURST,
        interval_s: float = INTERVAL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        noisy: tuple[str, ...] = NOISY_LOGGERS,
        min_level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self.noisy = noisy
        self.min_level = min_level
        self._kinds: dict[tuple[str, int, str], _Kind] = {}
        # Handlers run filters outside their own lock, and faust's consumer logs from a thread.
        self._lock = threading.Lock()

    def _limited(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.min_level:
            return True
        name = record.name
        return any(name == prefix or name.startswith(prefix + ".") for prefix in self.noisy)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._limited(record):
            return True
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            return self._admit(key, record)

    def _admit(self, key: tuple[str, int, str], record: logging.LogRecord) -> bool:
        now = self.clock()
        kind = self._kinds.get(key)
        if kind is None:
            if len(self._kinds) >= MAX_KINDS:
                # dicts keep insertion order: drop the kind seen first.
                del self._kinds[next(iter(self._kinds))]
            self._kinds[key] = _Kind(window_start=now, passed=1)
            return True
        elapsed = now - kind.window_start
        if elapsed < self.interval_s:
            if kind.passed < self.burst:
                kind.passed += 1
                return True
            kind.held += 1
            return False
        if kind.held:
            # Still repeating: one record stands for the interval; no new burst until the kind
            # has been quiet for a whole interval.
            held = kind.held
            kind.window_start, kind.passed, kind.held = now, self.burst, 0
            try:
                message = record.getMessage()
            except (TypeError, ValueError, KeyError):
                # A malformed call: leave the record to the handler, which reports it.
                return True
            record.msg = f"{message} [repeated {held:,} times in the last {elapsed:.0f} s]"
            record.args = None
            return True
        kind.window_start, kind.passed, kind.held = now, 1, 0
        return True


def configure(level: str = "INFO") -> None:
    """Log to stderr at ``level``, each root handler rate-limiting repeated records."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka and faust are chatty at INFO about every rebalance step.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for handler in logging.getLogger().handlers:
        # A filter per handler: each counts what it alone was given.
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())

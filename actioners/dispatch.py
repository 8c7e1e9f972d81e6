"""Carrying out ledger entries: concurrency, priority, retries, bulk deletes.

- Deletes wait for their channel's turn: one delete call per channel at a time (the platform's
  limit is per channel anyway), and a turn takes every delete waiting in the channel by then,
  whichever batch it came from: ``bulk_delete_min`` or more (a raid) go as one bulk delete.
- A user's other actions (warn, timeout, kick, ban) run in the order decided, one at a time.
- Calls hold a slot of their community (``community_concurrency``, separately for deletes and
  for user actions, which hit different platform limits: a timeout waiting on a guild's limit
  never holds up the deletes) and a global one (``concurrency``), only while they call the
  platform; slots go to the highest severity waiting, so when a queue builds up the worst
  messages are dealt with first.
- A 429 is waited out for as long as the platform says (plus a little jitter), up to
  ``rate_limit_max_wait_s`` in all; it does not count as a try. Other transient failures are
  tried again ``max_attempts`` times with exponential back-off and full jitter, and, since the
  platform may have acted before the failure reached us, as reconciliations. Permanent failures
  are not retried.
- Every entry is marked in flight before its first call and finished (with its audit row)
  after its last one. Several batches may be under way at once: slots, turns and user order
  are shared between them.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

from actioners.executors import Outcome, RateLimited, Router
from actioners.ledger import Entry, State, result_of
from core import metrics
from core.backoff import full_jitter
from core.errors import ActionError, PermanentActionError, RetriableActionError
from core.metrics import WAIT_BUCKETS
from core.settings import ActionerSettings
from schemas.events import ActionKind, ActionResult, ActionStatus, Platform, utcnow

logger = logging.getLogger(__name__)

ACTIONS = Counter(
    "warden_actions_total", "Platform actions by outcome.", ["platform", "kind", "status"]
)
RATE_LIMITED = Counter(
    "warden_action_rate_limited_total", "429 answers from platforms, waited out.", ["executor"]
)
RETRIES = Counter(
    "warden_action_retries_total", "Actions tried again after an error.", ["executor"]
)
ACTION_SECONDS = Histogram(
    "warden_action_seconds",
    "From the first platform call to the outcome of one action (rate-limit waits included).",
    ["executor"],
    buckets=WAIT_BUCKETS,
)

Sleep = Callable[[float], Awaitable[None]]


class Bookkeeping(Protocol):
    """Where entries are marked in flight and finished (``actioners.ledger.Ledger``)."""

    async def start(self, entries: Sequence[Entry], executor: str) -> list[Entry]: ...

    async def finish(
        self,
        entry: Entry,
        result: ActionResult,
        attempts: int,
        restore: dict[str, Any] | None = None,
    ) -> Entry: ...


class PrioritySemaphore:
    """A semaphore whose waiters are served lowest priority value first (then first come)."""

    def __init__(self, value: int) -> None:
        self._value = value
        self._initial = value
        self._waiters: list[tuple[tuple[int, int], int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    async def acquire(self, priority: tuple[int, int]) -> None:
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._counter), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled at once: hand the slot on
            raise

    @property
    def idle(self) -> bool:
        """Nobody holds it and nobody waits."""
        return not self._waiters and self._value == self._initial

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._value += 1

    @asynccontextmanager
    async def slot(self, priority: tuple[int, int]) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


class KeyedLocks:
    """One lock per key (a user), kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, ...], tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: tuple[str, ...]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@dataclass
class Job:
    entries: list[Entry]
    bulk: bool

    @property
    def community(self) -> tuple[str, str]:
        request = self.entries[0].request
        return request.platform.value, request.community

    @property
    def lane(self) -> str:
        """Deletes and user actions hit different platform limits (per channel, per guild):
        each has its own slots in a community, so timeouts waiting on a guild's limit never
        hold up the deletes."""
        return "messages" if self.entries[0].request.kind is ActionKind.DELETE else "members"

    @property
    def user(self) -> tuple[str, str, str] | None:
        """The user whose actions this job carries out in order (None for deletes)."""
        request = self.entries[0].request
        if request.kind is ActionKind.DELETE:
            return None
        return request.platform.value, request.community, request.user

    @property
    def priority(self) -> tuple[int, int]:
        """Higher severity first, then the earlier message."""
        worst = max(e.request.severity.rank for e in self.entries)
        return -worst, min(e.source.offset for e in self.entries)


ChannelKey = tuple[str, str, str]  # platform, community, channel


@dataclass
class Plan:
    """A batch's open entries sorted into what runs how."""

    # Pending deletes per channel: they wait for the channel's turn and may go in bulk.
    deletes: dict[ChannelKey, list[Entry]]
    # One job per user (their actions in order), and one per delete left in flight.
    jobs: list[Job]


def plan(entries: Sequence[Entry]) -> Plan:
    deletes: dict[ChannelKey, list[Entry]] = defaultdict(list)
    users: dict[tuple[str, str, str], list[Entry]] = defaultdict(list)
    jobs: list[Job] = []
    for entry in entries:
        if not entry.open:
            continue
        request = entry.request
        if request.kind is ActionKind.DELETE:
            if entry.state is State.PENDING:
                deletes[(request.platform.value, request.community, request.channel)].append(entry)
            else:
                jobs.append(Job([entry], bulk=False))  # in flight: reconciled on its own
        else:
            users[(request.platform.value, request.community, request.user)].append(entry)
    for group in users.values():
        group.sort(key=lambda e: (e.source.partition, e.source.offset))
        jobs.append(Job(group, bulk=False))
    jobs.sort(key=lambda job: job.priority)
    return Plan(dict(deletes), jobs)


class Dispatcher:
    def __init__(
        self,
        executor: Router,
        ledger: Bookkeeping,
        settings: ActionerSettings,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.executor = executor
        self.ledger = ledger
        self.settings = settings
        self.sleep = sleep
        self._global = PrioritySemaphore(settings.concurrency)
        self._communities: dict[tuple[str, str, str], PrioritySemaphore] = {}
        # One user's actions happen in order, also across batches settled at the same time.
        self._users = KeyedLocks()
        # Deletes waiting per channel, whichever batch they came from, each with the future
        # its batch awaits; one turn at a time per channel takes them (see _channel_turn).
        self._waiting: dict[ChannelKey, dict[str, tuple[Entry, asyncio.Future[Entry]]]] = {}
        self._turns: dict[ChannelKey, PrioritySemaphore] = {}
        # The failure series exist from the start, so an alert on increase() sees the first.
        for name in executor.name.split("+"):  # the Router's name joins its executors'
            RATE_LIMITED.labels(name)
            RETRIES.labels(name)
        for platform in Platform:
            for kind in ActionKind:
                ACTIONS.labels(platform.value, kind.value, ActionStatus.FAILED.value)

    def _community(self, key: tuple[str, str, str]) -> PrioritySemaphore:
        if key not in self._communities:
            self._communities[key] = PrioritySemaphore(self.settings.community_concurrency)
        return self._communities[key]

    @asynccontextmanager
    async def _slots(self, job: Job) -> AsyncIterator[None]:
        async with (
            self._community((*job.community, job.lane)).slot(job.priority),
            self._global.slot(job.priority),
        ):
            yield

    async def run(self, entries: Sequence[Entry]) -> list[Entry]:
        """Carry out the open entries; return them finished (the others as they were)."""
        planned = plan(entries)
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[Entry]] = []
        # Started most urgent first, so the first to ask for a slot is the worst message.
        starts: list[tuple[tuple[int, int], Callable[[], Awaitable[list[Entry]]]]] = [
            (job.priority, functools.partial(self._job, job)) for job in planned.jobs
        ]
        for key, group in planned.deletes.items():
            queue = self._waiting.setdefault(key, {})
            for entry in group:
                future: asyncio.Future[Entry] = loop.create_future()
                queue[entry.action_id] = (entry, future)
                waiting.append(future)
                turn = functools.partial(self._channel_turn, key, entry)
                starts.append((Job([entry], bulk=False).priority, turn))
        starts.sort(key=lambda item: item[0])
        finished: dict[str, Entry] = {}
        for done in await asyncio.gather(*(start() for _, start in starts)):
            finished.update((e.action_id, e) for e in done)
        for future in waiting:
            entry = await future
            finished[entry.action_id] = entry
        return [finished.get(e.action_id, e) for e in entries]

    async def _channel_turn(self, key: ChannelKey, entry: Entry) -> list[Entry]:
        """One delete's turn in its channel: take every delete waiting there by then, in bulk
        when there are enough (a raid), so a flood costs a few requests, not one per message."""
        priority = Job([entry], bulk=False).priority
        order = self._channel_order(key)
        try:
            async with order.slot(priority):
                return await self._take_turn(key, entry)
        finally:
            if key not in self._waiting and order.idle:
                self._turns.pop(key, None)

    async def _take_turn(self, key: ChannelKey, entry: Entry) -> list[Entry]:
        queue = self._waiting.get(key, {})
        if entry.action_id not in queue:
            return []  # an earlier turn took it
        limit = self.executor.bulk_limit(entry.request.platform)
        taken = sorted(queue.values(), key=lambda item: Job([item[0]], bulk=False).priority)
        taken = taken[: max(1, limit)]
        for queued, _ in taken:
            queue.pop(queued.action_id)
        if not queue:
            self._waiting.pop(key, None)
        entries = [queued for queued, _ in taken]
        try:
            if limit >= 2 and len(entries) >= self.settings.bulk_delete_min:
                done = await self._bulk(Job(entries, bulk=True))
            else:
                done = [await self._one(Job([e], bulk=False), e) for e in entries]
        except BaseException as exc:
            for _, future in taken:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            raise
        by_id = {e.action_id: e for e in done}
        for queued, future in taken:
            future.set_result(by_id.get(queued.action_id, queued))
        return []

    def _channel_order(self, key: ChannelKey) -> PrioritySemaphore:
        """Turns in a channel go to the most urgent waiting delete (one turn at a time)."""
        semaphore = self._turns.get(key)
        if semaphore is None:
            semaphore = self._turns[key] = PrioritySemaphore(1)
        return semaphore

    async def _job(self, job: Job) -> list[Entry]:
        if job.bulk:
            return await self._bulk(job)
        user = job.user
        if user is None:
            return [await self._one(job, entry) for entry in job.entries]
        async with self._users.hold(user):
            return [await self._one(job, entry) for entry in job.entries]

    def _backoff(self, attempt: int) -> float:
        return full_jitter(attempt, self.settings.backoff_base_s, self.settings.backoff_max_s)

    async def _attempts(
        self, job: Job, call: Callable[[bool], Awaitable[Outcome]], reconcile: bool
    ) -> tuple[Outcome, int]:
        """Call until an outcome: 429s waited out, transient errors retried with back-off."""
        name = self.executor.executor_for(job.entries[0].request)
        tries = 0
        waited = 0.0
        while True:
            wait = 0.0
            try:
                async with self._slots(job):
                    tries += 1
                    return await call(reconcile), tries
            except RateLimited as exc:
                RATE_LIMITED.labels(name).inc()
                tries -= 1  # a 429 is not a failed try
                wait = exc.retry_after + random.uniform(0, 0.05 + exc.retry_after / 10)  # noqa: S311
                waited += wait
                if waited > self.settings.rate_limit_max_wait_s:
                    return _failed(f"rate limited for over {waited:.0f} s: {exc}"), tries
                logger.info("%s rate limited; waiting %.2f s: %s", name, wait, exc)
            except RetriableActionError as exc:
                if tries >= self.settings.max_attempts:
                    return _failed(f"gave up after {tries} tries: {exc}"), tries
                RETRIES.labels(name).inc()
                wait = self._backoff(tries)
                # The platform may have acted before the error reached us: check, don't repeat.
                reconcile = True
                logger.warning("%s failed (try %d), again in %.2f s: %s", name, tries, wait, exc)
            except ActionError as exc:  # permanent: trying again fails again
                return _failed(str(exc)), tries
            except Exception as exc:  # the per-action boundary: fail this one, go on
                logger.exception("%s: unexpected error", name)
                return _failed(f"unexpected {type(exc).__name__}: {exc}"), tries
            await self.sleep(wait)

    async def _one(self, job: Job, entry: Entry) -> Entry:
        was_in_flight = entry.state is State.IN_FLIGHT
        started_at = entry.started_at
        name = self.executor.executor_for(entry.request)
        started = await self.ledger.start([entry], name)
        if not started:
            return entry  # someone else has it
        (entry,) = started
        request = entry.request

        async def call(reconcile: bool) -> Outcome:
            if reconcile:
                return await self.executor.reconcile(request, started_at or entry.started_at)
            return await self.executor.execute(request)

        began = time.perf_counter()
        outcome, tries = await self._attempts(Job([entry], bulk=False), call, was_in_flight)
        ACTION_SECONDS.labels(name).observe(time.perf_counter() - began)
        if was_in_flight:
            outcome = replace(outcome, detail=f"{outcome.detail} (reconciled after a restart)")
        return await self._finish(entry, outcome, tries)

    async def _bulk(self, job: Job) -> list[Entry]:
        name = self.executor.executor_for(job.entries[0].request)
        entries = await self.ledger.start(job.entries, name)
        if not entries:
            return list(job.entries)
        requests = [e.request for e in entries]

        async def call(reconcile: bool) -> Outcome:
            if reconcile:
                raise PermanentActionError("bulk delete interrupted; finishing one by one")
            return await self.executor.bulk_delete(requests)

        began = time.perf_counter()
        outcome, tries = await self._attempts(Job(entries, bulk=True), call, False)
        ACTION_SECONDS.labels(name).observe(time.perf_counter() - began)
        if outcome.status is ActionStatus.FAILED:
            # Too old, already gone, interrupted: each message on its own (idempotent deletes).
            logger.info("bulk delete of %d failed (%s); deleting one by one", len(entries), outcome)
            return [await self._one(Job([e], bulk=False), e) for e in entries]
        return [await self._finish(e, outcome, tries) for e in entries]

    async def _finish(self, entry: Entry, outcome: Outcome, tries: int) -> Entry:
        request = entry.request
        result = result_of(
            request,
            executor=self.executor.executor_for(request),
            status=outcome.status,
            detail=outcome.detail,
            completed_at=utcnow(),
        )
        ACTIONS.labels(request.platform.value, request.kind.value, outcome.status.value).inc()
        metrics.observe_action(
            request.platform.value, request.community, request.kind.value, outcome.status
        )
        if outcome.status is ActionStatus.FAILED:
            logger.warning("action %s failed: %s", request.action_id, outcome.detail)
        if outcome.restore is None:
            return await self.ledger.finish(entry, result, tries)
        return await self.ledger.finish(entry, result, tries, outcome.restore)


def _failed(detail: str) -> Outcome:
    return Outcome(ActionStatus.FAILED, detail[:2000])

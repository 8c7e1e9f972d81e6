"""The dispatcher: priorities, concurrency, 429s waited out, retries, bulk deletes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from actioners.dispatch import Dispatcher, PrioritySemaphore
from actioners.executors import Outcome, RateLimited, Router
from actioners.ledger import Entry, Source, State
from core.errors import PermanentActionError, RetriableActionError
from core.settings import ActionerSettings
from schemas.events import (
    ActionKind,
    ActionRequest,
    ActionResult,
    ActionStatus,
    Platform,
    Severity,
)

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
_offsets = iter(range(1_000_000))


def entry(
    message: str,
    kind: str = "delete",
    *,
    severity: str = "MEDIUM",
    channel: str = "c1",
    user: str | None = None,
    community: str = "g1",
    state: State = State.PENDING,
) -> Entry:
    request = ActionRequest(
        action_id=f"{message}:{kind}",
        message_id=message,
        platform=Platform.DISCORD,
        community=community,
        channel=channel,
        user=user or f"u-{message}",
        kind=ActionKind(kind),
        reason="test",
        severity=Severity(severity),
        p_toxic=0.9,
        model_version="m",
        policy_version="p",
        sent_at=NOW,
        requested_at=NOW,
    )
    return Entry(request=request, state=state, source=Source("verdicts", 0, next(_offsets)))


class Books:
    """In-memory bookkeeping: what was started and finished, in order."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: dict[str, ActionResult] = {}
        self.attempts: dict[str, int] = {}

    async def start(self, entries: Sequence[Entry], executor: str) -> list[Entry]:
        self.started.extend(e.action_id for e in entries if e.state is State.PENDING)
        return [
            replace(e, state=State.IN_FLIGHT, started_at=NOW) if e.state is State.PENDING else e
            for e in entries
        ]

    async def finish(
        self, entry: Entry, result: ActionResult, attempts: int, restore: object = None
    ) -> Entry:
        self.finished[entry.action_id] = result
        self.attempts[entry.action_id] = attempts
        return replace(entry, state=State(result.status.value), detail=result.detail)


class Scripted:
    """An executor whose answers are scripted per action id (default: done)."""

    name = "scripted"
    bulk_delete_max = 100

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[str, str]] = []  # (how, action_id)
        self.script: dict[str, list[Exception | Outcome]] = {}
        self.bulk_script: list[Exception | Outcome] = []
        self.running = 0
        self.max_running = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def executor_for(self, request: ActionRequest) -> str:
        return self.name

    async def _answer(self, how: str, action: str, script: list[Exception | Outcome]) -> Outcome:
        self.calls.append((how, action))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        answer = script.pop(0) if script else Outcome.done(f"{how} ok")
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def execute(self, request: ActionRequest) -> Outcome:
        return await self._answer(
            "execute", request.action_id, self.script.get(request.action_id, [])
        )

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        return await self._answer(
            "reconcile", request.action_id, self.script.get(request.action_id, [])
        )

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        return await self._answer(
            "bulk", ",".join(r.message_id for r in requests), self.bulk_script
        )


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def dispatcher(
    executor: Scripted, books: Books, sleep: Sleeps | None = None, **settings: object
) -> Dispatcher:
    return Dispatcher(
        Router({Platform.DISCORD: executor}),
        books,
        ActionerSettings.model_validate(settings),
        sleep=sleep or Sleeps(),
    )


async def test_higher_severity_goes_first_when_a_queue_builds_up() -> None:
    executor = Scripted(delay=0.01)
    books = Books()
    entries = [
        entry(f"m{i}", severity=sev, channel=f"c{i}")
        for i, sev in enumerate(["LOW", "MEDIUM", "HIGH", "LOW", "HIGH", "MEDIUM"])
    ]
    await dispatcher(executor, books, community_concurrency=1).run(entries)
    order = [books_id.split(":")[0] for _, books_id in executor.calls]
    assert order == ["m2", "m4", "m1", "m5", "m0", "m3"]


async def test_per_community_concurrency_is_a_cap() -> None:
    executor = Scripted(delay=0.02)
    entries = [entry(f"m{i}", channel=f"c{i}") for i in range(12)]
    await dispatcher(executor, Books(), community_concurrency=3, concurrency=50).run(entries)
    assert executor.max_running == 3
    # Other communities have their own slots.
    executor = Scripted(delay=0.02)
    entries = [entry(f"m{i}", channel=f"c{i}", community=f"g{i % 2}") for i in range(12)]
    await dispatcher(executor, Books(), community_concurrency=3, concurrency=50).run(entries)
    assert executor.max_running == 6


async def test_rate_limits_are_waited_out_and_are_not_failed_tries() -> None:
    executor = Scripted()
    first = entry("m1")
    executor.script[first.action_id] = [RateLimited("429", 2.0) for _ in range(8)]
    sleeps = Sleeps()
    books = Books()
    [done] = await dispatcher(executor, books, sleeps, max_attempts=2).run([first])
    assert done.state is State.DONE
    assert len(executor.calls) == 9
    assert len(sleeps.waits) == 8 and all(2.0 <= w <= 2.3 for w in sleeps.waits)
    assert books.attempts[first.action_id] == 1


async def test_a_rate_limit_longer_than_allowed_fails_the_action() -> None:
    executor = Scripted()
    first = entry("m1")
    executor.script[first.action_id] = [RateLimited("429", 100.0) for _ in range(5)]
    books = Books()
    [done] = await dispatcher(executor, books, rate_limit_max_wait_s=250).run([first])
    assert done.state is State.FAILED
    assert "rate limited for over" in books.finished[first.action_id].detail


async def test_transient_errors_back_off_then_reconcile_instead_of_repeating() -> None:
    executor = Scripted()
    warn = entry("m1", "warn")
    executor.script[warn.action_id] = [RetriableActionError("503"), RetriableActionError("503")]
    sleeps = Sleeps()
    books = Books()
    [done] = await dispatcher(executor, books, sleeps, backoff_base_s=1.0).run([warn])
    assert done.state is State.DONE
    # The first call executes; after an error whose effect is unknown, it only reconciles.
    assert [how for how, _ in executor.calls] == ["execute", "reconcile", "reconcile"]
    assert 0 <= sleeps.waits[0] <= 1.0 and 0 <= sleeps.waits[1] <= 2.0
    assert books.attempts[warn.action_id] == 3


async def test_retries_stop_at_max_attempts_and_permanent_errors_are_not_retried() -> None:
    executor = Scripted()
    flaky, denied = entry("m1"), entry("m2", channel="c2")
    executor.script[flaky.action_id] = [RetriableActionError("timeout") for _ in range(10)]
    executor.script[denied.action_id] = [PermanentActionError("403 Missing Permissions")]
    books = Books()
    done = await dispatcher(executor, books, max_attempts=3).run([flaky, denied])
    assert [e.state for e in done] == [State.FAILED, State.FAILED]
    assert sum(1 for _, a in executor.calls if a == flaky.action_id) == 3
    assert sum(1 for _, a in executor.calls if a == denied.action_id) == 1
    assert "Missing Permissions" in books.finished[denied.action_id].detail
    assert books.finished[flaky.action_id].status is ActionStatus.FAILED


async def test_an_unexpected_error_fails_one_action_not_the_batch() -> None:
    executor = Scripted()
    broken, fine = entry("m1"), entry("m2", channel="c2")
    executor.script[broken.action_id] = [KeyError("bug")]
    done = await dispatcher(executor, Books()).run([broken, fine])
    assert [e.state for e in done] == [State.FAILED, State.DONE]


async def test_a_raid_in_one_channel_becomes_bulk_deletes() -> None:
    executor = Scripted(delay=0.01)
    raid = [entry(f"r{i}", channel="raid") for i in range(150)]
    calm = [entry(f"c{i}", channel="calm") for i in range(2)]
    interrupted = entry("x", channel="raid", state=State.IN_FLIGHT)
    done = await dispatcher(executor, Books()).run([*raid, *calm, interrupted])
    assert {e.state for e in done} == {State.DONE}
    bulks = [ids.split(",") for how, ids in executor.calls if how == "bulk"]
    assert sorted(len(ids) for ids in bulks) == [50, 100]  # Discord takes 100 at most
    singles = sorted(ids for how, ids in executor.calls if how != "bulk")
    assert singles == ["c0:delete", "c1:delete", "x:delete"]  # too few; in flight on its own
    # No bulk where the platform has none.
    executor = Scripted()
    executor.bulk_delete_max = 0
    await dispatcher(executor, Books()).run([entry(f"s{i}", channel="raid") for i in range(5)])
    assert [how for how, _ in executor.calls] == ["execute"] * 5


async def test_deletes_waiting_in_a_channel_are_taken_together_across_batches() -> None:
    executor = Scripted(delay=0.05)
    books = Books()
    engine = dispatcher(executor, books)
    first = asyncio.create_task(engine.run([entry("m0", channel="flood")]))
    await asyncio.sleep(0.01)  # m0 is being deleted; the next batch arrives meanwhile
    later = [entry(f"m{i}", channel="flood") for i in range(1, 6)]
    second = await engine.run(later)
    await first
    assert executor.calls == [("execute", "m0:delete"), ("bulk", "m1,m2,m3,m4,m5")]
    assert {e.state for e in second} == {State.DONE}
    assert sorted(books.finished) == [f"m{i}:delete" for i in range(6)]


async def test_bulk_deletes_finish_every_entry_or_fall_back_to_single_deletes() -> None:
    executor = Scripted()
    books = Books()
    raid = [entry(f"r{i}", channel="raid") for i in range(5)]
    done = await dispatcher(executor, books).run(raid)
    assert [how for how, _ in executor.calls] == ["bulk"]
    assert all(e.state is State.DONE for e in done)

    executor = Scripted()
    executor.bulk_script = [PermanentActionError("400: a message is older than 2 weeks")]
    raid = [entry(f"s{i}", channel="raid") for i in range(4)]
    done = await dispatcher(executor, Books()).run(raid)
    assert [how for how, _ in executor.calls] == ["bulk"] + ["reconcile"] * 4
    assert all(e.state is State.DONE for e in done)


async def test_one_users_actions_run_in_order_and_in_flight_ones_are_reconciled() -> None:
    executor = Scripted(delay=0.005)
    books = Books()
    warn = entry("m1", "warn", user="u1")
    ban = entry("m2", "ban", user="u1", state=State.IN_FLIGHT)
    done = await dispatcher(executor, books).run([ban, warn])
    assert executor.calls == [("execute", "m1:warn"), ("reconcile", "m2:ban")]
    assert "reconciled after a restart" in books.finished["m2:ban"].detail
    assert books.started == ["m1:warn"]  # an in-flight entry is not started again
    assert {e.state for e in done} == {State.DONE}


async def test_priority_semaphore_serves_the_most_urgent_waiter() -> None:
    semaphore = PrioritySemaphore(1)
    await semaphore.acquire((0, 0))
    served: list[str] = []

    async def wait(name: str, priority: tuple[int, int]) -> None:
        async with semaphore.slot(priority):
            served.append(name)

    tasks = [
        asyncio.create_task(wait("low", (-1, 5))),
        asyncio.create_task(wait("high", (-3, 9))),
        asyncio.create_task(wait("medium", (-2, 1))),
    ]
    await asyncio.sleep(0)
    semaphore.release()
    await asyncio.gather(*tasks)
    assert served == ["high", "medium", "low"]


@pytest.mark.parametrize("cancel_after_grant", [False, True])
async def test_priority_semaphore_survives_cancelled_waiters(cancel_after_grant: bool) -> None:
    semaphore = PrioritySemaphore(1)
    await semaphore.acquire((0, 0))
    waiter = asyncio.create_task(semaphore.acquire((0, 1)))
    await asyncio.sleep(0)
    if cancel_after_grant:
        semaphore.release()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    if not cancel_after_grant:
        semaphore.release()
    # The slot is free again either way.
    await asyncio.wait_for(semaphore.acquire((0, 2)), timeout=1)

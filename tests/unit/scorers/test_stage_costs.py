"""Issue 16, the scorer's per-message cost: the stage clock counts each stage's CPU once while
the score and deliver tasks interleave; faust's hand-off of a message runs without tasks unless
it has to wait, and then behaves as faust's; and the benchmark's per-stage table adds up."""

from __future__ import annotations

import asyncio
import time

import pytest
from mode.utils.locks import Event as ModeEvent
from prometheus_client import REGISTRY

from benchmarks.pipeline import stage_costs, stage_table
from schemas.events import ChatMessage
from scorers.batch import RawEvent
from scorers.consumer import Resumed, ScorerConsumer
from scorers.stages import StageClock


def burn(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_interleaved_stages_are_each_counted_once_and_waits_not_at_all() -> None:
    clock = StageClock()

    async def score() -> None:
        with clock.section("redis"):
            burn(0.03)
            await clock.wait(asyncio.sleep(0.02))  # the deliver task runs meanwhile
            burn(0.03)

    async def deliver() -> None:
        await asyncio.sleep(0)
        with clock.section("encode"):
            burn(0.03)
            await clock.wait(asyncio.sleep(0.03))
            burn(0.03)
        burn(0.02)  # no stage: left to the event-loop total ("consume")

    async def main() -> None:
        await asyncio.gather(score(), deliver())

    asyncio.run(main())
    spent = clock._ns
    assert set(spent) == {"redis", "encode"}
    for stage in ("redis", "encode"):
        assert 0.058 <= spent[stage] / 1e9 <= 0.075, (stage, spent[stage])


def test_flush_adds_the_sums_to_the_counter() -> None:
    clock = StageClock()

    def value() -> float:
        got = REGISTRY.get_sample_value("warden_scorer_stage_seconds_total", {"stage": "t16"})
        return got or 0.0

    before = value()
    clock.add("t16", 2_500_000_000)
    clock.flush()
    clock.flush()  # nothing left to add
    assert value() - before == pytest.approx(2.5)


def consumer() -> ScorerConsumer:
    """A ScorerConsumer with just what its hand-off needs (no broker)."""
    made = ScorerConsumer.__new__(ScorerConsumer)
    made.suspend_flow = asyncio.Event()
    made._stopped = ModeEvent()
    made._crashed = ModeEvent()
    made._loop = asyncio.get_running_loop()
    return made


def test_a_handoff_that_does_not_wait_runs_at_once_without_tasks() -> None:
    async def main() -> None:
        made = consumer()
        handed: list[int] = []

        async def handoff(n: int) -> int:
            handed.append(n)
            return n * 2

        tasks = len(asyncio.all_tasks())
        result = await made.wait_first(handoff(21), made.suspend_flow.wait())
        assert handed == [21] and result.results == [42] and not result.stopped
        assert len(asyncio.all_tasks()) == tasks

    asyncio.run(main())


def test_a_handoff_that_waits_goes_on_under_faust_and_a_suspended_flow_abandons_it() -> None:
    async def main() -> None:
        made = consumer()
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def handoff() -> str:
            steps.append("started")
            await room  # a full stream buffer
            steps.append("put")
            return "done"

        waiting = asyncio.ensure_future(made.wait_first(handoff(), made.suspend_flow.wait()))
        await asyncio.sleep(0.01)
        assert steps == ["started"] and not waiting.done()
        room.set_result(None)
        result = await asyncio.wait_for(waiting, 1)
        assert steps == ["started", "put"] and result.results == ["done"]

        # A rebalance suspends the flow while a hand-off waits: faust gives it up.
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cancelled: list[bool] = []

        async def stuck() -> None:
            try:
                await never
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        waiting = asyncio.ensure_future(made.wait_first(stuck(), made.suspend_flow.wait()))
        await asyncio.sleep(0.01)
        made.suspend_flow.set()
        result = await asyncio.wait_for(waiting, 1)
        await asyncio.sleep(0)
        assert cancelled == [True] and result.results == [True]  # the flow's wait won

        # Suspended from the start: faust's own path, unchanged.
        later = await made.wait_first(asyncio.sleep(0, "x"), made.suspend_flow.wait())
        assert True in later.results

    asyncio.run(main())


def test_resumed_passes_a_cancellation_into_the_coroutine() -> None:
    async def main() -> None:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seen: list[str] = []

        async def body() -> None:
            try:
                await never
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        coro = body()
        pending = coro.send(None)
        task = asyncio.ensure_future(Resumed(coro, pending))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["cancelled"]

    asyncio.run(main())


def raw(n: int, text: str) -> RawEvent:
    message = ChatMessage.model_validate(
        {
            "message_id": f"m{n}",
            "platform": "twitch",
            "community": "c16",
            "channel": "#main",
            "user": f"u{n}",
            "user_roles": ["subscriber"] if n % 2 else [],
            "text": text,
            "sent_at": "2026-11-21T10:00:00+00:00",
            "received_at": "2026-11-21T10:00:00.010000+00:00",
        }
    )
    return RawEvent(message.to_json_bytes(), b"k", "chat", 0, n)


TEXTS = ["hello chat", "you absolute idiot", "KEKW KEKW", "go die in a fire", "gg", "fuck"]


def test_the_benchmark_table_adds_the_threads_and_stages_up() -> None:
    before = {"thread:main": 1.0, "thread:process": 2.0, "decode": 0.1}
    after = {
        "thread:main": 1.5,  # 0.5 s on the event loop
        "thread:model": 0.3,
        "thread:encoder": 0.4,
        "thread:AIOKafkaConsumerThread": 0.05,
        "thread:Thread": 0.01,
        "thread:process": 3.3,  # 1.3 s in all: 0.04 s in threads Python does not know
        "decode": 0.2,  # 0.1 s
        "redis": 0.1,
        "model_thread": 0.3,
        "encoder": 0.1,
        "booster": 0.05,
        "gc": 0.02,
    }
    costs = stage_costs(before, after, 1000)  # us per message
    assert costs["decode"] == 100.0 and costs["redis"] == 100.0
    assert costs["consume"] == 300.0  # 0.5 s on the loop less the stages timed there
    assert costs["fetch"] == 50.0 and costs["other_threads"] == 10.0
    assert costs["encoder"] == pytest.approx(100.0 + 400.0 + 40.0)
    assert costs["model_other"] == pytest.approx(150.0)
    assert costs["total"] == 1300.0
    assert costs["outside_encoder"] == pytest.approx(1300.0 - 540.0)
    assert costs["gc"] == 20.0
    table = stage_table({"replay": costs})
    assert "| consume | 300.0 |" in table and "| gc (inside the rows above) | 20.0 |" in table

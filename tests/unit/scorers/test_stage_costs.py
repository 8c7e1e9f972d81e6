"""Issue 16, the scorer's per-message cost: the stage clock counts each stage's CPU once while
the score and deliver tasks interleave; faust's hand-off of a message runs without tasks unless
it has to wait, and then behaves as faust's; and the benchmark's per-stage table adds up."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from mode.utils.locks import Event as ModeEvent
from prometheus_client import REGISTRY

from benchmarks.stage_costs import stage_costs, stage_table
from schemas.events import ChatMessage
from scorers.batch import RawEvent
from scorers.consumer import Resumed, ScorerConsumer, ack_events, take_events
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

    # Batches of cached texts scored on the event loop: the model's time, not `consume`'s.
    inline = stage_costs(before, {**after, "model_inline": 0.1, "booster": 0.1}, 1000)
    assert inline["consume"] == 200.0
    assert inline["booster"] == 100.0 and inline["model_other"] == pytest.approx(200.0)
    assert inline["total"] == 1300.0


class FakeMessage:
    def __init__(self, offset: int, generation: int = 1) -> None:
        self.topic, self.offset, self.generation_id = "chat", offset, generation
        self.tp = ("chat", 0)
        self.tracked = False


class FakeEvent:
    def __init__(self, message: FakeMessage, acks: list[int]) -> None:
        self.message = message
        self._acks = acks

    def ack(self) -> bool:
        self._acks.append(self.message.offset)
        return True


class FakeStream:
    """What take_events reads of a faust agent's stream: its app, channel queue and state."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[FakeEvent] = asyncio.Queue()
        self.channel = self
        self.should_stop = False
        self.stopped_iteration = False
        self.sensed: list[tuple[str, int]] = []
        self.flow_active = True
        self.app = SimpleNamespace(
            consumer=SimpleNamespace(unacked=set()),
            consumer_generation_id=1,
            topics=SimpleNamespace(acking_topics={"chat"}),
            flow_control=SimpleNamespace(is_active=lambda: self.flow_active),
            sensors=SimpleNamespace(
                on_message_in=lambda tp, offset, m: self.sensed.append(("in", offset)),
                on_message_out=lambda tp, offset, m: self.sensed.append(("out", offset)),
            ),
        )

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> FakeEvent:
        return await self.queue.get()

    async def maybe_start(self) -> bool:
        return True

    def _channel_stop_iteration(self, channel: object) -> None:
        self.stopped_iteration = True


def test_take_events_batches_tracks_and_drops_without_acking() -> None:
    async def main() -> None:
        stream = FakeStream()
        acks: list[int] = []
        for offset in range(300):
            # offset 5 is of an older consumer generation (before a rebalance): dropped. Not
            # acked: an acked offset may be committed, and this one was never scored.
            stream.queue.put_nowait(FakeEvent(FakeMessage(offset, 0 if offset == 5 else 1), acks))
        taken = take_events(stream, 128, 0.05)  # type: ignore[arg-type]
        sizes = [len(await anext(taken)) for _ in range(3)]
        assert sizes == [128, 128, 43]  # full, full, then what came within the wait
        assert acks == []
        unacked = stream.app.consumer.unacked
        assert len(unacked) == 299 and all(m.tracked for m in unacked)
        assert ("in", 5) not in stream.sensed and ("in", 6) in stream.sensed

        # A rebalance suspends the flow: what is taken meanwhile is dropped, not acked (the
        # rebalance seeks back to the committed offset, and it is read again).
        stream.flow_active = False
        stream.queue.put_nowait(FakeEvent(FakeMessage(300), acks))
        stream.flow_active = True
        stream.queue.put_nowait(FakeEvent(FakeMessage(301), acks))
        stream.flow_active = False
        waiting = asyncio.ensure_future(anext(taken))
        await asyncio.sleep(0.1)
        assert not waiting.done() and acks == []
        stream.flow_active = True
        stream.queue.put_nowait(FakeEvent(FakeMessage(302), acks))
        batch = await asyncio.wait_for(waiting, 1)
        assert [e.message.offset for e in batch] == [302]
        await taken.aclose()
        assert stream.stopped_iteration

        ack_events(stream.app, batch)  # type: ignore[arg-type]
        assert acks[-1] == 302 and stream.sensed[-1] == ("out", 302)

    asyncio.run(main())


def test_a_batch_closes_within_its_wait_after_its_first_event() -> None:
    async def main() -> None:
        stream = FakeStream()
        acks: list[int] = []
        taken = take_events(stream, 128, 0.05)  # type: ignore[arg-type]
        first = asyncio.ensure_future(anext(taken))
        await asyncio.sleep(0.02)
        assert not first.done()  # nothing yet: the batch waits for its first event
        stream.queue.put_nowait(FakeEvent(FakeMessage(0), acks))
        started = time.monotonic()
        await asyncio.sleep(0.02)
        stream.queue.put_nowait(FakeEvent(FakeMessage(1), acks))
        batch = await asyncio.wait_for(first, 1)
        assert [e.message.offset for e in batch] == [0, 1]
        assert 0.04 <= time.monotonic() - started < 0.5
        await taken.aclose()

    asyncio.run(main())


def test_an_idle_stage_gets_what_is_there_at_once_a_busy_one_a_fuller_batch() -> None:
    async def main() -> None:
        stream = FakeStream()
        acks: list[int] = []
        busy = [False]
        taken = take_events(stream, 128, 0.2, lambda: not busy[0])  # type: ignore[arg-type]
        stream.queue.put_nowait(FakeEvent(FakeMessage(0), acks))
        stream.queue.put_nowait(FakeEvent(FakeMessage(1), acks))
        started = time.monotonic()
        batch = await asyncio.wait_for(anext(taken), 1)
        assert [e.message.offset for e in batch] == [0, 1]  # nothing more waiting: go now
        assert time.monotonic() - started < 0.1

        busy[0] = True  # the stage scores: events that come meanwhile join the next batch
        later = asyncio.ensure_future(anext(taken))
        stream.queue.put_nowait(FakeEvent(FakeMessage(2), acks))
        await asyncio.sleep(0.05)
        assert not later.done()
        stream.queue.put_nowait(FakeEvent(FakeMessage(3), acks))
        batch = await asyncio.wait_for(later, 1)
        assert [e.message.offset for e in batch] == [2, 3]
        await taken.aclose()

    asyncio.run(main())

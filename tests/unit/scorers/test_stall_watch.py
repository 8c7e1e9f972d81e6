"""The stall watch: a consumer that takes nothing while messages wait is sought back to its
committed offsets and resumed; a quiet topic, a busy scorer or a rebalance is left alone."""

from __future__ import annotations

from typing import Any

import pytest
from faust.types import TP

from scorers.consumer import StallWatch

TOPIC = "chat.messages.v1"
P0, P1 = TP(TOPIC, 0), TP(TOPIC, 1)


class Flow:
    def __init__(self) -> None:
        self.active = False

    def is_active(self) -> bool:
        return self.active

    def resume(self) -> None:
        self.active = True


class Consumer:
    """What the watch reads of faust's consumer, and what it calls to restart it."""

    def __init__(self, ends: dict[TP, int], committed: dict[TP, int | None]) -> None:
        self.ends = ends
        self._committed_offset = committed
        self._paused_partitions = {P0, P1, TP("other", 0)}
        self.flow_active = False
        self.should_stop = False
        self.calls: list[str] = []

    def assignment(self) -> set[TP]:
        return {P0, P1, TP("other", 0)}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends.get(tp, 0) for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    def resume_partitions(self, tps: Any) -> None:
        self.calls.append(f"resume {sorted(tp.partition for tp in tps)}")
        self._paused_partitions -= set(tps)

    async def perform_seek(self) -> None:
        self.calls.append("seek")

    def resume_flow(self) -> None:
        self.calls.append("resume flow")
        self.flow_active = True


class App:
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.flow_control = Flow()
        self.rebalancing = False
        self.consumer_generation_id = 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(consumer: Consumer, *, idle: bool = True) -> tuple[StallWatch, App, Clock]:
    app, clock = App(consumer), Clock()
    return StallWatch(app, TOPIC, lambda: idle, after_s=30, clock=clock), app, clock  # type: ignore[arg-type]


async def test_messages_waiting_and_none_taken_restart_the_consumer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = Consumer(ends={P0: 900, P1: 40}, committed={P0: 315, P1: 40})
    stall, app, clock = watch(consumer)
    stall.dropped = 12
    clock.now += 29
    assert not await stall.check()  # not yet 30 s
    clock.now += 2
    assert await stall.check()
    assert consumer.calls == ["resume [0]", "seek", "resume flow"]
    assert app.flow_control.is_active()
    assert "585 wait (chat.messages.v1[0]: 585)" in caplog.text
    assert "flow suspended, consumer flow stopped, paused [0, 1]" in caplog.text
    assert "generation 3, 12 dropped" in caplog.text
    # Given another 30 s before it is tried again.
    clock.now += 10
    assert not await stall.check()
    assert stall.restarts == 1


async def test_a_taken_batch_resets_the_clock() -> None:
    consumer = Consumer(ends={P0: 900}, committed={P0: 315})
    stall, _, clock = watch(consumer)
    clock.now += 25
    stall.taken()
    clock.now += 25
    assert not await stall.check()
    assert consumer.calls == []


@pytest.mark.parametrize(
    "committed",
    [{P0: 900, P1: 40}, {P0: None, P1: None}],
    ids=["caught up", "nothing ever written"],
)
async def test_a_quiet_topic_is_not_a_stall(committed: dict[TP, int | None]) -> None:
    ends = {P0: 900, P1: 40} if committed[P0] is not None else {}
    consumer = Consumer(ends=ends, committed=committed)
    stall, _, clock = watch(consumer)
    clock.now += 60
    assert not await stall.check()
    assert consumer.calls == []


async def test_a_busy_scorer_or_a_rebalance_is_not_a_stall() -> None:
    consumer = Consumer(ends={P0: 900}, committed={P0: 315})
    busy, _, clock = watch(consumer, idle=False)
    clock.now += 60
    assert not await busy.check()  # the stages hold a batch (the broker may be away)
    stall, app, clock = watch(consumer)
    app.rebalancing = True
    clock.now += 60
    assert not await stall.check()
    assert consumer.calls == []

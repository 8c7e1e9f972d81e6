"""The scorer's stages: acknowledged in order, only after delivery; a record the broker refuses
becomes a dead letter, a broker away delays the batch, and any other failure stops them."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
)
from faust.exceptions import ProducerSendError

from schemas.events import ChatMessage, Severity
from scorers.batch import BatchScorer, RawEvent
from scorers.cache import TextSideCache
from scorers.cache import split as split_rows
from scorers.context_store import ContextReader
from scorers.detectors import Detected, StreamDetectors, raid_event
from scorers.stages import Stages
from scorers.stream_state import RaidSeen
from toxicity.base import Score
from toxicity.hybrid import TextSide
from toxicity.lexical import LexicalScorer
from toxicity.lexicon import Hits


def raw(n: int, text: str = "hello chat") -> RawEvent:
    message = ChatMessage.model_validate(
        {
            "message_id": f"m{n}",
            "platform": "twitch",
            "community": "c",
            "channel": "#main",
            "user": f"u{n % 3}",
            "text": text,
            "sent_at": "2026-11-21T10:00:00+00:00",
            "received_at": "2026-11-21T10:00:00.010000+00:00",
        }
    )
    return RawEvent(message.to_json_bytes(), b"k", "chat", 0, n)


class Broker:
    """Send returns a delivery future this test resolves when it likes."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.fail_on = fail_on

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        if self.fail_on is not None and self.fail_on.encode() in value:
            raise RuntimeError("broker refused the record")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        record = json.loads(value)
        self.pending[record.get("message_id", f"{topic}-{len(self.pending)}")] = future
        return future


def stages(broker: Broker | Refusing, acked: list[Any], failures: list[BaseException]) -> Stages:
    send_many = broker.send_many if isinstance(broker, Batching) else None

    async def ack(events: Any) -> None:
        acked.extend(events)

    async def on_failure(exc: BaseException) -> None:
        failures.append(exc)

    return Stages(
        BatchScorer(LexicalScorer(), Severity.MEDIUM),
        ContextReader(None),
        ThreadPoolExecutor(1),
        send=broker.send,
        send_many=send_many,
        ack=ack,
        verdicts_topic="verdicts",
        dead_letter_topic="dead",
        source_topic="chat",
        on_failure=on_failure,
    )


async def wait_for(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in 2 s")


async def test_batches_are_acknowledged_in_order_and_only_after_delivery() -> None:
    broker = Broker()
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.start()
    try:
        first, second = [raw(0), raw(1)], [raw(2), RawEvent(b"not json", None, "chat", 0, 3)]
        await running.put(["e0", "e1"], first)
        await running.put(["e2", "e3"], second)
        await wait_for(lambda: {"m0", "m1"} <= set(broker.pending))
        await asyncio.sleep(0.05)
        assert acked == []  # sent, not delivered: nothing acknowledged
        broker.pending["m1"].set_result(None)
        await asyncio.sleep(0.05)
        assert acked == []  # half a batch delivered is not a delivered batch
        broker.pending["m0"].set_result(None)
        await wait_for(lambda: acked == ["e0", "e1"])
        # The second batch (a verdict and a dead letter) waits for its own delivery.
        await wait_for(lambda: "m2" in broker.pending)
        for future in broker.pending.values():
            if not future.done():
                future.set_result(None)
        await wait_for(lambda: acked == ["e0", "e1", "e2", "e3"])
        assert failures == []
    finally:
        await running.stop()


async def test_a_delivery_report_that_never_comes_is_not_waited_for_forever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = Broker()
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.delivery_deadline_s = 0.2
    running.start()
    try:
        await running.put(["e0"], [raw(0)])
        await wait_for(lambda: "m0" in broker.pending)
        first = broker.pending["m0"]  # never resolved: a report lost with its connection
        await wait_for(lambda: broker.pending["m0"] is not first)
        assert acked == []
        assert "no delivery report in 0.2 s" in caplog.text
        broker.pending["m0"].set_result(None)
        await wait_for(lambda: acked == ["e0"])
        first.set_exception(KafkaConnectionError())  # late, and nobody is waiting for it
        await asyncio.sleep(0.05)
        assert failures == []
    finally:
        await running.stop()


async def test_a_failed_delivery_stops_the_stages_without_acknowledging() -> None:
    broker = Broker(fail_on='"message_id":"m1"')
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.start()
    try:
        await running.put(["e0", "e1"], [raw(0), raw(1)])
        await wait_for(lambda: failures)
        assert isinstance(failures[0], RuntimeError)
        assert acked == []
        with pytest.raises(RuntimeError, match="broker refused"):
            await running.put(["e2"], [raw(2)])
    finally:
        await running.stop()


class Refusing:
    """A broker that answers each send from a script: refuse, fail for now, or take it.

    ``plan`` maps a marker found in the record's value to the errors its successive sends meet
    (None: taken). ``at`` says whether the error comes from ``send`` itself (aiokafka checks a
    record's size before queueing it; faust wraps the error) or from the delivery future.
    """

    def __init__(self, plan: dict[str, list[BaseException | None]], at: str = "future") -> None:
        self.plan = plan
        self.at = at
        self.taken: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.attempts += 1
        error = None
        for marker, errors in self.plan.items():
            if marker.encode() in value and errors:
                error = errors.pop(0)
                break
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if error is None:
            self.taken.append((topic, json.loads(value)))
            future.set_result(None)
        elif self.at == "send":
            raise ProducerSendError(f"Error while sending: {error!r}") from error
        else:
            future.set_exception(error)
        return future


class Batching(Refusing):
    """Like :class:`Refusing`, and ``send_many`` puts all its records in one record batch: the
    batch is refused as a whole when one of its records is."""

    def __init__(self, plan: dict[str, list[BaseException | None]]) -> None:
        super().__init__(plan)
        self.batches: list[list[str]] = []

    async def send_many(self, records: Any) -> list[Any]:
        self.batches.append([json.loads(r.value).get("message_id", r.topic) for r in records])
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for marker, errors in self.plan.items():
            if errors and any(marker.encode() in r.value for r in records):
                error = errors.pop(0)
                assert error is not None
                future.set_exception(error)
                return [future] * len(records)
        self.taken += [(r.topic, json.loads(r.value)) for r in records]
        future.set_result(None)
        return [future] * len(records)


def run_with(broker: Any) -> tuple[Stages, list[Any], list[BaseException]]:
    acked: list[Any] = []
    failures: list[BaseException] = []
    return stages(broker, acked, failures), acked, failures


@pytest.mark.parametrize("at", ["send", "future"])
@pytest.mark.parametrize("error", [MessageSizeTooLargeError(), RecordTooLargeError()])
async def test_a_refused_verdict_becomes_a_dead_letter_and_the_stream_goes_on(
    at: str, error: BaseException
) -> None:
    broker = Refusing({'"message_id":"m1"': [error]}, at=at)
    running, acked, failures = run_with(broker)
    running.start()
    try:
        await running.put(["e0", "e1", "e2"], [raw(0), raw(1), raw(2)])
        await wait_for(lambda: acked == ["e0", "e1", "e2"])
        verdicts = [r["message_id"] for t, r in broker.taken if t == "verdicts"]
        letters = [r for t, r in broker.taken if t == "dead"]
        assert verdicts == ["m0", "m2"]
        assert len(letters) == 1
        assert letters[0]["offset"] == 1
        assert letters[0]["error_type"] == type(error).__name__
        assert "m1" in letters[0]["error"] and "not delivered" in letters[0]["error"]
        assert json.loads(letters[0]["raw"])["message_id"] == "m1"  # replayable
        assert failures == []
    finally:
        await running.stop()


async def test_a_record_batch_refused_for_one_record_costs_only_that_record() -> None:
    broker = Batching({'"message_id":"m1"': [RecordTooLargeError(), RecordTooLargeError()]})
    running, acked, failures = run_with(broker)
    running.start()
    try:
        await running.put(["e0", "e1", "e2"], [raw(0), raw(1), raw(2)])
        await wait_for(lambda: acked == ["e0", "e1", "e2"])
        # One batch refused; each record sent again in a record batch of its own (through the
        # producer's send, records to one partition would share a batch again); the letter in
        # a batch again.
        assert broker.batches == [["m0", "m1", "m2"], ["m0"], ["m1"], ["m2"], ["dead"]]
        verdicts = sorted(r["message_id"] for t, r in broker.taken if t == "verdicts")
        letters = [r for t, r in broker.taken if t == "dead"]
        assert verdicts == ["m0", "m2"]
        assert [json.loads(letter["raw"])["message_id"] for letter in letters] == ["m1"]
        assert failures == []
    finally:
        await running.stop()


async def test_a_broker_away_keeps_a_batch_together_and_drops_nothing() -> None:
    broker = Batching({'"message_id":"m0"': [KafkaConnectionError()]})
    running, acked, failures = run_with(broker)
    running.start()
    try:
        await running.put(["e0", "e1"], [raw(0), raw(1)])
        await wait_for(lambda: acked == ["e0", "e1"])
        assert broker.batches == [["m0", "m1"], ["m0", "m1"]]
        assert sorted(r["message_id"] for _, r in broker.taken) == ["m0", "m1"]
        assert failures == []
    finally:
        await running.stop()


async def test_a_refused_dead_letter_is_sent_again_without_its_payload() -> None:
    broker = Refusing({"not json": [RecordTooLargeError()]})
    running, acked, failures = run_with(broker)
    running.start()
    try:
        await running.put(["e0"], [RawEvent(b"not json", None, "chat", 0, 5)])
        await wait_for(lambda: acked == ["e0"])
        ((topic, letter),) = broker.taken
        assert topic == "dead"
        assert (letter["raw"], letter["raw_truncated"], letter["raw_bytes"]) == ("", True, 8)
        assert letter["offset"] == 5
        assert "dead letter refused" in letter["error"]
        assert failures == []
    finally:
        await running.stop()


async def test_when_even_the_smallest_dead_letter_is_refused_the_stages_stop() -> None:
    refusals: list[BaseException | None] = [RecordTooLargeError(), RecordTooLargeError()]
    broker = Refusing({'"source_topic":"chat"': refusals})
    running, acked, failures = run_with(broker)
    running.start()
    try:
        await running.put(["e0"], [RawEvent(b"not json", None, "chat", 0, 5)])
        await wait_for(lambda: failures)
        assert isinstance(failures[0], RecordTooLargeError)
        assert acked == []
    finally:
        await running.stop()


@pytest.mark.parametrize("at", ["send", "future"])
async def test_a_broker_away_delays_the_batch_and_drops_nothing(at: str) -> None:
    away: list[BaseException | None] = [
        KafkaConnectionError(),
        KafkaTimeoutError(),
        NotLeaderForPartitionError(),
    ]
    broker = Refusing({'"message_id":"m1"': away}, at=at)
    running, acked, failures = run_with(broker)
    running.start()
    try:
        await running.put(["e0", "e1"], [raw(0), raw(1)])
        # m0 once, m1 refused twice so far: its third refusal and the pauses are still ahead.
        await wait_for(lambda: broker.attempts >= 3)
        assert acked == []
        await wait_for(lambda: acked == ["e0", "e1"])
        verdicts = sorted(r["message_id"] for t, r in broker.taken if t == "verdicts")
        assert verdicts == ["m0", "m1"]
        assert not [r for t, r in broker.taken if t == "dead"]
        assert failures == []
    finally:
        await running.stop()


class OneRaid(StreamDetectors):
    """Detectors whose stream state (Redis, in the integration tests) saw a raid cross."""

    def __init__(self) -> None:
        super().__init__(None, None)
        self.marked: list[str] = []

    async def run(self, messages: Any, verdicts: Any) -> Detected:
        detected = await super().run(messages, verdicts)
        seen = RaidSeen(0, "wd:rd:x", "twitch:c:#main:m0", 0, 1000, 10, 12, ["u0"])
        seen.event = raid_event(seen, messages[0])
        return Detected(detected.verdicts, [seen], False)

    async def published(self, raids: Any) -> None:
        self.marked += [raid.raid_id for raid in raids]


async def test_a_raid_event_is_delivered_with_its_batch_before_the_acknowledgement() -> None:
    broker = Refusing({})
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.detectors = detectors = OneRaid()
    running.raids_topic = "raids"
    running.start()
    try:
        await running.put(["e0"], [raw(0, "free skins at bit.ly/x")])
        await wait_for(lambda: acked == ["e0"])
        topics = [topic for topic, _ in broker.taken]
        assert topics == ["verdicts", "raids"]
        verdict, raid = (value for _, value in broker.taken)
        assert verdict["labels"] == ["link"] and verdict["flagged"]
        assert raid["raid_id"] == "twitch:c:#main:m0" and raid["size"] == 10
        assert detectors.marked == ["twitch:c:#main:m0"]
        assert failures == []
    finally:
        await running.stop()


class Versioned(StreamDetectors):
    """Detectors with no stream state, one community policy, and a record of what ``run`` got."""

    def __init__(self) -> None:
        super().__init__(None, None)
        self.given: list[str | None] = []

    async def versions(self, messages: Any) -> list[str]:
        return ["twitch:c@v7" for _ in messages]

    async def run(self, messages: Any, verdicts: Any) -> Detected:
        self.given += [v.policy_version for v in verdicts]
        return Detected(list(verdicts), [], False)


async def test_verdicts_are_built_with_the_policy_version_the_detectors_apply() -> None:
    broker = Refusing({})
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.detectors = detectors = Versioned()
    running.start()
    try:
        await running.put(["e0"], [raw(0, "hello there")])
        await wait_for(lambda: acked == ["e0"])
        assert detectors.given == ["twitch:c@v7"]  # built with it: no copy to set it
        ((_, verdict),) = broker.taken
        assert verdict["policy_version"] == "twitch:c@v7"
        assert failures == []
    finally:
        await running.stop()


class SplitModel:
    """A model with a text side (as the hybrid model has), scoring a text by its length."""

    version = "split-1"

    def score_text_side(self, texts: Sequence[str]) -> TextSide:
        lengths = np.array([[len(t)] for t in texts], dtype=np.float32)
        return TextSide(embeddings=lengths, static=lengths, hits=[Hits() for _ in texts])

    def combine(self, text_side: TextSide, contexts: Any = None) -> list[Score]:
        return [Score(min(1.0, float(row[0]) / 20), Severity.SAFE) for row in text_side.static]

    def score(self, texts: Sequence[str], contexts: Any = None) -> list[Score]:
        return self.combine(self.score_text_side(texts), contexts)


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(1)
        self.runs = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return super().submit(fn, *args, **kwargs)


def cached_stages(
    model: SplitModel,
) -> tuple[Stages, Refusing, list[Any], list[BaseException]]:
    """Stages around ``model`` with a text-side cache, a broker that takes every record."""
    broker = Refusing({})
    acked: list[Any] = []
    failures: list[BaseException] = []
    running = stages(broker, acked, failures)
    running.scorer = BatchScorer(model, Severity.MEDIUM, TextSideCache(model, max_entries=10))
    return running, broker, acked, failures


async def test_a_batch_of_cached_texts_is_scored_without_the_model_thread() -> None:
    running, broker, acked, failures = cached_stages(SplitModel())
    running.executor = executor = CountingExecutor()
    running.start()
    try:
        await running.put(["e0", "e1"], [raw(0, "hello chat"), raw(1, "gg")])
        await wait_for(lambda: acked == ["e0", "e1"])
        assert executor.runs == 1  # new texts: the model thread
        await running.put(["e2", "e3"], [raw(2, "gg"), raw(3, "hello chat")])
        await wait_for(lambda: len(acked) == 4)
        assert executor.runs == 1  # both cached: scored on the event loop
        await running.put(["e4", "e5"], [raw(4, "gg"), raw(5, "something new")])
        await wait_for(lambda: len(acked) == 6)
        assert executor.runs == 2  # one new text: the model thread again
        p = {value["message_id"]: value["p_toxic"] for _, value in broker.taken}
        assert p["m2"] == p["m1"] == p["m4"] == 0.1 and p["m3"] == p["m0"] == 0.5
        assert p["m5"] == 0.65
        assert failures == []
    finally:
        await running.stop()


class HeldReads(ContextReader):
    """Context reads that wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__(None)
        self.gate = asyncio.Event()
        self.reads = 0

    async def read(self, messages: Sequence[ChatMessage]) -> tuple[Any, bool]:
        self.reads += 1
        await self.gate.wait()
        return await super().read(messages)


class RecordingModel(SplitModel):
    def __init__(self) -> None:
        self.embedded: list[list[str]] = []

    def score_text_side(self, texts: Sequence[str]) -> TextSide:
        self.embedded.append(list(texts))
        return super().score_text_side(texts)


async def test_the_next_batch_is_in_the_encoder_while_one_waits_for_its_context() -> None:
    model = RecordingModel()
    running, broker, acked, failures = cached_stages(model)
    running.contexts = reads = HeldReads()
    running.start()
    try:
        await running.put(["e0"], [raw(0, "first batch")])
        await running.put(["e1"], [raw(1, "second batch")])
        # The first batch waits for its context; the second one's texts are embedded meanwhile.
        await wait_for(lambda: model.embedded == [["first batch"], ["second batch"]])
        assert reads.reads == 1 and acked == []
        reads.gate.set()
        await wait_for(lambda: acked == ["e0", "e1"])  # in the order they were taken
        p = {value["message_id"]: value["p_toxic"] for _, value in broker.taken}
        assert p == {"m0": 0.55, "m1": 0.6}
        assert failures == []
    finally:
        await running.stop()


class GatedModel(SplitModel):
    """A text side that waits, in its thread, until the test lets a batch with "slow" go."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.done: list[list[str]] = []

    def score_text_side(self, texts: Sequence[str]) -> TextSide:
        if any("slow" in t for t in texts):
            assert self.gate.wait(10)
        self.done.append(list(texts))
        return super().score_text_side(texts)


async def test_two_batches_text_sides_run_at_once_and_their_verdicts_keep_order() -> None:
    model = GatedModel()
    running, broker, acked, failures = cached_stages(model)
    running.executor = ThreadPoolExecutor(2)  # as the scorer runs (MODEL_THREADS)
    running.start()
    try:
        await running.put(["e0"], [raw(0, "slow first batch")])
        await running.put(["e1"], [raw(1, "second")])
        # The second batch's text side ends while the first one's is still running...
        await wait_for(lambda: model.done == [["second"]])
        await asyncio.sleep(0.05)
        assert acked == [] and broker.taken == []  # ...but nothing of it goes out first
        model.gate.set()
        await wait_for(lambda: acked == ["e0", "e1"])
        assert [value["message_id"] for _, value in broker.taken] == ["m0", "m1"]
        assert failures == []
    finally:
        await running.stop()


def test_held_rows_are_all_or_nothing_and_taken_at_once() -> None:
    model = SplitModel()
    cache = TextSideCache(model, max_entries=2)
    cache.text_side(["gg", "hello"])
    held = cache.held(["gg", "hello", "gg"], {})
    assert held is not None and set(held) == {"gg", "hello"}
    assert cache.held(["gg", "new"], {}) is None
    shared = cache.held(["gg", "new"], {"new": held["hello"]})
    assert shared is not None and shared["new"] is held["hello"]
    cache.text_side(["other", "more"])  # evicts both: the held rows stay usable
    assert cache.held(["gg"], {}) is None
    side, computed = cache.text_side(["gg", "hello"], held)
    assert computed == {} and side.static[:, 0].tolist() == [2.0, 5.0]


async def test_the_stages_are_idle_only_when_the_score_stage_waits_too() -> None:
    """While a batch waits in the score stage, the next one is left to grow: it would wait
    anyway, and a small batch pays the round trips to Redis and the broker as a large one."""
    running, _, acked, failures = cached_stages(SplitModel())
    running.contexts = reads = HeldReads()
    running.start()
    try:
        await wait_for(lambda: running.idle)
        await running.put(["e0"], [raw(0, "first batch")])
        await wait_for(lambda: reads.reads == 1)
        await asyncio.sleep(0.05)  # the text stage is free again, the score stage is not
        assert not running.idle
        reads.gate.set()
        await wait_for(lambda: acked == ["e0"])
        await wait_for(lambda: running.idle)
        assert failures == []
    finally:
        await running.stop()


class Redis(ContextReader):
    """No context features, but Redis counts as up: the shared cache is used only then."""

    def __init__(self) -> None:
        super().__init__(None)

    @property
    def available(self) -> bool:
        return True


class SharedRows:
    """A shared text-side cache in memory (``scorers.app.SharedCache`` keeps them in Redis)."""

    def __init__(self, rows: dict[str, Any] | None = None) -> None:
        self.rows: dict[str, Any] = dict(rows or {})
        self.asked: list[list[str]] = []

    async def get(self, keys: Sequence[str]) -> dict[str, Any]:
        self.asked.append(list(keys))
        return {k: self.rows[k] for k in keys if k in self.rows}

    async def put(self, rows: dict[str, Any]) -> None:
        self.rows.update(rows)


async def test_rows_another_scorer_computed_cost_no_encoder_run() -> None:
    model = RecordingModel()
    peer = SplitModel().score_text_side(["Kappa"])
    running, broker, acked, failures = cached_stages(model)
    running.contexts = Redis()
    running.shared = shared = SharedRows({"Kappa": split_rows(peer)[0]})
    running.start()
    try:
        await running.put(["e0", "e1"], [raw(0, "Kappa"), raw(1, "new line")])
        await wait_for(lambda: acked == ["e0", "e1"])
        assert shared.asked == [["Kappa", "new line"]]
        assert model.embedded == [["new line"]]  # the peer's line came from the shared cache
        p = {value["message_id"]: value["p_toxic"] for _, value in broker.taken}
        assert p == {"m0": 0.25, "m1": 0.4}
        # Both are in this scorer's own cache now: nothing more is asked for or computed.
        await running.put(["e2"], [raw(2, "Kappa")])
        await wait_for(lambda: len(acked) == 3)
        assert shared.asked == [["Kappa", "new line"]] and model.embedded == [["new line"]]
        assert failures == []
    finally:
        await running.stop()

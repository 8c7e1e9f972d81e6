"""Surviving one bad record and the dependencies going away, without servers.

The record-by-record fallback (``actioners.service.isolate``), PostgreSQL reconnects
(``actioners.database.Database`` over a scripted connection factory), result publication through
broker failures (``actioners.publisher.Publisher`` over a scripted producer) and readiness.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from psycopg import errors as pg_errors
from psycopg import pq

from actioners.database import Database, DatabaseUnavailable, is_unavailable
from actioners.publisher import PERMANENT_TRIES, Outgoing, Publisher
from actioners.service import SERVICE, Readiness, is_poison, isolate
from core import metrics
from core.settings import PostgresSettings


async def eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


# ---------------------------------------------------------------------------------------------
# One bad record


async def _decide(items: Sequence[str]) -> list[str]:
    """Decides all or nothing, like one transaction: fails if any item is poison."""
    for item in items:
        if "\x00" in item:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        if item == "too-long":
            raise ValueError("action_id: String should have at most 200 characters")
    return [f"{item}:done" for item in items]


async def test_a_poisoned_batch_is_decided_record_by_record() -> None:
    batch = ["a", "b\x00", "c", "too-long", "d"]
    done, failed = await isolate(batch, _decide, describe=str)
    assert done == ["a:done", "c:done", "d:done"]  # the good ones, in order
    assert [(item, type(exc)) for item, exc in failed] == [
        ("b\x00", psycopg.DataError),
        ("too-long", ValueError),
    ]


async def test_a_good_batch_is_decided_in_one_call() -> None:
    calls: list[list[str]] = []

    async def work(items: Sequence[str]) -> list[str]:
        calls.append(list(items))
        return await _decide(items)

    done, failed = await isolate(["a", "b", "c"], work, describe=str)
    assert done == ["a:done", "b:done", "c:done"] and not failed
    assert calls == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "error",
    [
        DatabaseUnavailable("PostgreSQL unavailable"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is closed"),
        pg_errors.UndefinedTable("relation action_ledger does not exist"),
        KafkaConnectionError("broker away"),
    ],
)
async def test_a_dependency_away_or_a_bug_dead_letters_nothing(error: Exception) -> None:
    calls = 0

    async def work(items: Sequence[str]) -> list[str]:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await isolate(["a", "b"], work, describe=str)
    assert calls == 1  # not tried record by record: nothing became a dead letter


async def test_postgres_going_away_during_the_one_by_one_pass_stops_it() -> None:
    async def work(items: Sequence[str]) -> list[str]:
        if len(items) > 1:
            raise psycopg.DataError("bad byte")
        if items[0] == "c":
            raise DatabaseUnavailable("gone")
        return list(items)

    with pytest.raises(DatabaseUnavailable):
        await isolate(["a", "b", "c", "d"], work, describe=str)


def test_what_counts_as_poison_and_what_as_an_outage() -> None:
    assert is_poison(psycopg.DataError("x"))
    assert is_poison(pg_errors.UntranslatableCharacter("\\u0000 cannot be converted to text"))
    assert is_poison(psycopg.IntegrityError("x"))
    assert is_poison(pg_errors.ProgramLimitExceeded("index row size exceeds maximum"))
    assert is_poison(ValueError("x")) and is_poison(KeyError("x"))
    assert not is_poison(pg_errors.AdminShutdown("terminating connection"))
    assert not is_poison(psycopg.OperationalError("connection refused"))
    assert not is_poison(pg_errors.UndefinedColumn("x"))
    assert not is_poison(asyncio.CancelledError())
    assert is_unavailable(pg_errors.AdminShutdown("x"))
    assert is_unavailable(pg_errors.ConnectionFailure("x"))
    assert is_unavailable(ConnectionResetError())
    assert not is_unavailable(pg_errors.ProgramLimitExceeded("x"))
    assert not is_unavailable(psycopg.DataError("x"))


# ---------------------------------------------------------------------------------------------
# PostgreSQL going away


class FakeCursor:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection

    async def __aenter__(self) -> FakeCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, query: str, params: Any = None) -> None:
        if self.connection.server.down:
            self.connection.broken = True
            raise pg_errors.AdminShutdown("terminating connection due to administrator command")
        self.connection.server.executed.append(query)

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return []


class FakeInfo:
    transaction_status = pq.TransactionStatus.IDLE


class FakeConnection:
    """Enough of psycopg.AsyncConnection for Database: transactions, cursors, broken/closed."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.broken = False
        self.closed = False
        self.info = FakeInfo()

    async def set_autocommit(self, value: bool) -> None:
        return None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    async def close(self) -> None:
        self.closed = True


class FakeServer:
    def __init__(self) -> None:
        self.down = False
        self.refusals = 0  # connection attempts refused while down
        self.connections = 0
        self.executed: list[str] = []

    async def connect(self) -> Any:
        if self.down:
            self.refusals += 1
            raise psycopg.OperationalError("connection refused")
        self.connections += 1
        return FakeConnection(self)


SETTINGS = PostgresSettings(reconnect_base_s=0.001, reconnect_max_s=0.01)


async def _select(cur: Any) -> str:
    await cur.execute("SELECT 1")
    return "ok"


async def test_run_waits_out_an_outage_and_reports_readiness() -> None:
    server = FakeServer()
    changes: list[bool] = []
    db = Database(SETTINGS, connect=server.connect, on_change=changes.append)
    assert await db.run(_select) == "ok"
    assert changes == [True]

    server.down = True
    running = asyncio.create_task(db.run(_select))
    await eventually(lambda: server.refusals >= 3)
    assert not running.done() and changes == [True, False] and not db.available
    server.down = False
    assert await asyncio.wait_for(running, 2) == "ok"
    assert changes == [True, False, True] and db.available
    assert server.connections == 2  # the broken connection was replaced, once


async def test_transaction_raises_unavailable_without_retrying() -> None:
    server = FakeServer()
    db = Database(SETTINGS, connect=server.connect)
    server.down = True
    with pytest.raises(DatabaseUnavailable):
        async with db.transaction() as cur:
            await cur.execute("SELECT 1")
    assert server.refusals == 1


async def test_a_data_error_is_not_retried() -> None:
    server = FakeServer()
    db = Database(SETTINGS, connect=server.connect)
    calls = 0

    async def bad(cur: Any) -> None:
        nonlocal calls
        calls += 1
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    with pytest.raises(psycopg.DataError):
        await db.run(bad)
    assert calls == 1 and db.available and server.connections == 1


async def test_run_is_cancelled_promptly_while_postgres_is_away() -> None:
    server = FakeServer()
    server.down = True
    db = Database(PostgresSettings(reconnect_base_s=5, reconnect_max_s=60), connect=server.connect)
    running = asyncio.create_task(db.run(_select))
    await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 1)


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    db = Database(PostgresSettings(reconnect_base_s=0.1, reconnect_max_s=2.0))
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 2.0), (30, 2.0)]:
        waits = [db.backoff(attempt) for _ in range(200)]
        assert all(0 <= w <= cap for w in waits)
        assert max(waits) > cap / 2  # jittered over the whole range, not a fixed step
        assert len(set(waits)) > 100


# ---------------------------------------------------------------------------------------------
# Kafka going away while results are published


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.stopped = False

    async def start(self) -> None:
        if self.broker.down:
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:29092")

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(value) > 100:
            raise MessageSizeTooLargeError("too large")
        if self.broker.down:
            future.set_exception(KafkaTimeoutError())
        else:
            self.broker.log.append(value)
            future.set_result(None)
        return future


class FakeBroker:
    def __init__(self) -> None:
        self.down = False
        self.log: list[bytes] = []
        self.producers: list[FakeProducer] = []

    def producer(self) -> Any:
        self.producers.append(FakeProducer(self))
        return self.producers[-1]


async def test_results_are_sent_again_after_the_broker_comes_back() -> None:
    broker = FakeBroker()
    changes: list[bool] = []
    publisher = Publisher(
        broker.producer, service="test", backoff_base_s=0.001, on_change=changes.append
    )
    await publisher.start()
    broker.down = True
    records = [Outgoing("actions", f"r{i}".encode(), b"k") for i in range(3)]
    sending = asyncio.create_task(publisher.send_all(records))
    await eventually(lambda: len(broker.producers) >= 3)
    assert not sending.done() and changes == [False]
    broker.down = False
    assert await asyncio.wait_for(sending, 2) == 0
    assert broker.log == [b"r0", b"r1", b"r2"]  # each once: only the failed ones were resent
    assert changes == [False, True]
    # A producer whose sends failed is replaced, not reused.
    assert all(p.stopped for p in broker.producers[:-1])


async def test_a_record_the_broker_refuses_is_given_up_not_retried_forever() -> None:
    broker = FakeBroker()
    publisher = Publisher(broker.producer, service=SERVICE, backoff_base_s=0.001)
    before = metrics.ERRORS.labels(SERVICE, "publish_refused")._value.get()
    records = [Outgoing("dlq", b"x" * 200, None), Outgoing("actions", b"ok", None)]
    assert await asyncio.wait_for(publisher.send_all(records), 2) == 1
    assert broker.log.count(b"ok") >= 1
    after = metrics.ERRORS.labels(SERVICE, "publish_refused")._value.get()
    assert after - before == 1
    assert len(broker.producers) == PERMANENT_TRIES


# ---------------------------------------------------------------------------------------------
# Readiness


def _ready() -> float:
    return metrics.READY.labels(SERVICE)._value.get()


def test_ready_only_with_partitions_postgres_and_kafka() -> None:
    readiness = Readiness()
    assert _ready() == 0  # no partitions yet, PostgreSQL not connected yet
    readiness.set("partitions", True)
    assert _ready() == 0
    readiness.set("postgres", True)
    assert _ready() == 1
    readiness.set("postgres", False)
    assert _ready() == 0 and _up("postgres") == 0
    readiness.set("postgres", True)
    readiness.set("publishing", False)  # a send failed
    assert _ready() == 0 and _up("kafka") == 0 and _up("postgres") == 1
    readiness.set("publishing", True)
    readiness.set("kafka", False)  # the probe found no broker
    assert _ready() == 0 and _up("kafka") == 0
    readiness.set("kafka", True)
    assert _ready() == 1 and _up("kafka") == 1
    readiness.set("running", False)  # stopping
    assert _ready() == 0


def _up(dependency: str) -> float:
    return metrics.DEPENDENCY_UP.labels(SERVICE, dependency)._value.get()

"""The actioner's PostgreSQL connection: one at a time through a lock, each use a transaction.

Platform calls run concurrently; their bookkeeping (ledger, audit, strikes) takes a few
milliseconds each, so one connection, used one transaction at a time, is enough and keeps every
change atomic.

PostgreSQL may go away (a restart, a fail-over, a network cut). A failure that says so
(``psycopg.OperationalError`` other than a statement the server refuses for its size,
``InterfaceError``, a broken connection) is ``DatabaseUnavailable``: the connection is dropped,
and the next use connects again. ``run`` does a unit of work in a transaction and tries it again
through reconnects, waiting with exponential back-off and full jitter, for as long as it takes
(its caller bounds that by cancelling it, on shutdown). A unit of work tried again must be
idempotent: its transaction may have committed just before the connection broke. Errors about
the data itself (``DataError``, ``IntegrityError``, ...) are raised as they are: trying again
fails again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import pq

from core.backoff import full_jitter
from core.clients import postgres_connection
from core.errors import ConfigError, TransientError
from core.settings import PostgresSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The tables the actioner needs; a database without them has not been migrated.
REQUIRED_TABLES = (
    "action_audit",
    "action_ledger",
    "decisions",
    "policies",
    "strikes",
    "pardons",
    "holds",
    # 0004: the review queue; the actioner writes the verdict snapshot into decisions.
    "explanations",
)

# SQLSTATE classes of OperationalError that are about the statement, not the server: 54 is
# "program limit exceeded" (an index row or a statement too large), which fails again however
# often it is tried.
_STATEMENT_CLASSES = ("54",)


class DatabaseUnavailable(TransientError):
    """PostgreSQL cannot be reached or dropped the connection (retriable)."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server or the connection is away, not that the data is bad."""
    if isinstance(exc, DatabaseUnavailable | psycopg.InterfaceError | OSError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate or ""
        return not state.startswith(_STATEMENT_CLASSES)
    return False


class Database:
    def __init__(
        self,
        settings: PostgresSettings,
        connection: psycopg.AsyncConnection[Any] | None = None,
        *,
        on_change: Callable[[bool], None] | None = None,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]] | None = None,
    ) -> None:
        self.settings = settings
        self.connection = connection
        self._lock = asyncio.Lock()
        self._connect = connect or (lambda: postgres_connection(settings))
        # Told True when PostgreSQL answers again, False when it is lost (readiness).
        self.on_change = on_change
        self.available = connection is not None
        self._lost_at: float | None = None
        # Log an outage when it starts (a service); off where the caller reports it (a CLI).
        self.report_loss = True

    @classmethod
    async def connect(cls, settings: PostgresSettings, *, report_loss: bool = True) -> Database:
        """Connected now, or ``DatabaseUnavailable`` (the CLI: fail fast with one line).

        ``report_loss=False``: the caller reports a failure itself, so it is not logged too.
        """
        db = cls(settings)
        db.report_loss = report_loss
        async with db._lock:
            await db._ensure()
        return db

    async def _ensure(self) -> psycopg.AsyncConnection[Any]:
        """The open connection, connecting once if there is none (the lock is held)."""
        connection = self.connection
        if connection is not None and not connection.closed and not connection.broken:
            return connection
        self.connection = None
        try:
            connection = await asyncio.wait_for(
                self._connect(), timeout=self.settings.connect_timeout_s
            )
            # Statements outside ``transaction()`` commit on their own; blocks are transactions.
            await connection.set_autocommit(True)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self._lost(exc)
            raise DatabaseUnavailable(f"PostgreSQL unavailable: {_one_line(exc)}") from exc
        self.connection = connection
        if not self.available:
            if self._lost_at is not None:
                away = time.monotonic() - self._lost_at
                logger.warning("PostgreSQL is back after %.1f s", away)
            self.available = True
            self._lost_at = None
            if self.on_change is not None:
                self.on_change(True)
        return connection

    def _lost(self, exc: BaseException) -> None:
        first = self.available or self._lost_at is None
        if first:
            # Logged once per outage, not once per try (the retries are at debug level).
            if self.report_loss:
                logger.warning("PostgreSQL unavailable: %s", _one_line(exc))
            self._lost_at = time.monotonic()
        else:
            logger.debug("PostgreSQL still unavailable: %s", _one_line(exc))
        self.available = False
        if first and self.on_change is not None:
            self.on_change(False)

    async def _drop(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), timeout=1.0)
            except (psycopg.Error, OSError, TimeoutError):
                logger.debug("closing a broken PostgreSQL connection failed", exc_info=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """A cursor inside a transaction that commits when the block ends without an error.

        Raises ``DatabaseUnavailable`` when PostgreSQL cannot be reached or drops the
        connection (the transaction may or may not have committed if it broke at the end).
        """
        async with self._lock:
            connection = await self._ensure()
            try:
                async with connection.transaction(), connection.cursor() as cur:
                    yield cur
            except BaseException as exc:
                if is_unavailable(exc) or connection.broken:
                    self._lost(exc)
                    await self._drop()
                    if isinstance(exc, Exception):
                        raise DatabaseUnavailable(
                            f"PostgreSQL unavailable: {_one_line(exc)}"
                        ) from exc
                elif connection.info.transaction_status not in (
                    pq.TransactionStatus.IDLE,
                    pq.TransactionStatus.INTRANS,
                ):
                    # Cancelled mid-statement: the connection's state is unknown; start afresh.
                    await self._drop()
                raise

    async def run(self, work: Callable[[psycopg.AsyncCursor[Any]], Awaitable[T]]) -> T:
        """``work`` in a transaction, tried again through reconnects until it commits.

        ``work`` must be idempotent: a transaction cut off at its commit may have committed.
        """
        attempt = 0
        while True:
            try:
                async with self.transaction() as cur:
                    return await work(cur)
            except DatabaseUnavailable:
                attempt += 1
                await asyncio.sleep(self.backoff(attempt))

    async def wait_available(self) -> None:
        """Return once PostgreSQL answers (tried with back-off; cancel to give up)."""
        await self.run(_ping)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
        return full_jitter(attempt, self.settings.reconnect_base_s, self.settings.reconnect_max_s)

    async def check_schema(self) -> None:
        """Fail fast, naming the fix, when the migrations have not been applied."""
        async with self.transaction() as cur:
            await cur.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
                (list(REQUIRED_TABLES),),
            )
            found = {row[0] for row in await cur.fetchall()}
            # 0005: entries that wait for their time (a raid mode's end); 0008: what a decision
            # was made from (replays).
            for table, column in (("action_ledger", "due_at"), ("decisions", "verdict")):
                await cur.execute(
                    "SELECT 1 FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = %s"
                    " AND column_name = %s",
                    (table, column),
                )
                if await cur.fetchone() is None:
                    found.discard(table)
        missing = sorted(set(REQUIRED_TABLES) - found)
        if missing:
            raise ConfigError(
                f"PostgreSQL lacks the tables {', '.join(missing)}: run `warden migrate` "
                "(WARDEN_POSTGRES__DSN says which database)"
            )

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


async def _ping(cur: psycopg.AsyncCursor[Any]) -> None:
    await cur.execute("SELECT 1")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"

"""The actioner's PostgreSQL connection: one at a time through a lock, each use a transaction.

Platform calls run concurrently; their bookkeeping (ledger, audit, strikes) takes a few
milliseconds each, so one connection, used one transaction at a time, is enough and keeps every
change atomic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from warden.clients import postgres_connection
from warden.errors import ConfigError
from warden.settings import PostgresSettings

# The tables the actioner needs; a database without them has not been migrated.
REQUIRED_TABLES = ("action_audit", "action_ledger", "decisions", "policies", "strikes", "pardons")


class Database:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, settings: PostgresSettings) -> Database:
        connection = await postgres_connection(settings)
        # Statements outside ``transaction()`` commit on their own; blocks are transactions.
        await connection.set_autocommit(True)
        return cls(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """A cursor inside a transaction that commits when the block ends without an error."""
        async with self._lock, self.connection.transaction(), self.connection.cursor() as cur:
            yield cur

    async def check_schema(self) -> None:
        """Fail fast, naming the fix, when the migrations have not been applied."""
        async with self.transaction() as cur:
            await cur.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
                (list(REQUIRED_TABLES),),
            )
            found = {row[0] for row in await cur.fetchall()}
        missing = sorted(set(REQUIRED_TABLES) - found)
        if missing:
            raise ConfigError(
                f"PostgreSQL lacks the tables {', '.join(missing)}: run `warden migrate` "
                "(WARDEN_POSTGRES__DSN says which database)"
            )

    async def close(self) -> None:
        await self.connection.close()

"""The audit trail in PostgreSQL: one row per action, written once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from schemas.events import ActionResult

_COLUMNS = (
    "action_id, message_id, platform, community, channel, user_id, kind, status, executor, "
    "detail, reason, severity, p_toxic, model_version, policy_version, sent_at, requested_at, "
    "completed_at"
)
_INSERT = (
    f"INSERT INTO action_audit ({_COLUMNS}) VALUES "  # noqa: S608 - constant column list
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (action_id) DO NOTHING"
)


def _row(result: ActionResult) -> tuple[Any, ...]:
    return (
        result.action_id,
        result.message_id,
        result.platform.value,
        result.community,
        result.channel,
        result.user,
        result.kind.value,
        result.status.value,
        result.executor,
        result.detail,
        result.reason,
        result.severity.value,
        result.p_toxic,
        result.model_version,
        result.policy_version,
        result.sent_at,
        result.requested_at,
        result.completed_at,
    )


class AuditLog:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    async def recorded(self, action_ids: Sequence[str]) -> set[str]:
        """The ids among ``action_ids`` that already have an audit row."""
        if not action_ids:
            return set()
        async with self.connection.cursor() as cur:
            await cur.execute(
                "SELECT action_id FROM action_audit WHERE action_id = ANY(%s)", (list(action_ids),)
            )
            rows = await cur.fetchall()
        await self.connection.commit()
        return {row[0] for row in rows}

    async def record(self, results: Sequence[ActionResult]) -> None:
        """Write the rows in one transaction; rows already there are left as they are."""
        if not results:
            return
        async with self.connection.cursor() as cur:
            await cur.executemany(_INSERT, [_row(r) for r in results])
        await self.connection.commit()

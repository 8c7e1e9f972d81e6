"""The audit trail in PostgreSQL: one row per action, written once.

Who (the user, the executor), what (the action and its outcome), when, why (the decision's
reason: rule, threshold, strike count) and under which model and policy versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from schemas.events import ActionResult

_COLUMNS = (
    "action_id, message_id, platform, community, channel, user_id, kind, status, executor, "
    "detail, reason, severity, p_toxic, model_version, policy_version, sent_at, requested_at, "
    "completed_at, duration_s"
)
INSERT = (
    f"INSERT INTO action_audit ({_COLUMNS}) VALUES "  # noqa: S608 - constant column list
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (action_id) DO NOTHING"
)


def storable(text: str) -> str:
    """``text`` as PostgreSQL stores it: text columns refuse NUL and unpaired surrogates.

    Platform answers end up in ``detail``; a hostile or broken one must not stop the books.
    """
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def row(result: ActionResult) -> tuple[Any, ...]:
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
        storable(result.detail),
        storable(result.reason),
        result.severity.value,
        result.p_toxic,
        result.model_version,
        result.policy_version,
        result.sent_at,
        result.requested_at,
        result.completed_at,
        result.duration_s,
    )


async def insert(cur: psycopg.AsyncCursor[Any], results: Sequence[ActionResult]) -> None:
    """Write audit rows inside the caller's transaction; rows already there stay as they are."""
    if results:
        await cur.executemany(INSERT, [row(r) for r in results])


async def recorded(cur: psycopg.AsyncCursor[Any], action_ids: Sequence[str]) -> set[str]:
    """The ids among ``action_ids`` that already have an audit row."""
    if not action_ids:
        return set()
    await cur.execute(
        "SELECT action_id FROM action_audit WHERE action_id = ANY(%s)", (list(action_ids),)
    )
    return {r[0] for r in await cur.fetchall()}

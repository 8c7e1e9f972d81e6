"""Executors carry out an action on a platform and say what became of it."""

from __future__ import annotations

import logging
from typing import Protocol

from schemas.events import ActionRequest, ActionResult, ActionStatus, utcnow

logger = logging.getLogger(__name__)


class Executor(Protocol):
    name: str

    async def execute(self, request: ActionRequest) -> ActionResult: ...


def result_of(
    request: ActionRequest, executor: str, status: ActionStatus, detail: str = ""
) -> ActionResult:
    return ActionResult(
        action_id=request.action_id,
        message_id=request.message_id,
        platform=request.platform,
        community=request.community,
        channel=request.channel,
        user=request.user,
        kind=request.kind,
        status=status,
        executor=executor,
        detail=detail,
        reason=request.reason,
        severity=request.severity,
        p_toxic=request.p_toxic,
        model_version=request.model_version,
        policy_version=request.policy_version,
        sent_at=request.sent_at,
        requested_at=request.requested_at,
        completed_at=utcnow(),
    )


class LogExecutor:
    """Dry runs: writes the action to the log and touches no platform."""

    name = "log"

    async def execute(self, request: ActionRequest) -> ActionResult:
        logger.info(
            "%s %s:%s/%s message %s: %s",
            request.kind.value,
            request.platform.value,
            request.community,
            request.user,
            request.message_id,
            request.reason,
        )
        return result_of(request, self.name, ActionStatus.DONE, "logged (dry run)")

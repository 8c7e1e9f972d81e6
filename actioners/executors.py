"""Executors carry out an action on a platform and say what became of it.

An executor returns an ``Outcome`` (done, or skipped with why: an action the platform has no
equivalent for, a message already gone) or raises from the tree in ``core.errors``:
``RetriableActionError`` (``RateLimited`` when the platform said how long to wait) or
``PermanentActionError``. Retries, back-off and concurrency are the dispatcher's business.

``reconcile`` finishes an action that was in flight when an actioner died: it checks the
platform where it can (the message is gone, the DM was sent) and otherwise repeats only what
is idempotent on that platform. Every executor documents what it does per action kind.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.errors import RetriableActionError
from schemas.events import ActionKind, ActionRequest, ActionStatus, Platform

logger = logging.getLogger(__name__)


class RateLimited(RetriableActionError):
    """The platform answered 429: try again after ``retry_after`` seconds (not a failed try)."""

    def __init__(self, message: str, retry_after: float, *, scope: str = "route") -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)
        self.scope = scope


@dataclass(frozen=True)
class Outcome:
    status: ActionStatus
    detail: str
    # What to put back when this action is undone (a raid mode: the settings it found before
    # tightening them), kept in the ledger for its RAID_MODE_OFF (``ActionRequest.restore``).
    restore: dict[str, Any] | None = None

    @classmethod
    def done(cls, detail: str, restore: dict[str, Any] | None = None) -> Outcome:
        return cls(ActionStatus.DONE, detail, restore)

    @classmethod
    def skipped(cls, detail: str) -> Outcome:
        return cls(ActionStatus.SKIPPED, detail)


class Executor(Protocol):
    name: str
    # The most messages one bulk delete may take (0: no bulk delete on this platform).
    bulk_delete_max: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def executor_for(self, request: ActionRequest) -> str:
        """The name recorded for the executor that handles ``request``."""
        ...

    async def execute(self, request: ActionRequest) -> Outcome: ...

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome: ...

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        """Delete the messages of ``requests`` (one channel, at most ``bulk_delete_max``)."""
        ...


class LogExecutor:
    """Dry runs: writes the action to the log and touches no platform."""

    name = "log"
    bulk_delete_max = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def executor_for(self, request: ActionRequest) -> str:
        return self.name

    async def execute(self, request: ActionRequest) -> Outcome:
        if request.kind is ActionKind.HOLD:
            return held()
        logger.info(
            "%s %s:%s/%s message %s: %s",
            request.kind.value,
            request.platform.value,
            request.community,
            request.user,
            request.message_id,
            request.reason,
        )
        return Outcome.done("logged (dry run)")

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        return await self.execute(request)

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        raise NotImplementedError("the log executor has no bulk delete")


class Router:
    """Sends each request to the executor of its platform; the rest are skipped or go to
    ``fallback``. ``warden actioner`` always acts through one."""

    def __init__(
        self, executors: Mapping[Platform, Executor], fallback: Executor | None = None
    ) -> None:
        self.executors = dict(executors)
        self.fallback = fallback
        names = sorted({e.name for e in self.executors.values()})
        self.name = "+".join(names + ([fallback.name] if fallback else [])) or "none"
        self.bulk_delete_max = 0

    def _for(self, request: ActionRequest) -> Executor | None:
        return self.executors.get(request.platform, self.fallback)

    def bulk_limit(self, platform: Platform) -> int:
        executor = self.executors.get(platform, self.fallback)
        return executor.bulk_delete_max if executor else 0

    async def start(self) -> None:
        for executor in self._all():
            await executor.start()

    async def close(self) -> None:
        for executor in self._all():
            await executor.close()

    def _all(self) -> list[Executor]:
        unique: dict[int, Executor] = {id(e): e for e in self.executors.values()}
        if self.fallback is not None:
            unique[id(self.fallback)] = self.fallback
        return list(unique.values())

    def executor_for(self, request: ActionRequest) -> str:
        executor = self._for(request)
        return executor.executor_for(request) if executor else "none"

    def _missing(self, request: ActionRequest) -> Outcome:
        return Outcome.skipped(
            f"no executor for platform {request.platform.value} (executor: {self.name})"
        )

    async def execute(self, request: ActionRequest) -> Outcome:
        if request.kind is ActionKind.HOLD:
            return held()
        executor = self._for(request)
        return await executor.execute(request) if executor else self._missing(request)

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        if request.kind is ActionKind.HOLD:
            return held()
        executor = self._for(request)
        if executor is None:
            return self._missing(request)
        return await executor.reconcile(request, started_at)

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        executor = self._for(requests[0])
        if executor is None:
            return self._missing(requests[0])
        return await executor.bulk_delete(requests)


def unsupported(platform: str, kind: ActionKind) -> Outcome:
    return Outcome.skipped(f"{platform} has no {kind.value} action")


HELD = "held for review"

Handler = Callable[[ActionRequest], Awaitable[Outcome]]


async def run_handler(
    platform: str, request: ActionRequest, handlers: Mapping[ActionKind, Handler]
) -> Outcome:
    """An executor's ``execute``: a hold calls nothing, a kind without a handler is skipped
    (the platform has no such action), the rest go to their handler."""
    if request.kind is ActionKind.HOLD:
        return held()
    handler = handlers.get(request.kind)
    if handler is None:
        return unsupported(platform, request.kind)
    return await handler(request)


def held() -> Outcome:
    """A hold: the message waits for a moderator, and no platform is called (every executor,
    and the router before any of them, answer it this way)."""
    return Outcome.skipped(HELD)

"""Waiting for work that a shutdown may overtake."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def until_stopped(stop: asyncio.Event, work: Awaitable[T]) -> tuple[bool, T | None]:
    """``(True, result)`` when ``work`` finishes first; ``(False, None)`` when ``stop`` is set
    first, and then ``work`` is cancelled (a broker away at start-up must not keep a stopped
    service waiting). An exception of ``work`` is raised."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False, None
    return True, task.result()


def run_until_signalled(serve: Callable[[asyncio.Event], Awaitable[Any]]) -> Any:
    """Run ``serve(stop)`` in a new event loop; SIGINT and SIGTERM set ``stop``.

    How every side service (explainer, drift monitor, image scorer) is started from its
    command: the service finishes its batch, commits and closes its clients on a signal.
    """

    async def go() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await serve(stop)

    return asyncio.run(go())

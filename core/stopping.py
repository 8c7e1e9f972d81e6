"""Waiting for work that a shutdown may overtake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

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

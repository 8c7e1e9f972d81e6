"""What the local platform servers share: an aiohttp app on a free loopback port that records
every request and every effect, and fixed-window rate limits the way both platforms count."""

from __future__ import annotations

import inspect
import json
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "EffectHook",
    "FixedWindows",
    "Limit",
    "LocalServer",
    "Recorded",
    "Storm",
    "json_response",
    "post_signed",
]

EffectHook = Callable[[str, str], Awaitable[None] | None]


@dataclass(frozen=True)
class Recorded:
    """One request the server received and what it answered."""

    method: str
    path: str
    bucket: str
    status: int
    body: Any
    at: float


@dataclass
class Window:
    started: float
    count: int = 0


@dataclass(frozen=True)
class Limit:
    """``limit`` requests per ``per_s`` seconds, per value of the route's major parameter."""

    limit: int
    per_s: float


class FixedWindows:
    """Fixed windows per key, the way both platforms count."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.windows: dict[str, Window] = {}

    def take(self, key: str, limit: Limit) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the window resets)."""
        now = self.clock()
        window = self.windows.get(key)
        if window is None or now - window.started >= limit.per_s:
            window = self.windows[key] = Window(now)
        reset_after = max(0.001, window.started + limit.per_s - now)
        if window.count >= limit.limit:
            return False, 0, reset_after
        window.count += 1
        return True, limit.limit - window.count, reset_after


@dataclass
class Storm:
    remaining: int
    retry_after: float
    is_global: bool


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON reply with the exact content type the platforms' clients expect."""
    # Exactly "application/json": discord.py compares the header verbatim.
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=all_headers)


class LocalServer:
    """An aiohttp app on a free loopback port that records requests and effects."""

    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # What the server was asked and what it changed, for a test or a bench to count.
        self.requests: list[Recorded] = []
        self.effects: list[tuple[str, str]] = []
        # Called on every effect (a test may stop a process there, mid-action).
        self.on_effect: EffectHook | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        sock = socket.socket()
        sock.bind((host, port))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self.base_url

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def effect_counts(self) -> Counter[tuple[str, str]]:
        """How many times each (kind, target) effect happened: more than once is a repeat."""
        return Counter(self.effects)

    @property
    def rate_limited(self) -> int:
        """How many requests were answered 429."""
        return sum(1 for r in self.requests if r.status == 429)

    async def _effect(self, kind: str, target: str) -> None:
        self.effects.append((kind, target))
        if self.on_effect is not None:
            outcome = self.on_effect(kind, target)
            if inspect.isawaitable(outcome):
                await outcome

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def post_signed(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
    """POST ``body`` as a platform posts to our endpoints (its signature in ``headers``);
    returns the status and the JSON (or text) answered."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=dict(headers)) as reply,
    ):
        text = await reply.text()
        try:
            return reply.status, json.loads(text)
        except ValueError:
            return reply.status, text

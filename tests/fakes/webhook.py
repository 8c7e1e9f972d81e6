"""A webhook receiver that checks ChatWarden's signature and acts once per Idempotency-Key."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from actioners.platforms.webhook import IDEMPOTENCY_HEADER
from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook_signature

SECRET = "webhook-test-secret"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    valid_signature: bool


@dataclass
class FakeWebhook:
    secret: str = SECRET
    # Statuses to answer, in order, before answering 200 (e.g. [500, 429]).
    script: list[int] = field(default_factory=list)
    retry_after: str = "0.2"
    deliveries: list[Delivery] = field(default_factory=list)
    acted: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/moderation"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hooks/moderation", self._handle)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        valid = verify_webhook_signature(
            self.secret.encode(),
            headers.get(TIMESTAMP_HEADER, ""),
            body,
            headers.get(SIGNATURE_HEADER, ""),
        )
        self.deliveries.append(Delivery(headers, body, valid))
        if not valid:
            return web.Response(status=401, text="bad signature")
        if self.script:
            status = self.script.pop(0)
            extra = {"Retry-After": self.retry_after} if status == 429 else {}
            return web.Response(status=status, text="scripted", headers=extra)
        key = headers.get(IDEMPOTENCY_HEADER, "")
        if key in self.acted:
            return web.Response(status=409, text="already done")
        self.acted[key] = body
        return web.Response(status=200, text="ok")

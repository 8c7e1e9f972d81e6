"""A local Slack: the Web API methods an ingest app calls, and the Socket Mode WebSocket.

``POST /api/auth.test`` and ``POST /api/apps.connections.open`` answer as Slack does (the latter
only for an ``xapp-`` token); the WebSocket it hands out says ``hello`` and then carries
``events_api`` envelopes that a test pushes with :meth:`SlackServer.push_event`, recording each
acknowledgement. ``event_callback()`` and ``signed_headers()`` build Events API requests as Slack
sends them over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from core.signing import SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER, slack_signature

TEAM_ID = "T0WARDEN"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"


def message_event(
    text: str,
    *,
    channel: str = "C0GENERAL",
    user: str = "U0ALICE",
    ts: str | None = None,
    thread_ts: str | None = None,
    subtype: str | None = None,
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``message`` event as Slack sends it."""
    ts = ts or f"{time.time():.6f}"
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
        "team": TEAM_ID,
        "client_msg_id": str(uuid.uuid4()),
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    if subtype:
        event["subtype"] = subtype
    if files:
        event["files"] = files
    return event


def edit_event(
    channel: str, ts: str, new_text: str, user: str = "U0ALICE", old_text: str = "old"
) -> dict[str, Any]:
    """A ``message_changed`` event (an edit)."""
    edited_ts = f"{time.time():.6f}"
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": channel,
        "hidden": True,
        "ts": edited_ts,
        "event_ts": edited_ts,
        "channel_type": "channel",
        "message": {
            "type": "message",
            "user": user,
            "text": new_text,
            "ts": ts,
            "team": TEAM_ID,
            "edited": {"user": user, "ts": edited_ts},
        },
        "previous_message": {"type": "message", "user": user, "text": old_text, "ts": ts},
    }


def event_callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """The Events API envelope around ``event``."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0WARDEN",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signing: v0=HMAC-SHA256(secret, "v0:<ts>:<body>")."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        SLACK_TIMESTAMP_HEADER: ts,
        SLACK_SIGNATURE_HEADER: slack_signature(secret, ts, body),
    }


class SlackServer:
    """Web API (``/api/<method>``) and Socket Mode (``/link``) on one local port."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (method, token)
        self.acks: dict[str, dict[str, Any]] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base = ""

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    async def start(self, host: str = "127.0.0.1") -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/link", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://{host}:{port}"

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append((method, token))
        if method == "auth.test":
            return web.json_response(
                {
                    "ok": True,
                    "url": "https://warden.slack.com/",
                    "team": "Warden",
                    "user": "warden",
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "is_enterprise_install": False,
                }
            )
        if method == "apps.connections.open":
            if not token.startswith("xapp-"):
                return web.json_response({"ok": False, "error": "not_allowed_token_type"})
            ticket = uuid.uuid4()
            ws_url = self.base.replace("http://", "ws://") + f"/link?ticket={ticket}"
            return web.json_response({"ok": True, "url": ws_url})
        return web.json_response({"ok": False, "error": "unknown_method"})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "local", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0WARDEN"},
            }
        )
        async with self._changed:
            self.sockets.add(ws)
            self._changed.notify_all()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    data = json.loads(frame.data)
                    if "envelope_id" in data:
                        async with self._changed:
                            self.acks[data["envelope_id"]] = data
                            self._changed.notify_all()
        finally:
            async with self._changed:
                self.sockets.discard(ws)
                self._changed.notify_all()
        return ws

    async def wait_connected(self, within_s: float = 60) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self.sockets))

        await asyncio.wait_for(until(), within_s)

    async def push_event(self, body: dict[str, Any], retry_attempt: int = 0) -> str:
        """Send an ``events_api`` envelope on every open socket; returns its envelope id."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "payload": body,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        for ws in list(self.sockets):
            await ws.send_json(envelope)
        return envelope_id

    async def wait_acked(self, envelope_ids: list[str], within_s: float = 30) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: all(e in self.acks for e in envelope_ids))

        await asyncio.wait_for(until(), within_s)

"""A local server speaking the Slack Web API methods that the actioner uses.

The Slack executor talks to it through ``WARDEN_PLATFORMS__SLACK__API_BASE_URL``. It checks the
bot (and optional admin) token, keeps Slack's per-method limits (429 with ``Retry-After``),
answers Slack's ``ok: false`` errors, and records every request and effect.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from devkit.platforms.server import (
    FixedWindows,
    Limit,
    LocalServer,
    Recorded,
    Storm,
    json_response,
    post_signed,
)

# Slack methods we speak, their tier and calls per minute (api.slack.com/docs/rate-limits).
SLACK_LIMITS: dict[str, int] = {
    "auth.test": 100,
    "chat.delete": 50,
    "chat.postEphemeral": 100,
    "conversations.kick": 50,
    # The bots: the moderator check and the mod-log.
    "users.info": 100,
    "chat.postMessage": 100,
}


class SlackServer(LocalServer):
    """Slack's Web API for the methods we use; ``window_s`` shortens Slack's minute in tests."""

    def __init__(
        self,
        bot_token: str = "xoxb-fake",  # noqa: S107 - a local server's test token
        *,
        admin_token: str | None = None,
        team: str = "T0001",
        limits: Mapping[str, int] | None = None,
        window_s: float = 60.0,
        latency_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.tokens = {bot_token: "bot"} | ({admin_token: "admin"} if admin_token else {})
        self.team = team
        self.limits = {**SLACK_LIMITS, **(limits or {})}
        self.window_s = window_s
        self.latency_s = latency_s
        self.clock = clock
        self._windows = FixedWindows(clock)
        self._storms: list[Storm] = []
        self.deleted: set[tuple[str, str]] = set()
        self.unknown_messages: set[str] = set()
        self.bot_only_delete = False
        self.kicked: set[tuple[str, str]] = set()
        self.absent: set[tuple[str, str]] = set()
        self.ephemeral: list[dict[str, str]] = []
        # The blocks (buttons) of each ephemeral message, in the same order.
        self.ephemeral_blocks: list[list[dict[str, Any]]] = []
        self.errors: dict[str, str] = {}
        # users.info: workspace admins (is_admin) and owners (is_owner); everyone else a member.
        self.admins: set[str] = set()
        self.owners: set[str] = set()
        self.posted: list[dict[str, Any]] = []
        self.app.router.add_post("/api/{method}", self._handle)
        # slack_sdk reads some methods (users.info) with GET and query parameters.
        self.app.router.add_get("/api/{method}", self._handle)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def storm(self, requests: int, retry_after: float) -> None:
        """The next ``requests`` calls (auth.test aside) answer 429 + ``Retry-After``."""
        self._storms.append(Storm(requests, retry_after, False))

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            raw = await request.read()
            args.update(json.loads(raw) if raw else {})
        else:
            args.update(dict(await request.post()))
        response = await self._respond(request, method, args)
        self.requests.append(
            Recorded("POST", request.path, method, response.status, args, self.clock())
        )
        return response

    async def _respond(
        self, request: web.Request, method: str, args: dict[str, Any]
    ) -> web.Response:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if method not in self.limits:
            return json_response(200, {"ok": False, "error": "unknown_method"})
        auth = request.headers.get("Authorization", "")
        role = self.tokens.get(auth.removeprefix("Bearer "))
        if role is None:
            return json_response(200, {"ok": False, "error": "invalid_auth"})
        if method != "auth.test" and self._storms:
            storm = self._storms[0]
            storm.remaining -= 1
            if storm.remaining <= 0:
                self._storms.pop(0)
            return self._too_many(storm.retry_after)
        allowed, _, reset_after = self._windows.take(
            method, Limit(self.limits[method], self.window_s)
        )
        if not allowed:
            return self._too_many(reset_after)
        if method in self.errors:
            return json_response(200, {"ok": False, "error": self.errors[method]})
        return json_response(200, await self._act(method, role, args))

    def _too_many(self, retry_after: float) -> web.Response:
        return json_response(
            429, {"ok": False, "error": "ratelimited"}, {"Retry-After": f"{retry_after:.3g}"}
        )

    async def _act(self, method: str, role: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        user = str(args.get("user", ""))
        if method == "auth.test":
            return {"ok": True, "team_id": self.team, "user_id": "UBOT", "bot_id": "BBOT"}
        if method == "chat.delete":
            ts = str(args.get("ts", ""))
            if (channel, ts) in self.deleted or ts in self.unknown_messages:
                return {"ok": False, "error": "message_not_found"}
            if self.bot_only_delete and role != "admin":
                return {"ok": False, "error": "cant_delete_message"}
            self.deleted.add((channel, ts))
            await self._effect("delete", f"{channel}:{ts}")
            return {"ok": True, "channel": channel, "ts": ts}
        if method == "chat.postEphemeral":
            if (channel, user) in self.absent or (channel, user) in self.kicked:
                return {"ok": False, "error": "user_not_in_channel"}
            self.ephemeral.append({"channel": channel, "user": user, "text": str(args["text"])})
            self.ephemeral_blocks.append(args.get("blocks") or [])
            await self._effect("ephemeral", f"{channel}:{user}")
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        if method == "users.info":
            if not user.startswith(("U", "W")):
                return {"ok": False, "error": "user_not_found"}
            profile = {"id": user, "team_id": self.team, "name": f"user-{user.lower()}"}
            return {
                "ok": True,
                "user": {
                    **profile,
                    "is_admin": user in self.admins,
                    "is_owner": user in self.owners,
                },
            }
        if method == "chat.postMessage":
            post = {
                "channel": channel,
                "text": str(args.get("text", "")),
                "ts": f"{time.time():.6f}",
            }
            self.posted.append(post)
            await self._effect("post", channel)
            return {"ok": True, "channel": channel, "ts": post["ts"]}
        if method == "conversations.kick":
            if (channel, user) in self.kicked or (channel, user) in self.absent:
                return {"ok": False, "error": "not_in_channel"}
            self.kicked.add((channel, user))
            await self._effect("kick", f"{channel}:{user}")
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}


def sign_request(signing_secret: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """The headers Slack sends with a slash command or an interaction: ``v0=`` HMAC-SHA256 of
    ``v0:<timestamp>:<body>`` with the app's signing secret."""
    stamp = timestamp or str(int(time.time()))
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


def slash_command(
    text: str, *, user: str = "U1001", team: str = "T0001", channel: str = "C0001"
) -> dict[str, str]:
    """A ``/warden`` slash command's form fields as Slack posts them."""
    return {
        "token": "deprecated-verification-token",
        "team_id": team,
        "team_domain": "acme",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": f"user-{user.lower()}",
        "command": "/warden",
        "text": text,
        "api_app_id": "A0001",
        "response_url": "https://hooks.slack.com/commands/T0001/1/x",
        "trigger_id": "1.2.3",
    }


def block_action(
    action_id: str, value: str, *, user: str = "U1001", team: str = "T0001", channel: str = "C0001"
) -> dict[str, str]:
    """A button click (``block_actions``) on an ephemeral message, as Slack posts it: one form
    field, ``payload``, holding the JSON."""
    payload = {
        "type": "block_actions",
        "team": {"id": team, "domain": "acme"},
        "user": {"id": user, "username": f"user-{user.lower()}", "team_id": team},
        "api_app_id": "A0001",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "channel_id": channel, "is_ephemeral": True},
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "general"},
        "response_url": "https://hooks.slack.com/actions/T0001/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "text": {"type": "plain_text", "text": "Dispute"},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return {"payload": json.dumps(payload)}


async def send_signed(
    url: str, signing_secret: str, fields: dict[str, str], *, timestamp: str | None = None
) -> tuple[int, Any]:
    """POST form ``fields`` signed as Slack signs them; returns the status and the JSON (or
    text) answered."""
    body = urlencode(fields).encode()
    headers = sign_request(signing_secret, body, timestamp)
    return await post_signed(url, body, headers)

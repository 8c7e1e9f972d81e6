"""Local HTTP servers that speak the parts of Discord's REST API and Slack's Web API we use.

For tests and ``warden bench``: the real executors talk to them through their configurable base
URL (``WARDEN_PLATFORMS__DISCORD__API_BASE_URL``, ``..._SLACK__API_BASE_URL``). They keep state
(deleted messages, timeouts, kicks, bans, DMs), check the auth header, keep rate limits the way
the platforms announce them (Discord: per-route buckets with ``X-RateLimit-*`` headers, 429
with ``retry_after``, the global limit; Slack: per-method limits, 429 with ``Retry-After``),
answer the permanent errors we handle (Unknown Message, Missing Permissions, ...), and record
every request and every effect, so a test can count what the platform actually did.

Production code never needs them; they live here so that the benchmark does not import tests.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

EffectHook = Callable[[str, str], Awaitable[None] | None]


@dataclass(frozen=True)
class Recorded:
    """One request the fake received and what it answered."""

    method: str
    path: str
    bucket: str
    status: int
    body: Any
    at: float


@dataclass
class _Window:
    started: float
    count: int = 0


@dataclass(frozen=True)
class Limit:
    """``limit`` requests per ``per_s`` seconds, per value of the route's major parameter."""

    limit: int
    per_s: float


class _Windows:
    """Fixed windows per key, the way both platforms count."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.windows: dict[str, _Window] = {}

    def take(self, key: str, limit: Limit) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the window resets)."""
        now = self.clock()
        window = self.windows.get(key)
        if window is None or now - window.started >= limit.per_s:
            window = self.windows[key] = _Window(now)
        reset_after = max(0.001, window.started + limit.per_s - now)
        if window.count >= limit.limit:
            return False, 0, reset_after
        window.count += 1
        return True, limit.limit - window.count, reset_after


@dataclass
class _Storm:
    remaining: int
    retry_after: float
    is_global: bool


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py compares the header verbatim.
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=all_headers)


class _Server:
    """An aiohttp app on a free loopback port."""

    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self.port = 0

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

    async def __aenter__(self) -> _Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# Discord routes: (method, path under the API base) -> (bucket name, major parameter).
DISCORD_ROUTES: dict[tuple[str, str], tuple[str, str | None]] = {
    ("GET", "/users/@me"): ("me", None),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"): ("message-delete", "channel_id"),
    ("POST", "/channels/{channel_id}/messages/bulk-delete"): ("bulk-delete", "channel_id"),
    ("POST", "/channels/{channel_id}/messages"): ("message-create", "channel_id"),
    ("GET", "/channels/{channel_id}/messages"): ("message-list", "channel_id"),
    ("PATCH", "/guilds/{guild_id}/members/{user_id}"): ("member-modify", "guild_id"),
    ("DELETE", "/guilds/{guild_id}/members/{user_id}"): ("member-kick", "guild_id"),
    ("GET", "/guilds/{guild_id}/members/{user_id}"): ("member-get", "guild_id"),
    ("PUT", "/guilds/{guild_id}/bans/{user_id}"): ("ban", "guild_id"),
    ("GET", "/guilds/{guild_id}/bans/{user_id}"): ("ban-get", "guild_id"),
    ("POST", "/users/@me/channels"): ("dm-create", None),
}

# Close to what Discord announces for bots (it may change them at any time).
DISCORD_LIMITS: dict[str, Limit] = {
    "me": Limit(5, 1.0),
    "message-delete": Limit(5, 1.0),
    "bulk-delete": Limit(1, 1.0),
    "message-create": Limit(5, 5.0),
    "message-list": Limit(5, 1.0),
    "member-modify": Limit(10, 10.0),
    "member-kick": Limit(5, 1.0),
    "member-get": Limit(5, 1.0),
    "ban": Limit(5, 1.0),
    "ban-get": Limit(5, 1.0),
    "dm-create": Limit(5, 1.0),
}

UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
UNKNOWN_BAN = 10026
MISSING_PERMISSIONS = 50013
CANNOT_DM = 50007
JOINED_LONG_AGO = "2020-01-01T00:00:00+00:00"


class FakeDiscord(_Server):
    """Discord's REST API (v10) for a bot: messages, members, bans, DMs.

    Every message id exists until deleted (or listed in ``unknown_messages``); every member
    exists until kicked or banned (or listed in ``absent_members``). ``forbidden_guilds`` and
    ``forbidden_channels`` answer 403 Missing Permissions.
    """

    def __init__(
        self,
        token: str = "fake-discord-token",  # noqa: S107 - a fake server's fake token
        *,
        limits: Mapping[str, Limit] | None = None,
        global_limit: Limit | None = Limit(50, 1.0),
        latency_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.token = token
        self.limits = {**DISCORD_LIMITS, **(limits or {})}
        self.global_limit = global_limit
        self.latency_s = latency_s
        self.clock = clock
        self._windows = _Windows(clock)
        self._storms: list[_Storm] = []
        self._failures: list[int] = []
        self.on_effect: EffectHook | None = None

        self.requests: list[Recorded] = []
        self.effects: list[tuple[str, str]] = []
        self.deleted: set[str] = set()
        self.unknown_messages: set[str] = set()
        self.timeouts: dict[tuple[str, str], str] = {}
        self.kicked: set[tuple[str, str]] = set()
        self.bans: dict[tuple[str, str], str] = {}
        self.absent_members: set[tuple[str, str]] = set()
        self.joined_at: dict[tuple[str, str], str] = {}
        self.forbidden_guilds: set[str] = set()
        self.forbidden_channels: set[str] = set()
        self.closed_dms: set[str] = set()
        self.dms: dict[str, list[dict[str, Any]]] = {}
        self.dm_channels: dict[str, str] = {}
        self._nonces: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids = 10_000

        for (method, path), _ in DISCORD_ROUTES.items():
            self.app.router.add_route(method, "/api/v10" + path, self._handler(method, path))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    # -- what tests arrange ------------------------------------------------------------------

    def storm(self, requests: int, retry_after: float, *, is_global: bool = False) -> None:
        """The next ``requests`` requests (login aside) answer 429 after ``retry_after`` s."""
        self._storms.append(_Storm(requests, retry_after, is_global))

    def fail_next(self, requests: int, status: int = 503) -> None:
        """The next ``requests`` requests (login aside) answer ``status`` (a server error)."""
        self._failures.extend([status] * requests)

    # -- what tests read ---------------------------------------------------------------------

    def effect_counts(self) -> Counter[tuple[str, str]]:
        return Counter(self.effects)

    def count(self, bucket: str, status: int | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.bucket == bucket and (status is None or r.status == status)
        )

    @property
    def rate_limited(self) -> int:
        return sum(1 for r in self.requests if r.status == 429)

    # -- the server --------------------------------------------------------------------------

    def _handler(self, method: str, path: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        bucket, major = DISCORD_ROUTES[(method, path)]

        async def handle(request: web.Request) -> web.Response:
            body: Any = None
            if request.can_read_body:
                raw = await request.read()
                body = json.loads(raw) if raw else None
            response = await self._respond(request, bucket, major, body)
            self.requests.append(
                Recorded(method, request.path, bucket, response.status, body, self.clock())
            )
            return response

        return handle

    async def _respond(
        self, request: web.Request, bucket: str, major: str | None, body: Any
    ) -> web.Response:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return _json(401, {"message": "401: Unauthorized", "code": 0})
        params = dict(request.match_info)
        if bucket != "me":
            if self._storms:
                storm = self._storms[0]
                storm.remaining -= 1
                if storm.remaining <= 0:
                    self._storms.pop(0)
                return self._too_many(bucket, storm.retry_after, is_global=storm.is_global)
            if self.global_limit is not None:
                allowed, _, reset_after = self._windows.take("global", self.global_limit)
                if not allowed:
                    return self._too_many(bucket, reset_after, is_global=True)
            if self._failures:
                status = self._failures.pop(0)
                return _json(status, {"message": "Service unavailable", "code": 0})
        major_value = params.get(major, "") if major else ""
        allowed, remaining, reset_after = self._windows.take(
            f"{bucket}:{major_value}", self.limits[bucket]
        )
        if not allowed:
            return self._too_many(bucket, reset_after, is_global=False)
        status, payload = await self._act(request.method, bucket, params, body, request)
        headers = self._limit_headers(bucket, remaining, reset_after)
        if status == 204:
            return web.Response(status=204, headers=headers)
        return _json(status, payload, headers)

    def _limit_headers(self, bucket: str, remaining: int, reset_after: float) -> dict[str, str]:
        limit = self.limits[bucket]
        return {
            "X-RateLimit-Limit": str(limit.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"fake-{bucket}",
        }

    def _too_many(self, bucket: str, retry_after: float, *, is_global: bool) -> web.Response:
        headers = {
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Scope": "global" if is_global else "user",
            # Discord's edge adds it; discord.py takes a 429 without it for a Cloudflare ban.
            "Via": "1.1 google",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            limit = self.limits[bucket]
            headers.update(
                {
                    "X-RateLimit-Limit": str(limit.limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": f"fake-{bucket}",
                }
            )
        payload = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": is_global,
        }
        return _json(429, payload, headers)

    async def _effect(self, kind: str, target: str) -> None:
        self.effects.append((kind, target))
        if self.on_effect is not None:
            outcome = self.on_effect(kind, target)
            if inspect.isawaitable(outcome):
                await outcome

    def _next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    async def _act(
        self, method: str, bucket: str, params: dict[str, str], body: Any, request: web.Request
    ) -> tuple[int, Any]:
        guild = params.get("guild_id", "")
        user = params.get("user_id", "")
        channel = params.get("channel_id", "")
        forbidden = (MISSING_PERMISSIONS, "Missing Permissions")
        if guild in self.forbidden_guilds or channel in self.forbidden_channels:
            return 403, {"message": forbidden[1], "code": forbidden[0]}
        member = (guild, user)
        if bucket == "me":
            return 200, {"id": "1000", "username": "chatwarden", "bot": True, "discriminator": "0"}
        if bucket == "message-delete":
            message = params["message_id"]
            if message in self.deleted or message in self.unknown_messages:
                return 404, {"message": "Unknown Message", "code": UNKNOWN_MESSAGE}
            self.deleted.add(message)
            await self._effect("delete", message)
            return 204, None
        if bucket == "bulk-delete":
            ids = list((body or {}).get("messages", []))
            if not 2 <= len(ids) <= 100 or len(set(ids)) != len(ids):
                return 400, {"message": "Invalid Form Body", "code": 50035}
            for message in ids:
                # Discord skips ids it does not know.
                if message not in self.deleted and message not in self.unknown_messages:
                    self.deleted.add(message)
                    await self._effect("delete", message)
            return 204, None
        if bucket in ("member-modify", "member-kick", "member-get"):
            if member in self.absent_members or member in self.kicked or member in self.bans:
                return 404, {"message": "Unknown Member", "code": UNKNOWN_MEMBER}
            if bucket == "member-get":
                joined = self.joined_at.get(member, JOINED_LONG_AGO)
                return 200, {"user": {"id": user}, "joined_at": joined, "roles": []}
            if bucket == "member-kick":
                self.kicked.add(member)
                await self._effect("kick", f"{guild}:{user}")
                return 204, None
            until = str((body or {}).get("communication_disabled_until"))
            if self.timeouts.get(member) != until:
                self.timeouts[member] = until
                await self._effect("timeout", f"{guild}:{user}:{until}")
            return 200, {"user": {"id": user}, "communication_disabled_until": until}
        if bucket == "ban":
            if member not in self.bans:
                self.bans[member] = request.headers.get("X-Audit-Log-Reason", "")
                self.kicked.discard(member)
                await self._effect("ban", f"{guild}:{user}")
            return 204, None
        if bucket == "ban-get":
            if member not in self.bans:
                return 404, {"message": "Unknown Ban", "code": UNKNOWN_BAN}
            return 200, {"user": {"id": user}, "reason": self.bans[member]}
        if bucket == "dm-create":
            recipient = str((body or {}).get("recipient_id", ""))
            if not recipient.isdigit():
                return 404, {"message": "Unknown User", "code": UNKNOWN_USER}
            dm = f"{recipient}77"
            self.dm_channels[dm] = recipient
            return 200, {"id": dm, "type": 1, "recipients": [{"id": recipient}]}
        if bucket == "message-create":
            recipient = self.dm_channels.get(channel, "")
            if recipient in self.closed_dms:
                return 403, {"message": "Cannot send messages to this user", "code": CANNOT_DM}
            nonce = (body or {}).get("nonce")
            if nonce and (body or {}).get("enforce_nonce") and (channel, nonce) in self._nonces:
                return 200, self._nonces[(channel, nonce)]
            sent: dict[str, Any] = {
                "id": self._next_id(),
                "channel_id": channel,
                "content": (body or {}).get("content", ""),
                "timestamp": datetime.now(UTC).isoformat(),
            }
            if nonce:
                self._nonces[(channel, nonce)] = sent
            self.dms.setdefault(channel, []).append(sent)
            await self._effect("dm", f"{recipient}:{nonce}")
            return 200, sent
        if bucket == "message-list":
            limit = int(request.query.get("limit", "50"))
            return 200, list(reversed(self.dms.get(channel, [])))[:limit]
        return 404, {"message": "404: Not Found", "code": 0}


# Slack methods we speak, their tier and calls per minute (api.slack.com/docs/rate-limits).
SLACK_LIMITS: dict[str, int] = {
    "auth.test": 100,
    "chat.delete": 50,
    "chat.postEphemeral": 100,
    "conversations.kick": 50,
}


class FakeSlack(_Server):
    """Slack's Web API for the methods we use; ``window_s`` shortens Slack's minute in tests."""

    def __init__(
        self,
        bot_token: str = "xoxb-fake",  # noqa: S107 - a fake server's fake token
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
        self._windows = _Windows(clock)
        self._storms: list[_Storm] = []
        self.on_effect: EffectHook | None = None

        self.requests: list[Recorded] = []
        self.effects: list[tuple[str, str]] = []
        self.deleted: set[tuple[str, str]] = set()
        self.unknown_messages: set[str] = set()
        self.bot_only_delete = False
        self.kicked: set[tuple[str, str]] = set()
        self.absent: set[tuple[str, str]] = set()
        self.ephemeral: list[dict[str, str]] = []
        self.errors: dict[str, str] = {}
        self.app.router.add_post("/api/{method}", self._handle)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def storm(self, requests: int, retry_after: float) -> None:
        """The next ``requests`` calls (auth.test aside) answer 429 + ``Retry-After``."""
        self._storms.append(_Storm(requests, retry_after, False))

    def effect_counts(self) -> Counter[tuple[str, str]]:
        return Counter(self.effects)

    @property
    def rate_limited(self) -> int:
        return sum(1 for r in self.requests if r.status == 429)

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
            return _json(200, {"ok": False, "error": "unknown_method"})
        auth = request.headers.get("Authorization", "")
        role = self.tokens.get(auth.removeprefix("Bearer "))
        if role is None:
            return _json(200, {"ok": False, "error": "invalid_auth"})
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
            return _json(200, {"ok": False, "error": self.errors[method]})
        return _json(200, await self._act(method, role, args))

    def _too_many(self, retry_after: float) -> web.Response:
        return _json(
            429, {"ok": False, "error": "ratelimited"}, {"Retry-After": f"{retry_after:.3g}"}
        )

    async def _effect(self, kind: str, target: str) -> None:
        self.effects.append((kind, target))
        if self.on_effect is not None:
            outcome = self.on_effect(kind, target)
            if inspect.isawaitable(outcome):
                await outcome

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
            await self._effect("ephemeral", f"{channel}:{user}")
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        if method == "conversations.kick":
            if (channel, user) in self.kicked or (channel, user) in self.absent:
                return {"ok": False, "error": "not_in_channel"}
            self.kicked.add((channel, user))
            await self._effect("kick", f"{channel}:{user}")
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

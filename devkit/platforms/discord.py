"""A local server speaking the parts of Discord's REST API (v10) that the actioner uses.

The Discord executor talks to it through its configurable base URL
(``WARDEN_PLATFORMS__DISCORD__API_BASE_URL``). It keeps state (deleted messages, timeouts and
their removal, kicks, bans and unbans, DMs, channel slowmode, guild verification level), checks
the bot token, keeps Discord's
rate limits the way Discord announces them (per-route buckets per channel or guild with
``X-RateLimit-*`` headers, 429 with ``retry_after``, the global limit), answers the permanent
errors the executor handles (Unknown Message, Missing Permissions, ...), and records every
request and effect, so that a test or ``warden bench`` can count what the platform actually did.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

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
    ("DELETE", "/guilds/{guild_id}/bans/{user_id}"): ("unban", "guild_id"),
    ("POST", "/users/@me/channels"): ("dm-create", None),
    # `warden bots sync-discord`: the application's commands, global or one guild's.
    ("PUT", "/applications/{application_id}/commands"): ("commands-sync", None),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"): ("commands-sync", None),
    ("GET", "/channels/{channel_id}"): ("channel-get", "channel_id"),
    ("PATCH", "/channels/{channel_id}"): ("channel-modify", "channel_id"),
    ("GET", "/guilds/{guild_id}"): ("guild-get", "guild_id"),
    ("PATCH", "/guilds/{guild_id}"): ("guild-modify", "guild_id"),
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
    "unban": Limit(5, 1.0),
    "dm-create": Limit(5, 1.0),
    "commands-sync": Limit(10, 10.0),
    "channel-get": Limit(5, 1.0),
    "channel-modify": Limit(2, 10.0),
    "guild-get": Limit(5, 1.0),
    "guild-modify": Limit(5, 5.0),
}

# Discord's global limit for a bot: 50 requests per second over all routes.
DISCORD_GLOBAL_LIMIT = Limit(50, 1.0)

UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
UNKNOWN_BAN = 10026
MISSING_PERMISSIONS = 50013
CANNOT_DM = 50007
JOINED_LONG_AGO = "2020-01-01T00:00:00+00:00"


class DiscordServer(LocalServer):
    """Discord's REST API (v10) for a bot: messages, members, bans, DMs.

    Every message id exists until deleted (or listed in ``unknown_messages``); every member
    exists until kicked or banned (or listed in ``absent_members``). ``forbidden_guilds`` and
    ``forbidden_channels`` answer 403 Missing Permissions.
    """

    def __init__(
        self,
        token: str = "fake-discord-token",  # noqa: S107 - a local server's test token
        *,
        limits: Mapping[str, Limit] | None = None,
        global_limit: Limit | None = DISCORD_GLOBAL_LIMIT,
        latency_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.token = token
        self.limits = {**DISCORD_LIMITS, **(limits or {})}
        self.global_limit = global_limit
        self.latency_s = latency_s
        self.clock = clock
        self._windows = FixedWindows(clock)
        self._storms: list[Storm] = []
        self._failures: list[int] = []
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
        # Raid mode: a channel's slowmode (rate_limit_per_user) and a guild's verification level.
        self.slowmode: dict[str, int] = {}
        self.verification: dict[str, int] = {}
        self._ids = 10_000
        # Registered application commands: (application, guild or "") -> the commands stored.
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}

        for (method, path), _ in DISCORD_ROUTES.items():
            self.app.router.add_route(method, "/api/v10" + path, self._handler(method, path))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    # -- what tests arrange ------------------------------------------------------------------

    def storm(self, requests: int, retry_after: float, *, is_global: bool = False) -> None:
        """The next ``requests`` requests (login aside) answer 429 after ``retry_after`` s."""
        self._storms.append(Storm(requests, retry_after, is_global))

    def fail_next(self, requests: int, status: int = 503) -> None:
        """The next ``requests`` requests (login aside) answer ``status`` (a server error)."""
        self._failures.extend([status] * requests)

    # -- what tests read ---------------------------------------------------------------------

    def count(self, bucket: str, status: int | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.bucket == bucket and (status is None or r.status == status)
        )

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
            return json_response(401, {"message": "401: Unauthorized", "code": 0})
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
                return json_response(status, {"message": "Service unavailable", "code": 0})
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
        return json_response(status, payload, headers)

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
        return json_response(429, payload, headers)

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
            raw_until = (body or {}).get("communication_disabled_until")
            if raw_until is None:
                # null removes the timeout (Discord answers 200 with the member either way).
                if self.timeouts.pop(member, None) is not None:
                    await self._effect("untimeout", f"{guild}:{user}")
                return 200, {"user": {"id": user}, "communication_disabled_until": None}
            until = str(raw_until)
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
        if bucket == "unban":
            if member not in self.bans:
                return 404, {"message": "Unknown Ban", "code": UNKNOWN_BAN}
            del self.bans[member]
            await self._effect("unban", f"{guild}:{user}")
            return 204, None
        if bucket == "ban-get":
            if member not in self.bans:
                return 404, {"message": "Unknown Ban", "code": UNKNOWN_BAN}
            return 200, {"user": {"id": user}, "reason": self.bans[member]}
        if bucket == "commands-sync":
            return self._sync_commands(params, body)
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
                "components": (body or {}).get("components") or [],
                "timestamp": datetime.now(UTC).isoformat(),
            }
            if nonce:
                self._nonces[(channel, nonce)] = sent
            self.dms.setdefault(channel, []).append(sent)
            if channel not in self.dm_channels:
                # A guild channel (the mod-log): a post, not a DM.
                await self._effect("message", channel)
                return 200, sent
            await self._effect("dm", f"{recipient}:{nonce}")
            return 200, sent
        if bucket in ("channel-get", "channel-modify"):
            if bucket == "channel-modify":
                value = (body or {}).get("rate_limit_per_user")
                if not isinstance(value, int) or not 0 <= value <= 21600:
                    return 400, {"message": "Invalid Form Body", "code": 50035}
                if self.slowmode.get(channel, 0) != value:
                    self.slowmode[channel] = value
                    await self._effect("slowmode", f"{channel}:{value}")
            rate = self.slowmode.get(channel, 0)
            return 200, {"id": channel, "type": 0, "rate_limit_per_user": rate}
        if bucket in ("guild-get", "guild-modify"):
            if bucket == "guild-modify":
                level = (body or {}).get("verification_level")
                if not isinstance(level, int) or not 0 <= level <= 4:
                    return 400, {"message": "Invalid Form Body", "code": 50035}
                if self.verification.get(guild, 0) != level:
                    self.verification[guild] = level
                    await self._effect("verification", f"{guild}:{level}")
            return 200, {"id": guild, "verification_level": self.verification.get(guild, 0)}
        if bucket == "message-list":
            limit = int(request.query.get("limit", "50"))
            return 200, list(reversed(self.dms.get(channel, [])))[:limit]
        return 404, {"message": "404: Not Found", "code": 0}

    def _sync_commands(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        """Bulk overwrite (PUT) of the application's commands, checked as Discord checks them."""
        if not isinstance(body, list) or len(body) > 100:
            return 400, {"message": "Invalid Form Body", "code": 50035}
        stored = []
        for command in body:
            name = command.get("name") if isinstance(command, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[-_a-z0-9]{1,32}", name):
                return 400, {"message": "Invalid Form Body", "code": 50035}
            if not 1 <= len(str(command.get("description", ""))) <= 100:
                return 400, {"message": "Invalid Form Body", "code": 50035}
            stored.append(
                {**command, "id": self._next_id(), "application_id": params["application_id"]}
            )
        key = (params["application_id"], params.get("guild_id", ""))
        self.commands[key] = stored
        return 200, stored


def sign_interaction(private_key: Any, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """The headers Discord sends with an interaction: Ed25519 over ``timestamp + body``.

    ``private_key`` is a ``cryptography`` ``Ed25519PrivateKey`` (the test holds it; the endpoint
    is configured with its public half, as with the key in Discord's developer portal).
    """
    stamp = timestamp or str(int(time.time()))
    signature = private_key.sign(stamp.encode() + body).hex()
    return {
        "Content-Type": "application/json",
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": stamp,
        "User-Agent": "Discord-Interactions/1.0 (+https://discord.com)",
    }


def interaction(
    kind: int,
    *,
    guild: str | None = "5000",
    user: str = "1001",
    permissions: int = 0,
    data: dict[str, Any] | None = None,
    application: str = "4242",
) -> dict[str, Any]:
    """An interaction payload as Discord posts it: in a guild (``member`` with its permissions)
    or, with ``guild=None``, in a DM (``user``). ``kind``: 1 ping, 2 command, 3 component."""
    payload: dict[str, Any] = {
        "id": str(int(time.time() * 1000)),
        "application_id": application,
        "type": kind,
        "token": "interaction-token",
        "version": 1,
    }
    author = {"id": user, "username": f"user{user}", "discriminator": "0"}
    if guild is not None:
        payload["guild_id"] = guild
        payload["channel_id"] = "777"
        payload["member"] = {"user": author, "permissions": str(permissions), "roles": []}
    else:
        payload["channel_id"] = f"{user}77"
        payload["user"] = author
    if data is not None:
        payload["data"] = data
    return payload


def command(name: str, sub: str | None = None, /, **options: Any) -> dict[str, Any]:
    """An application command's ``data`` (string options type 3; ``user`` options type 6)."""
    values = [
        {"name": key, "type": 6 if key == "user" else 3, "value": value}
        for key, value in options.items()
    ]
    if sub is not None:
        values = [{"name": sub, "type": 1, "options": values}]
    return {"id": "1", "name": name, "type": 1, "options": values}


async def send_interaction(
    url: str, private_key: Any, payload: dict[str, Any], *, timestamp: str | None = None
) -> tuple[int, Any]:
    """POST a signed interaction to an Interactions Endpoint URL, as Discord does; returns the
    status and the JSON (or text) answered."""
    body = json.dumps(payload).encode()
    headers = sign_interaction(private_key, body, timestamp)
    return await post_signed(url, body, headers)

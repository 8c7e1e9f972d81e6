"""A local server speaking the parts of the Twitch Helix API that the actioner uses.

The Twitch executor talks to it through ``WARDEN_PLATFORMS__TWITCH__API_BASE_URL``. Like Helix it
checks ``Authorization: Bearer <token>`` and ``Client-Id`` (401 with Twitch's error body
otherwise), keeps a points bucket per token (one point a call) and announces it on every answer
with ``Ratelimit-Limit``, ``Ratelimit-Remaining`` and ``Ratelimit-Reset`` (epoch seconds when the
bucket is full again), answers 429 while it is empty, and answers errors as Helix does:
``{"error": "Bad Request", "status": 400, "message": "..."}``. It keeps state (deleted messages,
bans and timeouts, warnings, chat settings) and records every request and effect, so a test can
count what Twitch actually did.

It also speaks the OAuth side (``/oauth2/token`` with ``grant_type=refresh_token``, and
``/oauth2/validate``) as ``id.twitch.tv`` does, for a user token that expires:
``expire_token()`` makes the current token answer 401 "Invalid OAuth token" until the client
trades the refresh token (and the app's client secret) for a new pair.

Its clock is the wall clock (``time.time``): ``Ratelimit-Reset`` is an epoch instant, and the
recorded ``at`` of each request can be compared with it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from aiohttp import web

from devkit.platforms.server import FixedWindows, Limit, LocalServer, Recorded, json_response

# Helix routes under /helix: (method, path) -> the bucket name recorded for each request.
HELIX_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/users"): "users",
    ("DELETE", "/moderation/chat"): "chat-delete",
    ("POST", "/moderation/bans"): "ban",
    ("DELETE", "/moderation/bans"): "unban",
    ("GET", "/moderation/banned"): "banned",
    ("GET", "/chat/settings"): "settings-get",
    ("PATCH", "/chat/settings"): "settings",
    ("POST", "/moderation/warnings"): "warn",
}

TOKEN_LIFETIME_S = 14_400
# Helix: 800 points a minute per user token; each call here costs one point.
HELIX_LIMIT = Limit(800, 60.0)
MAX_TIMEOUT_S = 1_209_600
REASON_MAX = 500
# What Helix accepts for chat settings.
SLOW_WAIT_RANGE = (3, 120)
FOLLOWER_MINUTES_MAX = 129_600

ALREADY_BANNED = "The user specified in the user_id field is already banned."
NOT_BANNED = "The user specified in the user_id field is not banned."
NOT_MODERATOR = "The user in moderator_id is not one of the broadcaster's moderators."
MESSAGE_NOT_FOUND = "The ID in message_id was not found."

DEFAULT_SETTINGS: dict[str, Any] = {
    "slow_mode": False,
    "slow_mode_wait_time": None,
    "follower_mode": False,
    "follower_mode_duration": None,
    "emote_mode": False,
    "subscriber_mode": False,
    "unique_chat_mode": False,
}


def helix_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error the way Helix writes one: the reason phrase, the status and a message."""
    payload = {"error": HTTPStatus(status).phrase, "status": status, "message": message}
    return json_response(status, payload, headers)


class TwitchServer(LocalServer):
    """Twitch Helix for one moderator's user token: chat deletes, bans, timeouts, warnings,
    chat settings.

    Every message id exists until deleted (or listed in ``unknown_messages``); the moderator
    moderates every channel except ``forbidden_broadcasters`` (403). ``bans`` maps
    (broadcaster, user) to the epoch second a timeout ends, or None for a ban.
    """

    def __init__(
        self,
        token: str = "fake-twitch-token",  # noqa: S107 - a local server's test token
        *,
        client_id: str = "fake-client-id",
        moderator_id: str = "9001",
        limit: Limit = HELIX_LIMIT,
        latency_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        refresh_token: str = "fake-refresh-token",  # noqa: S107 - a local server's test token
        client_secret: str = "fake-client-secret",  # noqa: S107
    ) -> None:
        super().__init__()
        self.token = token
        self.refresh_token = refresh_token
        self.client_secret = client_secret
        # Seconds the current token has left (a new one gets ~4 h, as Twitch user tokens do).
        self.expires_in = TOKEN_LIFETIME_S
        self.refreshes = 0
        self.client_id = client_id
        self.moderator_id = moderator_id
        self.limit = limit
        self.latency_s = latency_s
        self.clock = clock
        self._windows = FixedWindows(clock)
        self._empty_until = 0.0
        self._failures: list[int] = []
        self.deleted: set[str] = set()
        self.unknown_messages: set[str] = set()
        self.bans: dict[tuple[str, str], float | None] = {}
        self.warnings: list[dict[str, str]] = []
        self.settings: dict[str, dict[str, Any]] = {}
        self.forbidden_broadcasters: set[str] = set()
        for (method, path), bucket in HELIX_ROUTES.items():
            self.app.router.add_route(method, "/helix" + path, self._handler(bucket))
        self.app.router.add_post("/oauth2/token", self._token)
        self.app.router.add_get("/oauth2/validate", self._validate)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/helix"

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth2"

    # -- what tests arrange ------------------------------------------------------------------

    def expire_token(self) -> None:
        """The current user token expires: every call with it answers 401 from now on."""
        self.token = f"{self.token}-expired"  # nobody holds this one

    def exhaust(self, seconds: float) -> int:
        """Empty the points bucket for ``seconds``: every call before then answers 429, with
        ``Ratelimit-Reset`` at the (whole) second it refills, which is returned."""
        self._empty_until = math.ceil(self.clock() + seconds)
        return int(self._empty_until)

    def fail_next(self, requests: int, status: int = 503) -> None:
        """The next ``requests`` calls (GET /users aside) answer ``status``."""
        self._failures.extend([status] * requests)

    def chat_settings(self, broadcaster: str) -> dict[str, Any]:
        """The chat settings of a channel (Twitch's defaults until patched)."""
        return self.settings.setdefault(broadcaster, dict(DEFAULT_SETTINGS))

    # -- what tests read ---------------------------------------------------------------------

    def count(self, bucket: str, status: int | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.bucket == bucket and (status is None or r.status == status)
        )

    # -- the server --------------------------------------------------------------------------

    def _handler(self, bucket: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            at = self.clock()
            body: Any = None
            if request.can_read_body:
                raw = await request.read()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
            response = await self._respond(request, bucket, body)
            recorded = {"query": dict(request.query), "body": body}
            self.requests.append(
                Recorded(request.method, request.path, bucket, response.status, recorded, at)
            )
            return response

        return handle

    async def _respond(self, request: web.Request, bucket: str, body: Any) -> web.Response:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") != self.token:
            return helix_error(401, "Invalid OAuth token")
        if request.headers.get("Client-Id") != self.client_id:
            return helix_error(401, "Client ID and OAuth token do not match")
        now = self.clock()
        if now < self._empty_until:
            return self._too_many(self._empty_until)
        allowed, remaining, reset_after = self._windows.take(self.token, self.limit)
        reset_at = math.ceil(now + reset_after)
        if not allowed:
            return self._too_many(reset_at)
        headers = self._limit_headers(remaining, reset_at)
        if bucket != "users" and self._failures:
            status = self._failures.pop(0)
            return helix_error(status, "Internal Server Error", headers)
        status, payload = await self._act(bucket, request.query, body)
        if status == 204:
            return web.Response(status=204, headers=headers)
        if status >= 400:
            return helix_error(status, str(payload), headers)
        return json_response(status, payload, headers)

    async def _token(self, request: web.Request) -> web.Response:
        """``POST /oauth2/token``: a refresh token (and the app's id and secret) for a new pair.

        Like Twitch: a form body; 400 "Invalid refresh token" for a wrong one, 403 "invalid client
        secret" for a wrong secret; the old refresh token stops working (one use).
        """
        form = await request.post()
        at = self.clock()
        status, payload = 200, {}
        if form.get("grant_type") != "refresh_token":
            status, payload = 400, {"status": 400, "message": "missing or invalid grant_type"}
        elif form.get("client_id") != self.client_id:
            status, payload = 400, {"status": 400, "message": "invalid client"}
        elif form.get("client_secret") != self.client_secret:
            status, payload = 403, {"status": 403, "message": "invalid client secret"}
        elif form.get("refresh_token") != self.refresh_token:
            status, payload = 400, {"status": 400, "message": "Invalid refresh token"}
        else:
            self.refreshes += 1
            self.expires_in = TOKEN_LIFETIME_S
            self.token = f"fake-twitch-token-{self.refreshes}"
            self.refresh_token = f"fake-refresh-token-{self.refreshes}"
            payload = {
                "access_token": self.token,
                "refresh_token": self.refresh_token,
                "expires_in": self.expires_in,
                "scope": ["moderator:manage:banned_users"],
                "token_type": "bearer",
            }
        self.requests.append(Recorded("POST", request.path, "oauth-token", status, {}, at))
        return json_response(status, payload)

    async def _validate(self, request: web.Request) -> web.Response:
        """``GET /oauth2/validate`` (``Authorization: OAuth <token>``): whose, for how long."""
        auth = request.headers.get("Authorization", "")
        ok = auth.removeprefix("OAuth ").removeprefix("Bearer ") == self.token
        self.requests.append(
            Recorded("GET", request.path, "oauth-validate", 200 if ok else 401, {}, self.clock())
        )
        if not ok:
            return json_response(401, {"status": 401, "message": "invalid access token"})
        payload = {
            "client_id": self.client_id,
            "login": "chatwarden_bot",
            "user_id": self.moderator_id,
            "scopes": ["moderator:manage:banned_users"],
            "expires_in": self.expires_in,
        }
        return json_response(200, payload)

    def _limit_headers(self, remaining: int, reset_at: float) -> dict[str, str]:
        return {
            "Ratelimit-Limit": str(self.limit.limit),
            "Ratelimit-Remaining": str(remaining),
            "Ratelimit-Reset": str(int(reset_at)),
        }

    def _too_many(self, reset_at: float) -> web.Response:
        return helix_error(429, "Too Many Requests", self._limit_headers(0, reset_at))

    async def _act(self, bucket: str, query: Any, body: Any) -> tuple[int, Any]:
        if bucket == "users":
            return 200, {"data": [{"id": self.moderator_id, "login": "chatwarden_bot"}]}
        broadcaster = query.get("broadcaster_id", "")
        if not broadcaster:
            return 400, 'Missing required parameter "broadcaster_id"'
        if bucket != "banned":
            moderator = query.get("moderator_id", "")
            if not moderator:
                return 400, 'Missing required parameter "moderator_id"'
            if moderator != self.moderator_id:
                return 401, "The ID in moderator_id must match the user ID in the access token."
        if broadcaster in self.forbidden_broadcasters:
            return 403, NOT_MODERATOR
        if bucket == "chat-delete":
            return await self._delete(query.get("message_id", ""))
        if bucket == "banned":
            return 200, {"data": self._banned(broadcaster, query.getall("user_id", []))}
        if bucket == "settings-get":
            return 200, {"data": [self._settings_out(broadcaster)]}
        data = body.get("data") if isinstance(body, dict) else None
        if bucket == "ban":
            return await self._ban(broadcaster, data)
        if bucket == "unban":
            user = query.get("user_id", "")
            if (broadcaster, user) not in self.bans:
                return 400, NOT_BANNED
            del self.bans[(broadcaster, user)]
            await self._effect("unban", f"{broadcaster}:{user}")
            return 204, None
        if bucket == "warn":
            return await self._warn(broadcaster, data)
        if bucket == "settings":
            return await self._patch_settings(broadcaster, body)
        return 404, "Not Found"

    async def _delete(self, message: str) -> tuple[int, Any]:
        if not message:
            return 400, 'Missing required parameter "message_id"'
        if message in self.deleted or message in self.unknown_messages:
            return 404, MESSAGE_NOT_FOUND
        self.deleted.add(message)
        await self._effect("delete", message)
        return 204, None

    def _active_ban(self, key: tuple[str, str]) -> tuple[bool, float | None]:
        """(banned or timed out now, when the timeout ends: None for a ban)."""
        if key not in self.bans:
            return False, None
        ends = self.bans[key]
        if ends is not None and ends <= self.clock():
            del self.bans[key]  # the timeout is over
            return False, None
        return True, ends

    def _banned(self, broadcaster: str, users: list[str]) -> list[dict[str, Any]]:
        out = []
        for user in users:
            active, ends = self._active_ban((broadcaster, user))
            if active:
                expires = "" if ends is None else _iso(ends)
                out.append({"user_id": user, "expires_at": expires, "reason": ""})
        return out

    async def _ban(self, broadcaster: str, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not data.get("user_id"):
            return 400, 'Missing required field "data.user_id"'
        user = str(data["user_id"])
        if len(str(data.get("reason", ""))) > REASON_MAX:
            return 400, "The text in the reason field is too long."
        duration = data.get("duration")
        if duration is not None and (
            not isinstance(duration, int) or not 1 <= duration <= MAX_TIMEOUT_S
        ):
            return 400, "The value in the duration field is not valid."
        key = (broadcaster, user)
        active, ends = self._active_ban(key)
        if active and ends is None:
            # Helix refuses to ban or time out a banned user.
            return 400, ALREADY_BANNED
        now = self.clock()
        # A timeout replaces a running timeout; a ban replaces a timeout (as on Twitch).
        self.bans[key] = None if duration is None else now + duration
        kind = "ban" if duration is None else "timeout"
        await self._effect(
            kind, f"{broadcaster}:{user}" + ("" if duration is None else f":{duration}")
        )
        end_time = None if duration is None else _iso(now + duration)
        row = {
            "broadcaster_id": broadcaster,
            "moderator_id": self.moderator_id,
            "user_id": user,
            "created_at": _iso(now),
            "end_time": end_time,
        }
        return 200, {"data": [row]}

    async def _warn(self, broadcaster: str, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not data.get("user_id") or not data.get("reason"):
            return 400, 'Missing required fields "data.user_id" or "data.reason"'
        if len(str(data["reason"])) > REASON_MAX:
            return 400, "The text in the reason field is too long."
        user = str(data["user_id"])
        warning = {"broadcaster_id": broadcaster, "user_id": user, "reason": str(data["reason"])}
        self.warnings.append(warning)
        await self._effect("warn", f"{broadcaster}:{user}")
        return 200, {"data": [{**warning, "moderator_id": self.moderator_id}]}

    async def _patch_settings(self, broadcaster: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body:
            return 400, "The request body must contain at least one setting."
        unknown = set(body) - set(DEFAULT_SETTINGS)
        if unknown:
            return 400, f"Unknown chat setting {sorted(unknown)[0]!r}."
        wait = body.get("slow_mode_wait_time")
        if wait is not None and not SLOW_WAIT_RANGE[0] <= wait <= SLOW_WAIT_RANGE[1]:
            return 400, "The value in slow_mode_wait_time is out of range."
        minutes = body.get("follower_mode_duration")
        if minutes is not None and not 0 <= minutes <= FOLLOWER_MINUTES_MAX:
            return 400, "The value in follower_mode_duration is out of range."
        current = self.chat_settings(broadcaster)
        changed = {k: v for k, v in body.items() if current.get(k) != v}
        current.update(body)
        # Helix fills in the defaults when a mode is turned on without its value.
        if current["slow_mode"] and current["slow_mode_wait_time"] is None:
            current["slow_mode_wait_time"] = 30
        if current["follower_mode"] and current["follower_mode_duration"] is None:
            current["follower_mode_duration"] = 0
        if not current["slow_mode"]:
            current["slow_mode_wait_time"] = None
        if not current["follower_mode"]:
            current["follower_mode_duration"] = None
        if changed:
            await self._effect("settings", f"{broadcaster}:{json.dumps(changed, sort_keys=True)}")
        return 200, {"data": [self._settings_out(broadcaster)]}

    def _settings_out(self, broadcaster: str) -> dict[str, Any]:
        return {
            "broadcaster_id": broadcaster,
            "moderator_id": self.moderator_id,
            **self.chat_settings(broadcaster),
        }


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(0, UTC) + timedelta(seconds=epoch)
    return moment.isoformat().replace("+00:00", "Z")


__all__ = ["HELIX_LIMIT", "MAX_TIMEOUT_S", "TwitchServer", "helix_error"]

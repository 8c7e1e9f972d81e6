"""A local Discord gateway (WebSocket) and the REST calls discord.py makes to log in.

Enough of Discord for an unmodified discord.py client to connect: ``GET /api/v10/users/@me``
and ``/oauth2/applications/@me`` (login), ``/gateway/bot``, then on the WebSocket ``HELLO``,
``IDENTIFY`` (recorded: token and intents), ``READY``, ``GUILD_CREATE`` for one guild with
roles, channels and members, heartbeat acknowledgements, and whatever dispatches a test sends
(``MESSAGE_CREATE``, ``MESSAGE_UPDATE``). Frames are JSON text (discord.py inflates only binary
frames). Payload builders produce the shapes Discord documents for these events.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

BOT_ID = "1100000000000000001"
APP_ID = "1100000000000000002"
GUILD_ID = "1200000000000000001"
CHANNEL_ID = "1200000000000000002"
OWNER_ID = "1300000000000000001"
ROLE_MOD = "1400000000000000001"
ROLE_VIP = "1400000000000000002"
MESSAGE_CONTENT_INTENT = 1 << 15
DISCORD_EPOCH_MS = 1420070400000


def snowflake(when: datetime, increment: int = 0) -> str:
    """A snowflake id for ``when`` (ids carry their creation time)."""
    ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (increment & 0xFFF))


def user(user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member(roles: list[str]) -> dict[str, Any]:
    return {
        "roles": roles,
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "nick": None,
        "avatar": None,
        "premium_since": None,
        "communication_disabled_until": None,
    }


def role(role_id: str, name: str, position: int, permissions: str = "0") -> dict[str, Any]:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": permissions,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def guild() -> dict[str, Any]:
    """GUILD_CREATE data for the one guild the bot is in."""
    return {
        "id": GUILD_ID,
        "name": "Warden Test Guild",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": OWNER_ID,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "roles": [
            # View channels, send messages, read history; moderators also manage messages
            # and time members out.
            role(GUILD_ID, "@everyone", 0, str(1024 | 2048 | 65536)),
            role(ROLE_MOD, "Moderator", 2, str(8192 | 1 << 40)),
            role(ROLE_VIP, "VIP", 1),
        ],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "system_channel_id": CHANNEL_ID,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "large": False,
        "unavailable": False,
        "member_count": 3,
        "voice_states": [],
        "members": [{**member([]), "user": user(BOT_ID, "warden", bot=True)}],
        "channels": [
            {
                "id": CHANNEL_ID,
                "type": 0,
                "guild_id": GUILD_ID,
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "topic": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "parent_id": None,
            }
        ],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def message(
    message_id: str,
    content: str,
    author_id: str,
    author_name: str,
    *,
    roles: list[str] | None = None,
    timestamp: datetime | None = None,
    reply_to: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    edited_timestamp: datetime | None = None,
) -> dict[str, Any]:
    """MESSAGE_CREATE (or, with ``edited_timestamp``, MESSAGE_UPDATE) data in a guild channel."""
    sent = timestamp or datetime.now(UTC)
    data: dict[str, Any] = {
        "id": message_id,
        "type": 19 if reply_to else 0,
        "channel_id": CHANNEL_ID,
        "guild_id": GUILD_ID,
        "author": user(author_id, author_name),
        "member": member(roles or []),
        "content": content,
        "timestamp": sent.isoformat(),
        "edited_timestamp": edited_timestamp.isoformat() if edited_timestamp else None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "mention_channels": [],
        "attachments": attachments or [],
        "embeds": [],
        "reactions": [],
        "pinned": False,
        "flags": 0,
        "components": [],
        "nonce": None,
    }
    if reply_to:
        data["message_reference"] = {
            "type": 0,
            "message_id": reply_to,
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
        }
    return data


def attachment(attachment_id: str, filename: str, content_type: str) -> dict[str, Any]:
    url = f"https://cdn.discordapp.com/attachments/{CHANNEL_ID}/{attachment_id}/{filename}"
    return {
        "id": attachment_id,
        "filename": filename,
        "size": 1234,
        "url": url,
        "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
        "content_type": content_type,
        "width": 64,
        "height": 64,
    }


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only when Content-Type is exactly application/json.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class DiscordGateway:
    """REST login + gateway WebSocket on one local port."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.identifies: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.sockets: set[web.WebSocketResponse] = set()
        self.sequence = 0
        self._ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    @property
    def api_url(self) -> str:
        return self.base + "/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/gateway"

    async def start(self, host: str = "127.0.0.1") -> None:
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_get("/api/v10/gateway/bot", self._gateway_bot)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_get("/gateway", self._socket)
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

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return json_response(
            {**user(BOT_ID, "warden", bot=True), "verified": True, "mfa_enabled": False, "flags": 0}
        )

    async def _application(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return json_response(
            {
                "id": APP_ID,
                "name": "Warden",
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": user(OWNER_ID, "owner"),
                "flags": 0,
                "team": None,
                "rpc_origins": [],
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14400000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _send(
        self, ws: web.WebSocketResponse, op: int, data: Any, event: str | None = None
    ) -> None:
        payload: dict[str, Any] = {"op": op, "d": data, "s": None, "t": event}
        if op == 0:
            self.sequence += 1
            payload["s"] = self.sequence
        await ws.send_str(json.dumps(payload))

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await self._send(ws, 10, {"heartbeat_interval": 41250})
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                op = payload.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await self._send(ws, 11, None)
                elif op == 2:
                    await self._identify(ws, payload["d"])
                elif op == 6:
                    await self._send(ws, 0, {}, "RESUMED")
                    self.sockets.add(ws)
        finally:
            self.sockets.discard(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        ready = {
            "v": 10,
            "user": {**user(BOT_ID, "warden", bot=True), "verified": True, "flags": 0},
            "guilds": [{"id": GUILD_ID, "unavailable": True}],
            "session_id": "session-1",
            "resume_gateway_url": self.gateway_url,
            "shard": [0, 1],
            "application": {"id": APP_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
        }
        await self._send(ws, 0, ready, "READY")
        await self._send(ws, 0, guild(), "GUILD_CREATE")
        self.sockets.add(ws)
        self._ready.set()

    async def wait_ready(self, within_s: float = 60) -> None:
        await asyncio.wait_for(self._ready.wait(), within_s)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a dispatch (op 0) to every identified client."""
        for ws in list(self.sockets):
            await self._send(ws, 0, data, event)

"""A local Twitch chat server: IRC over WebSocket with IRCv3 tags, as irc-ws.chat.twitch.tv.

It answers CAP REQ, PASS/NICK and JOIN the way Twitch does, records every line a client sends,
and lets a test push real server lines (``PRIVMSG`` with tags, ``PING``, ``RECONNECT``) to the
connected clients. ``privmsg()`` builds a PRIVMSG line with the tags Twitch sends; ``say()``
sends one as a given user (badges, ``mod``), ``said()`` reads what the clients posted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from aiohttp import WSMsgType, web

HOST = "tmi.twitch.tv"


def escape_tag(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\:")
        .replace(" ", "\\s")
        .replace("\r", "\\r")
        .replace("\n", "\\n")
    )


def privmsg(
    channel: str,
    text: str,
    *,
    login: str = "viewer",
    user_id: str = "1001",
    room_id: str = "5000",
    msg_id: str | None = None,
    badges: str = "",
    emotes: str = "",
    display_name: str | None = None,
    reply_parent_msg_id: str | None = None,
    reply_parent_user_id: str | None = None,
    sent_ms: int | None = None,
    mod: bool = False,
) -> str:
    """A PRIVMSG line as Twitch sends it, with its IRCv3 tags."""
    tags = {
        "badge-info": "",
        "badges": badges,
        "color": "#1E90FF",
        "display-name": display_name or login,
        "emotes": emotes,
        "first-msg": "0",
        "flags": "",
        "id": msg_id or str(uuid.uuid4()),
        "mod": "1" if mod else "0",
        "returning-chatter": "0",
        "room-id": room_id,
        "subscriber": "1" if "subscriber" in badges else "0",
        "tmi-sent-ts": str(sent_ms if sent_ms is not None else int(time.time() * 1000)),
        "turbo": "0",
        "user-id": user_id,
        "user-type": "mod" if mod else "",
    }
    if reply_parent_msg_id:
        tags["reply-parent-msg-id"] = reply_parent_msg_id
        tags["reply-parent-user-login"] = "someone"
        tags["reply-parent-user-id"] = reply_parent_user_id or "1"
    raw_tags = ";".join(f"{k}={escape_tag(v)}" for k, v in tags.items())
    return f"@{raw_tags} :{login}!{login}@{login}.{HOST} PRIVMSG #{channel} :{text}"


class TwitchIrcServer:
    """Serves ``ws://host:port/`` like Twitch's IRC WebSocket endpoint."""

    def __init__(self, valid_token: Callable[[], str] | None = None) -> None:
        # With ``valid_token``, a PASS with any other token is refused as Twitch does
        # (``NOTICE * :Login authentication failed``, then the connection closes).
        self.valid_token = valid_token
        self.refused = 0
        self.received: list[str] = []
        self.connections = 0
        self.clients: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.url = f"ws://{host}:{sockets[0].getsockname()[1]}/"
        return self.url

    async def stop(self) -> None:
        for ws in list(self.clients):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _note(self, line: str) -> None:
        async with self._changed:
            self.received.append(line)
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        nick = "justinfan"
        token: str | None = None
        async with self._changed:
            self.clients.add(ws)
            self._changed.notify_all()
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                for line in frame.data.split("\r\n"):
                    if not line:
                        continue
                    await self._note(line)
                    command, _, rest = line.partition(" ")
                    if command == "PASS":
                        token = rest.strip().removeprefix("oauth:")
                    elif (
                        command == "NICK"
                        and self.valid_token is not None
                        and (token != self.valid_token())
                    ):
                        self.refused += 1
                        await ws.send_str(f":{HOST} NOTICE * :Login authentication failed")
                        await ws.close()
                        break
                    if command == "CAP":
                        await ws.send_str(f":{HOST} CAP * ACK :{rest.split(':', 1)[-1]}")
                    elif command == "NICK":
                        nick = rest.strip()
                        await ws.send_str(
                            "\r\n".join(
                                f":{HOST} {code} {nick} :{text}"
                                for code, text in (
                                    ("001", "Welcome, GLHF!"),
                                    ("002", f"Your host is {HOST}"),
                                    ("376", ">"),
                                )
                            )
                        )
                    elif command == "JOIN":
                        for channel in rest.strip().split(","):
                            await ws.send_str(
                                f":{nick}!{nick}@{nick}.{HOST} JOIN {channel}\r\n"
                                f":{nick}.{HOST} 353 {nick} = {channel} :{nick}\r\n"
                                f":{nick}.{HOST} 366 {nick} {channel} :End of /NAMES list"
                            )
        finally:
            async with self._changed:
                self.clients.discard(ws)
                self._changed.notify_all()
        return ws

    async def send(self, *lines: str) -> None:
        """Send lines to every connected client, in one frame (as Twitch often does)."""
        for ws in list(self.clients):
            await ws.send_str("\r\n".join(lines) + "\r\n")

    async def wait_for(
        self, check: Callable[[TwitchIrcServer], bool], within_s: float = 20
    ) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: check(self))

        await asyncio.wait_for(until(), within_s)

    async def say(self, channel: str, text: str, **tags: object) -> str:
        """Send a chat line to the clients as a user (``privmsg``'s keywords: ``login``,
        ``user_id``, ``room_id``, ``badges``, ``mod``, ...); returns the line's message id."""
        msg_id = str(tags.pop("msg_id", None) or uuid.uuid4())
        await self.send(privmsg(channel, text, msg_id=msg_id, **tags))  # type: ignore[arg-type]
        return msg_id

    def said(self, channel: str) -> list[str]:
        """The text of every PRIVMSG the clients sent to ``#channel``, oldest first."""
        found = []
        for line in self.received:
            body = line.split(" ", 1)[1] if line.startswith("@") else line
            head, _, text = body.partition(" :")
            if head.split() == ["PRIVMSG", f"#{channel}"]:
                found.append(text)
        return found

    def lines(self, command: str) -> list[str]:
        return [line for line in self.received if line.split(" ", 1)[0] == command]

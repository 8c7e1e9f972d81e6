"""Twitch chat's wire format, shared by the services that speak it: IRC lines with IRCv3 tags.

The ingest adapter (``ingest.adapters.twitch``) reads chat with it and the actioner's chat bot
(``actioners.bots.twitch``) reads moderators' commands with it; services never import each
other, so the parsing and the connection loop live here (``IrcClient``: connect, log in, read
lines, reconnect; each service supplies ``handle`` for a line).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

import aiohttp

from core.errors import TransientError
from core.settings import TwitchSettings
from core.twitch_auth import TokenRefused, refresh_user_token

# After a refresh, a refused login is not refreshed again for this long (a revoked app).
REFRESH_GAP_S = 60.0

logger = logging.getLogger(__name__)

_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
# The capabilities both clients need: tags (ids, badges, room-id) and commands (RECONNECT).
CAPABILITIES = "CAP REQ :twitch.tv/tags twitch.tv/commands"


class LoginRefused(Exception):
    """Twitch refused the chat token (expired, revoked or malformed)."""


class Reconnect(Exception):
    """The server asked us to reconnect (``RECONNECT``)."""


@dataclass(frozen=True)
class IrcLine:
    """One parsed IRC line: IRCv3 tags, prefix, command and parameters."""

    command: str
    params: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None

    @property
    def nick(self) -> str | None:
        """The sender's nick (login) from the prefix, or None for a server line."""
        if self.prefix is None:
            return None
        return self.prefix.split("!", 1)[0]


def unescape_tag(value: str) -> str:
    """Undo IRCv3 tag value escapes (``\\:`` is ``;``, ``\\s`` a space, and so on)."""
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        nxt = next(chars, "")
        out.append(_TAG_ESCAPES.get(nxt, nxt))
    return "".join(out)


def parse_line(line: str) -> IrcLine:
    """Parse one IRC line (without CRLF); raises ValueError for an empty or malformed one."""
    rest = line.rstrip("\r\n")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        for item in raw_tags.split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = unescape_tag(value)
    rest = rest.lstrip(" ")
    prefix = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    rest = rest.lstrip(" ")
    trailing = None
    if " :" in rest:
        rest, trailing = rest.split(" :", 1)
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = rest.split()
    if not words:
        raise ValueError(f"not an IRC line: {line!r}")
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return IrcLine(command=words[0].upper(), params=params, tags=tags, prefix=prefix)


def badge_roles(badges: str) -> list[str]:
    """``broadcaster/1,subscriber/12`` -> ``["broadcaster", "subscriber"]``."""
    return [b.split("/", 1)[0] for b in badges.split(",") if b.split("/", 1)[0]]


def user_roles(tags: dict[str, str]) -> list[str]:
    """The sender's badge names, with ``moderator`` added when the ``mod`` tag is 1 (Twitch
    sets ``mod=1`` for a channel moderator even when the badge is hidden)."""
    roles = badge_roles(tags.get("badges", ""))
    if tags.get("mod") == "1" and "moderator" not in roles:
        roles.append("moderator")
    return roles


def is_login_refused(raw: str) -> bool:
    """Twitch's answer to a bad ``PASS``: ``:tmi.twitch.tv NOTICE * :Login authentication failed``
    (or ``Improperly formatted auth``), then it closes the connection."""
    if " NOTICE * :" not in raw:
        return False
    text = raw.rsplit(" :", 1)[-1].lower()
    return "login authentication failed" in text or "improperly formatted auth" in text


def login_lines(nick: str, token: str | None, channels: list[str]) -> list[str]:
    """What a client sends after connecting: capabilities, ``PASS oauth:<token>`` (when logged
    in), ``NICK`` and one ``JOIN`` of every channel (logins without '#')."""
    lines = [CAPABILITIES]
    if token is not None:
        lines.append(f"PASS {token if token.startswith('oauth:') else 'oauth:' + token}")
    lines.append(f"NICK {nick}")
    lines.append("JOIN " + ",".join(f"#{c}" for c in channels))
    return lines


class IrcClient:
    """A Twitch chat connection over WebSocket that reconnects until cancelled: at once when the
    server closes cleanly or sends ``RECONNECT`` (:class:`Reconnect` raised by ``handle``), else
    with a doubling back-off up to ``reconnect_max_s``. Subclasses set ``channels`` and ``nick``
    and implement :meth:`handle`; ``connected`` is set while a session is up."""

    name = "Twitch chat"

    def __init__(self, twitch: TwitchSettings, channels: list[str], nick: str) -> None:
        self.twitch = twitch
        self.channels = channels
        self.nick = nick
        self.connections = 0
        self.connected = asyncio.Event()
        self._token = twitch.token.get_secret_value() if twitch.token is not None else None
        self._refresh_token = (
            twitch.token_refresh_token.get_secret_value()
            if twitch.token_refresh_token is not None
            else None
        )
        self.refreshes = 0
        self._refreshed_at = -math.inf

    @property
    def refreshable(self) -> bool:
        return (
            self._refresh_token is not None
            and self.twitch.client_secret is not None
            and self.twitch.client_id is not None
        )

    async def handle(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Connect, read, and reconnect until cancelled."""
        backoff = 1.0
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self._session(session)
                    backoff = 1.0  # a clean close by the server: reconnect at once
                except Reconnect:
                    logger.info("%s: the server asked for a reconnect", self.name)
                    backoff = 1.0
                    continue
                except LoginRefused:
                    if await self._refresh(session):
                        backoff = 1.0
                        continue
                    logger.error(
                        "%s: Twitch refused the login (WARDEN_PLATFORMS__TWITCH__TOKEN expired or"
                        " revoked; with __TOKEN_REFRESH_TOKEN and __CLIENT_SECRET it is"
                        " refreshed); again in %.1f s",
                        self.name,
                        backoff,
                    )
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    logger.warning(
                        "%s: connection lost (%r); again in %.0f s", self.name, exc, backoff
                    )
                finally:
                    self.connected.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.twitch.reconnect_max_s)

    async def _refresh(self, session: aiohttp.ClientSession) -> bool:
        """A new chat token after a refused login: True when there is one to log in with."""
        if not self.refreshable or time.monotonic() - self._refreshed_at < REFRESH_GAP_S:
            return False
        self._refreshed_at = time.monotonic()
        assert self._refresh_token is not None and self.twitch.client_secret is not None
        try:
            pair = await refresh_user_token(
                session,
                self.twitch.auth_url,
                client_id=self.twitch.client_id or "",
                client_secret=self.twitch.client_secret.get_secret_value(),
                refresh_token=self._refresh_token,
                variable="WARDEN_PLATFORMS__TWITCH__TOKEN_REFRESH_TOKEN",
            )
        except (TokenRefused, TransientError) as exc:
            logger.error("%s: %s", self.name, exc)
            return False
        self._token, self._refresh_token = pair.access_token, pair.refresh_token
        self.refreshes += 1
        logger.info("%s: chat token refreshed (expires in %s s)", self.name, pair.expires_in)
        return True

    async def _session(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(self.twitch.irc_url, heartbeat=60) as ws:
            for out in login_lines(self.nick, self._token, self.channels):
                await ws.send_str(out)
            self.connections += 1
            self.connected.set()
            logger.info(
                "%s: connected to %s, joined %s", self.name, self.twitch.irc_url, self.channels
            )
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    for raw in frame.data.split("\r\n"):
                        if raw and is_login_refused(raw):
                            raise LoginRefused(raw)
                        if raw:
                            await self.handle(ws, raw)
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    raise aiohttp.ClientError(f"WebSocket error: {ws.exception()!r}")

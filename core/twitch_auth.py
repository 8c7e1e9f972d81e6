"""Twitch user tokens: trading a refresh token for a new access token.

User access tokens expire (about four hours). With the token's refresh token and the app's
client secret (a confidential client), ``POST <auth_url>/token`` gives a new pair. The Helix
executor (``actioners.platforms.twitch``) refreshes its API token on a 401; the chat clients
(``core.twitch_irc``: the ingest adapter and the moderators' bot) refresh their chat token when
Twitch refuses the login. New tokens live in memory only; nothing here logs a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from core.errors import ConfigError, TransientError


class TokenRefused(ConfigError):
    """Twitch refused the refresh token or the client credentials (fix the settings)."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int | None


async def refresh_user_token(
    session: aiohttp.ClientSession,
    auth_url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    variable: str,
) -> TokenPair:
    """A new token pair; ``variable`` names the refresh token's setting in the error."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    try:
        async with session.post(auth_url.rstrip("/") + "/token", data=form) as response:
            status = response.status
            data: Any = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise TransientError(f"twitch token refresh: {type(exc).__name__}: {exc}") from exc
    if status != 200 or not isinstance(data, dict) or not data.get("access_token"):
        message = data.get("message", "") if isinstance(data, dict) else ""
        raise TokenRefused(f"{variable}: Twitch refused to refresh the token ({status} {message})")
    expires = data.get("expires_in")
    return TokenPair(
        access_token=str(data["access_token"]),
        refresh_token=str(data.get("refresh_token") or refresh_token),
        expires_in=expires if isinstance(expires, int) else None,
    )

"""Discord: delete, bulk delete, timeout, kick, ban and DM warnings, through discord.py's REST.

discord.py's ``HTTPClient`` keeps Discord's rate limits the way Discord specifies them: a bucket
per route and major parameter learned from ``X-RateLimit-Bucket``, pre-emptive waits when
``X-RateLimit-Remaining`` reaches 0, a 429's ``retry_after`` slept before trying again, and the
global limit held for every route. What it gives up on reaches us as ``RateLimited``.

``WARDEN_PLATFORMS__DISCORD__API_BASE_URL`` points it elsewhere (a test server): discord.py
builds every URL from its class-level ``Route.BASE``, which ``start`` sets.

Per action, and how an action found in flight after a restart is finished (``reconcile``):

- delete: ``DELETE /channels/{c}/messages/{m}``; 404 Unknown Message = already deleted. Repeated.
- bulk delete: ``POST /channels/{c}/messages/bulk-delete`` (2-100 messages under 14 days old).
- timeout: ``PATCH /guilds/{g}/members/{u}`` with ``communication_disabled_until`` =
  requested_at + duration: the same instant every time, so repeating it changes nothing.
- kick: ``DELETE /guilds/{g}/members/{u}``. Reconciled by looking the member up first: gone, or
  joined again after the kick started, means done.
- ban: ``PUT /guilds/{g}/bans/{u}`` (idempotent). Reconciled by ``GET`` of the ban first.
- warn: a DM (``POST /users/@me/channels`` then ``POST /channels/{dm}/messages``) with a nonce
  Discord enforces, a reference in the text and a "Dispute" button (``dispute_components``).
  Reconciled by reading the DM channel's latest messages for the reference: found means sent;
  never sent twice.
- raid_mode: ``slow`` sets the channel's slowmode (``PATCH /channels/{c}``
  ``rate_limit_per_user`` = ``raid_slowmode_s``), ``verification`` raises the guild's
  verification level (``PATCH /guilds/{g}`` ``verification_level`` = ``raid_verification_level``);
  each is read first (``GET``) and never lowered. ``followers`` and ``emote_only`` are Twitch's:
  skipped with a note. Repeated (idempotent). The outcome's ``restore`` keeps the values found
  before (``{"slowmode": {"channel", "before", "set"}, "verification": {"before", "set"}}``).
- raid_mode_off (``duration_s`` later, ``actioners.timers``): the slowmode and the verification
  level go back to what they were, each only while it still has raid mode's value (a moderator's
  change since stays). Repeated (idempotent).
- untimeout (an overturn): ``PATCH /guilds/{g}/members/{u}`` with
  ``communication_disabled_until`` = null; Unknown Member = skipped (left). Repeated.
- unban (an overturn): ``DELETE /guilds/{g}/bans/{u}``; 404 Unknown Ban (10026) = done (not
  banned any more). Repeated.
- hold: no call (skipped, "held for review").
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp

from actioners.executors import Outcome, RateLimited, run_handler
from actioners.policy import reference
from core.errors import ConfigError, PermanentActionError, RetriableActionError
from core.settings import DiscordSettings
from schemas.events import ActionKind, ActionRequest, RaidMode

if TYPE_CHECKING:
    from discord.http import HTTPClient, Route

logger = logging.getLogger(__name__)

# Discord's JSON error codes we act on.
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
UNKNOWN_BAN = 10026
CANNOT_DM = 50007
# X-Audit-Log-Reason is capped at 512 characters.
AUDIT_REASON_MAX = 512
BULK_MAX = 100
DM_HISTORY = 50
DM_CACHE = 10_000
# The warning DM's "Dispute" button: custom id "warden:dispute:<guild>:<message>", answered by
# the interactions endpoint (actioners.bots.discord).
DISPUTE_BUTTON = "warden:dispute"


def dispute_components(request: ActionRequest) -> list[dict[str, Any]]:
    """An action row with the Dispute button of the action's message (a secondary button)."""
    custom_id = f"{DISPUTE_BUTTON}:{request.community}:{request.message_id}"[:100]
    button = {"type": 2, "style": 2, "label": "Dispute", "custom_id": custom_id}
    return [{"type": 1, "components": [button]}]


def _reason(request: ActionRequest) -> str:
    return request.reason[:AUDIT_REASON_MAX]


def _guild_user_route(method: str, collection: str, request: ActionRequest) -> Route:
    """``/guilds/{guild_id}/<collection>/{user_id}`` for the request's community and user
    (``members`` or ``bans``; the template is what discord.py keys its rate-limit buckets on)."""
    from discord.http import Route

    return Route(
        method,
        f"/guilds/{{guild_id}}/{collection}/{{user_id}}",
        guild_id=request.community,
        user_id=request.user,
    )


def nonce(action_id: str) -> str:
    """Discord keeps a message nonce of at most 25 characters."""
    return reference(action_id, 25)


def dm_reference(action_id: str) -> str:
    return f"ref {reference(action_id)}"


class DiscordExecutor:
    name = "discord"
    bulk_delete_max = BULK_MAX

    def __init__(self, settings: DiscordSettings) -> None:
        if settings.token is None:
            raise ConfigError("WARDEN_PLATFORMS__DISCORD__TOKEN: needed by the discord executor")
        self.settings = settings
        self._http: HTTPClient | None = None
        self._dm_channels: OrderedDict[str, str] = OrderedDict()

    async def start(self) -> None:
        from discord import LoginFailure
        from discord.http import HTTPClient, Route

        # discord.py's documented global: every Route is built on it.
        Route.BASE = self.settings.api_base_url.rstrip("/")
        assert self.settings.token is not None
        self._http = HTTPClient(asyncio.get_running_loop())
        try:
            await self._http.static_login(self.settings.token.get_secret_value())
        except LoginFailure as exc:
            await self._http.close()
            raise ConfigError(
                "WARDEN_PLATFORMS__DISCORD__TOKEN: Discord refused it (401 Unauthorized)"
            ) from exc
        logger.info("discord executor on %s", Route.BASE)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def executor_for(self, request: ActionRequest) -> str:
        return self.name

    @property
    def http(self) -> HTTPClient:
        if self._http is None:
            raise RuntimeError("DiscordExecutor.start() was not awaited")
        return self._http

    async def _call(
        self, route: Route, *, tolerate: tuple[int, ...] = (), **kwargs: Any
    ) -> tuple[Any, int | None]:
        """One REST call, errors turned into our tree.

        Returns (data, None), or (None, code) when Discord answered with one of the JSON error
        codes in ``tolerate`` (an outcome for the caller, not an error).
        """
        import discord

        kwargs.setdefault("timeout", aiohttp.ClientTimeout(total=self.settings.request_timeout_s))
        what = f"{route.method} {route.path}"
        try:
            return await self.http.request(route, **kwargs), None
        except discord.HTTPException as exc:
            if exc.code in tolerate:
                return None, exc.code
            raise _classify(exc, what) from exc
        except discord.RateLimited as exc:
            raise RateLimited(f"{what}: rate limited", exc.retry_after) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetriableActionError(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def post_line(self, community: str, channel: str, text: str) -> None:
        """A plain message in a guild channel (the mod-log), mentioning nobody."""
        from discord.http import Route

        await self._call(
            Route("POST", "/channels/{channel_id}/messages", channel_id=channel),
            json={"content": text[:2000], "allowed_mentions": {"parse": []}},
        )

    # -- actions ------------------------------------------------------------------------------

    async def execute(self, request: ActionRequest) -> Outcome:
        return await run_handler(
            "discord",
            request,
            {
                ActionKind.DELETE: self._delete,
                ActionKind.TIMEOUT: self._timeout,
                ActionKind.KICK: self._kick,
                ActionKind.BAN: self._ban,
                ActionKind.WARN: self._warn,
                ActionKind.RAID_MODE: self._raid_mode,
                ActionKind.RAID_MODE_OFF: self._raid_mode_off,
                ActionKind.UNTIMEOUT: self._untimeout,
                ActionKind.UNBAN: self._unban,
            },
        )

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        if request.kind is ActionKind.KICK:
            return await self._reconcile_kick(request, started_at)
        if request.kind is ActionKind.BAN:
            return await self._reconcile_ban(request)
        if request.kind is ActionKind.WARN:
            return await self._warn(request, check_first=True)
        # delete and timeout are idempotent in effect: finishing them is doing them.
        return await self.execute(request)

    async def _delete(self, request: ActionRequest) -> Outcome:
        from discord.http import Route

        route = Route(
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}",
            channel_id=request.channel,
            message_id=request.target_message_id,
        )
        _, gone = await self._call(route, reason=_reason(request), tolerate=(UNKNOWN_MESSAGE,))
        if gone:
            return Outcome.done("already deleted (Unknown Message)")
        return Outcome.done("message deleted")

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        from discord.http import Route

        if len(requests) == 1:
            return await self._delete(requests[0])
        channels = {r.channel for r in requests}
        if len(channels) != 1 or len(requests) > BULK_MAX:
            raise ValueError("a bulk delete takes 2-100 messages of one channel")
        ids = sorted({r.target_message_id for r in requests})
        route = Route(
            "POST", "/channels/{channel_id}/messages/bulk-delete", channel_id=requests[0].channel
        )
        await self._call(
            route,
            json={"messages": ids},
            reason=f"ChatWarden: {len(ids)} messages ({requests[0].severity.value} and others)",
        )
        return Outcome.done(f"bulk deleted with {len(ids) - 1} other messages")

    async def _timeout(self, request: ActionRequest) -> Outcome:
        seconds = request.duration_s or 600
        until = request.requested_at + timedelta(seconds=seconds)
        route = _guild_user_route("PATCH", "members", request)
        _, left = await self._call(
            route,
            json={"communication_disabled_until": until.isoformat()},
            reason=_reason(request),
            tolerate=(UNKNOWN_MEMBER,),
        )
        if left:
            return Outcome.skipped("not a member any more (Unknown Member)")
        return Outcome.done(f"timed out until {until.isoformat()}")

    async def _kick(self, request: ActionRequest) -> Outcome:
        route = _guild_user_route("DELETE", "members", request)
        _, gone = await self._call(route, reason=_reason(request), tolerate=(UNKNOWN_MEMBER,))
        if gone:
            return Outcome.done("not a member (already gone)")
        return Outcome.done("kicked")

    async def _reconcile_kick(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        route = _guild_user_route("GET", "members", request)
        member, gone = await self._call(route, tolerate=(UNKNOWN_MEMBER,))
        if gone or not isinstance(member, dict):
            return Outcome.done("not a member: kicked before the restart, or left")
        joined = _parse_time(member.get("joined_at"))
        if joined is not None and started_at is not None and joined > started_at:
            return Outcome.done("rejoined after the kick started; not kicked again")
        return await self._kick(request)

    async def _ban(self, request: ActionRequest) -> Outcome:
        route = _guild_user_route("PUT", "bans", request)
        await self._call(route, json={"delete_message_seconds": 0}, reason=_reason(request))
        return Outcome.done("banned")

    async def _reconcile_ban(self, request: ActionRequest) -> Outcome:
        route = _guild_user_route("GET", "bans", request)
        _, unknown = await self._call(route, tolerate=(UNKNOWN_BAN,))
        if not unknown:
            return Outcome.done("already banned")
        return await self._ban(request)

    async def _untimeout(self, request: ActionRequest) -> Outcome:
        route = _guild_user_route("PATCH", "members", request)
        _, left = await self._call(
            route,
            json={"communication_disabled_until": None},
            reason=_reason(request),
            tolerate=(UNKNOWN_MEMBER,),
        )
        if left:
            return Outcome.skipped("not a member any more (Unknown Member)")
        return Outcome.done("timeout removed")

    async def _unban(self, request: ActionRequest) -> Outcome:
        route = _guild_user_route("DELETE", "bans", request)
        _, unknown = await self._call(route, reason=_reason(request), tolerate=(UNKNOWN_BAN,))
        if unknown:
            return Outcome.done("not banned any more (Unknown Ban)")
        return Outcome.done("unbanned")

    async def _raid_mode(self, request: ActionRequest) -> Outcome:
        """Slowmode on the channel and a higher verification level on the guild, each only
        where it is stricter than what is set (a moderator's stricter choice stays)."""
        from discord.http import Route

        done: list[str] = []
        notes: list[str] = []
        restore: dict[str, Any] = {}
        for mode in dict.fromkeys(request.modes):
            if mode is RaidMode.SLOW:
                want = self.settings.raid_slowmode_s
                route = Route("GET", "/channels/{channel_id}", channel_id=request.channel)
                channel, _ = await self._call(route)
                have = int((channel or {}).get("rate_limit_per_user") or 0)
                if have >= want:
                    notes.append(f"slowmode already {have} s")
                    continue
                route = Route("PATCH", "/channels/{channel_id}", channel_id=request.channel)
                await self._call(route, json={"rate_limit_per_user": want}, reason=_reason(request))
                restore["slowmode"] = {"channel": request.channel, "before": have, "set": want}
                done.append(f"slowmode {want} s")
            elif mode is RaidMode.VERIFICATION:
                level = self.settings.raid_verification_level
                route = Route("GET", "/guilds/{guild_id}", guild_id=request.community)
                guild, _ = await self._call(route)
                have = int((guild or {}).get("verification_level") or 0)
                if have >= level:
                    notes.append(f"verification level already {have}")
                    continue
                route = Route("PATCH", "/guilds/{guild_id}", guild_id=request.community)
                await self._call(route, json={"verification_level": level}, reason=_reason(request))
                restore["verification"] = {"before": have, "set": level}
                done.append(f"verification level {have} -> {level}")
            else:
                notes.append(f"{mode.value} is Twitch's (Discord has none): skipped")
        if not done and not any("already" in note for note in notes):
            return Outcome.skipped("; ".join(notes) or "raid mode without modes: nothing to do")
        head = ("raid mode on: " + ", ".join(done)) if done else "raid mode already on"
        return Outcome.done("; ".join([head, *notes]), restore)

    async def _raid_mode_off(self, request: ActionRequest) -> Outcome:
        """Put back the slowmode and verification level raid mode raised, each only while it
        still has raid mode's value."""
        from discord.http import Route

        restore = request.restore or {}
        back: list[str] = []
        notes: list[str] = []
        slow = restore.get("slowmode")
        if isinstance(slow, dict):
            channel = str(slow.get("channel") or request.channel)
            route = Route("GET", "/channels/{channel_id}", channel_id=channel)
            found, _ = await self._call(route)
            have = int((found or {}).get("rate_limit_per_user") or 0)
            before = int(slow.get("before") or 0)
            if have == slow.get("set"):
                route = Route("PATCH", "/channels/{channel_id}", channel_id=channel)
                await self._call(
                    route, json={"rate_limit_per_user": before}, reason=_reason(request)
                )
                back.append(f"slowmode back to {before} s")
            else:
                notes.append(_unchanged("slowmode", have, before))
        level = restore.get("verification")
        if isinstance(level, dict):
            route = Route("GET", "/guilds/{guild_id}", guild_id=request.community)
            guild, _ = await self._call(route)
            have = int((guild or {}).get("verification_level") or 0)
            before = int(level.get("before") or 0)
            if have == level.get("set"):
                route = Route("PATCH", "/guilds/{guild_id}", guild_id=request.community)
                json = {"verification_level": before}
                await self._call(route, json=json, reason=_reason(request))
                back.append(f"verification level back to {before}")
            else:
                notes.append(_unchanged("verification level", have, before))
        if not back and not notes:
            return Outcome.skipped("raid mode turned nothing on: nothing to turn off")
        head = ("raid mode off: " + ", ".join(back)) if back else "raid mode: nothing to undo"
        return Outcome.done("; ".join([head, *notes]))

    async def _warn(self, request: ActionRequest, *, check_first: bool = False) -> Outcome:
        from discord.http import Route

        dm = self._dm_channels.get(request.user)
        if dm is None:
            channel, unknown = await self._call(
                Route("POST", "/users/@me/channels"),
                json={"recipient_id": request.user},
                tolerate=(UNKNOWN_USER,),
            )
            if unknown or not isinstance(channel, dict):
                return Outcome.skipped("unknown user (Unknown User)")
            dm = str(channel["id"])
            # A user's DM channel never changes: opening it once saves a rate-limited call.
            self._dm_channels[request.user] = dm
            if len(self._dm_channels) > DM_CACHE:
                self._dm_channels.popitem(last=False)
        ref = dm_reference(request.action_id)
        if check_first:
            history, _ = await self._call(
                Route("GET", "/channels/{channel_id}/messages", channel_id=dm),
                params={"limit": DM_HISTORY},
            )
            if any(ref in str(m.get("content", "")) for m in history or [] if isinstance(m, dict)):
                return Outcome.done("warning was already sent (found in the DM channel)")
        text = (request.notice or request.reason)[:1900] + f"\n-# {ref}"
        _, closed = await self._call(
            Route("POST", "/channels/{channel_id}/messages", channel_id=dm),
            json={
                "content": text,
                "nonce": nonce(request.action_id),
                "enforce_nonce": True,
                "components": dispute_components(request),
            },
            tolerate=(CANNOT_DM,),
        )
        if closed:
            return Outcome.skipped("the user does not accept DMs (50007)")
        return Outcome.done("warning sent by DM")


def _unchanged(what: str, have: int, before: int) -> str:
    if have == before:
        return f"{what} already back to {before}"
    return f"{what} changed since raid mode ({have}): left as it is"


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _classify(exc: Any, what: str) -> Exception:
    """A discord.py HTTPException as our error: what may succeed later, what never will."""
    status: int = exc.status
    detail = f"{what}: {status} (code {exc.code}) {exc.text}".strip()
    if status == 429:
        retry_after = _retry_after(exc)
        scope = "global" if _header(exc, "X-RateLimit-Global") else "route"
        return RateLimited(detail, retry_after, scope=scope)
    if status >= 500 or status == 408:
        return RetriableActionError(detail)
    # 400 (bad request), 401 (token), 403 (missing permissions / access), 404 (unknown ...)
    return PermanentActionError(detail)


def _header(exc: Any, name: str) -> str | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers.get(name) if headers is not None else None


def _retry_after(exc: Any) -> float:
    for name in ("X-RateLimit-Reset-After", "Retry-After"):
        value = _header(exc, name)
        if value:
            try:
                return float(value)
            except ValueError:
                continue
    return 1.0

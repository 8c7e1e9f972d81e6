"""Twitch: delete a chat message, time out, ban, warn and raid mode, through the Helix API.

Ids: the Twitch adapter publishes ``community`` = the ``room-id`` tag (the broadcaster's user
id: Helix's ``broadcaster_id``), ``user`` = the ``user-id`` tag and ``message_id`` = the ``id``
tag (the message UUID Helix deletes by); ``channel`` (``#login``) is not needed. Every call is
made as the moderator whose user token is ``WARDEN_PLATFORMS__TWITCH__API_TOKEN``
(``moderator_id``: the token's user, looked up at start unless set).

Rate limits: Helix keeps a points bucket per token and says where it stands on every answer
(``Ratelimit-Limit``, ``Ratelimit-Remaining``, ``Ratelimit-Reset``: the epoch second it is full
again). ``HelixBucket`` follows those headers: when the bucket is empty no call goes out before
the reset, and a 429 empties it until its ``Ratelimit-Reset``, after which the call is tried
again: the 429 reaches the dispatcher as ``RateLimited`` with the time left until the reset,
which it waits out (not a failed try) without holding a slot.

Per action, and how one found in flight after a restart is finished (``reconcile``):

- delete: ``DELETE /moderation/chat`` (never without a message id: Helix clears the whole chat
  then). 404 = already deleted (or older than Twitch keeps). Repeated.
- timeout: ``POST /moderation/bans`` with ``duration`` (at most 1,209,600 s, Twitch's maximum).
  400 "already banned" = done: a ban outlasts any timeout. Reconciled by ``GET
  /moderation/banned`` first: timed out or banned = done; otherwise timed out for what is left
  of the intended time (nothing is left: skipped, not repeated).
- ban: ``POST /moderation/bans`` without ``duration``; 400 "already banned" = done, so repeating
  it is finishing it.
- kick: Twitch has no kick (no membership to end). A kick is a ``kick_timeout_s`` timeout
  (default 1 s: the "purge" streamers know, which clears the user's lines from chat), and never
  shortens a running timeout or a ban: ``GET /moderation/banned`` first. Repeated the same way.
- warn: ``POST /moderation/warnings`` (the user must acknowledge it before chatting again).
  Helix cannot list warnings, so one in flight at a restart is not repeated (skipped, saying
  so); one that Helix answered with 500/503 was not given and is tried again.
- raid_mode: ``GET /chat/settings``, then one ``PATCH /chat/settings`` turning on what
  ``request.modes`` asks and is not on yet: ``slow`` (``raid_slow_s``), ``followers``
  (``raid_followers_minutes``), ``emote_only``. It never loosens what a moderator set (a longer
  slow mode stays). ``verification`` is Discord's: skipped with a note. Repeated (idempotent).
  The outcome's ``restore`` says what it changed and what was set before (``raid_restore``).
- raid_mode_off (``duration_s`` later, ``actioners.timers``): ``GET /chat/settings``, then one
  ``PATCH`` putting back what was set before, for each mode that still has the value raid mode
  set (one a moderator changed since is left as it is). Repeated (idempotent: a mode already
  back is left alone). A raid mode reconciled after its PATCH went through finds its own values
  on and so has nothing to restore: its off changes nothing (never loosening what it cannot
  tell apart from a moderator's choice).
- unban and untimeout (an overturn): ``DELETE /moderation/bans`` (both lift a ban or a
  timeout); 400 "not banned" = done (nothing to lift any more). Repeated.
- hold: no call at all (skipped, "held for review").

Errors: 5xx, 408 and network failures are retriable; 400, 401, 403, 404 are permanent, with
Helix's message in the one-line detail.

Tokens: a user token expires after about four hours. With ``refresh_token`` and
``client_secret`` set, a 401 trades the refresh token for a new pair at ``auth_url``
(``POST /token``, once for all callers in flight, at most once a minute) and the call is made
again with the new token; the token is also validated hourly (``GET /validate``, as Twitch asks
of every app) and refreshed when it has under ten minutes left. The new tokens live in memory
only (Twitch rotates the refresh token: restart with the latest one if the first is revoked).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from actioners.executors import Outcome, RateLimited, run_handler
from core.errors import ConfigError, PermanentActionError, RetriableActionError, TransientError
from core.settings import TwitchSettings
from core.twitch_auth import TokenRefused, refresh_user_token
from schemas.events import ActionKind, ActionRequest, RaidMode, utcnow

logger = logging.getLogger(__name__)

MAX_TIMEOUT_S = 1_209_600
REASON_MAX = 500
DEFAULT_TIMEOUT_S = 600
# Answers that mean Helix did not act (an edge's 502/504 may come after it did).
NOT_ACTED = frozenset({500, 503})
TOKEN_VAR = "WARDEN_PLATFORMS__TWITCH__API_TOKEN"  # noqa: S105 - a variable name
REFRESH_VAR = "WARDEN_PLATFORMS__TWITCH__REFRESH_TOKEN"
# A token with less than this left is refreshed by the hourly validation.
REFRESH_BEFORE_S = 600
# No second refresh this soon after one: a 401 that a new token does not cure is not expiry.
REFRESH_GAP_S = 60.0


class HelixBucket:
    """Where a token's points bucket stands, as Helix's ``Ratelimit-*`` headers last said.

    ``reserve`` takes a point and says how long to wait first: nothing while points are left
    (or before the first answer), until ``Ratelimit-Reset`` once they are gone. Each answer's
    headers set the count again (Helix's word is final; points spent by other clients of the
    same token show there).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at = 0.0

    def reserve(self) -> float:
        """Take a point; return the seconds to wait before the call (0: go now)."""
        now = self.clock()
        if self.remaining is None:
            return 0.0
        if self.remaining <= 0 and now >= self.reset_at:
            # Refilled at the reset; until an answer says more, count on a full bucket.
            self.remaining = self.limit if self.limit else None
            if self.remaining is None:
                return 0.0
        if self.remaining > 0:
            self.remaining -= 1
            return 0.0
        return self.reset_at - now

    def update(self, headers: Mapping[str, str]) -> None:
        """Read ``Ratelimit-Limit``, ``-Remaining`` and ``-Reset`` from an answer."""
        limit = _int(headers.get("Ratelimit-Limit"))
        remaining = _int(headers.get("Ratelimit-Remaining"))
        reset = _float(headers.get("Ratelimit-Reset"))
        if limit is not None:
            self.limit = limit
        if remaining is not None:
            self.remaining = remaining
        if reset is not None:
            self.reset_at = reset

    def empty(self, reset_at: float | None) -> None:
        """A 429: no points until ``reset_at`` (epoch seconds; unknown: one second from now)."""
        self.remaining = 0
        self.reset_at = reset_at if reset_at is not None else self.clock() + 1.0

    def wait_s(self) -> float:
        """Seconds until the reset (0 when it has passed)."""
        return max(0.0, self.reset_at - self.clock())

    async def acquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Wait until a point is ours."""
        while (wait := self.reserve()) > 0:
            await sleep(wait)


@dataclass(frozen=True)
class Answer:
    status: int
    data: Any
    message: str


def timeout_seconds(request: ActionRequest) -> int:
    """A timeout's length for Helix: the request's (600 s by default), at most 14 days."""
    return min(request.duration_s or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)


def left_of_timeout(request: ActionRequest, started_at: datetime | None, now: datetime) -> int:
    """Whole seconds left of a timeout started at ``started_at`` (0: its time is over)."""
    began = started_at or request.requested_at
    left = began.timestamp() + timeout_seconds(request) - now.timestamp()
    return max(0, math.ceil(left))


def raid_settings(
    modes: Sequence[RaidMode], current: Mapping[str, Any], settings: TwitchSettings
) -> tuple[dict[str, Any], list[str], list[str]]:
    """What to PATCH for ``modes`` given the channel's ``current`` chat settings.

    Returns (patch, what is turned on, notes): never loosens a mode already stricter.
    """
    patch: dict[str, Any] = {}
    on: list[str] = []
    notes: list[str] = []
    for mode in dict.fromkeys(modes):
        if mode is RaidMode.SLOW:
            wait = current.get("slow_mode_wait_time") or 0
            if current.get("slow_mode") and wait >= settings.raid_slow_s:
                notes.append(f"slow mode already on ({wait} s)")
            else:
                patch |= {"slow_mode": True, "slow_mode_wait_time": settings.raid_slow_s}
                on.append(f"slow mode {settings.raid_slow_s} s")
        elif mode is RaidMode.FOLLOWERS:
            minutes = current.get("follower_mode_duration") or 0
            if current.get("follower_mode") and minutes >= settings.raid_followers_minutes:
                notes.append(f"followers-only already on ({minutes} min)")
            else:
                patch |= {
                    "follower_mode": True,
                    "follower_mode_duration": settings.raid_followers_minutes,
                }
                on.append(f"followers-only {settings.raid_followers_minutes} min")
        elif mode is RaidMode.EMOTE_ONLY:
            if current.get("emote_mode"):
                notes.append("emote-only already on")
            else:
                patch["emote_mode"] = True
                on.append("emote-only")
        else:
            notes.append(f"{mode.value} is Discord's (Twitch has none): skipped")
    return patch, on, notes


# Each mode with the setting that goes with it: restored together.
MODE_KEYS = (
    ("slow_mode", "slow_mode_wait_time", "slow mode"),
    ("follower_mode", "follower_mode_duration", "followers-only"),
    ("emote_mode", None, "emote-only"),
)


def raid_restore(patch: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """What a raid mode's ``patch`` changed, and what ``current`` had before, per mode."""
    restore: dict[str, Any] = {}
    for flag, value, _ in MODE_KEYS:
        if flag in patch:
            keys = [k for k in (flag, value) if k is not None]
            restore[flag] = {
                "set": {k: patch.get(k) for k in keys},
                "before": {k: current.get(k) for k in keys},
            }
    return restore


def off_settings(
    restore: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """What to PATCH to undo a raid mode (``raid_restore``) given the ``current`` settings.

    Returns (patch, what is put back, notes): a mode is put back only while it still has what
    raid mode set; one a moderator changed since is left alone.
    """
    patch: dict[str, Any] = {}
    back: list[str] = []
    notes: list[str] = []
    for flag, value, name in MODE_KEYS:
        change = restore.get(flag)
        if not isinstance(change, Mapping):
            continue
        was: Mapping[str, Any] = change.get("before") or {}
        set_: Mapping[str, Any] = change.get("set") or {}
        if all(current.get(k) == v for k, v in set_.items()):
            if was.get(flag):
                patch |= {k: v for k, v in was.items() if v is not None}
                back.append(f"{name} back to {was.get(value) if value else 'on'}")
            else:
                patch[flag] = False
                back.append(f"{name} off")
        elif all(current.get(k) == v for k, v in was.items()):
            notes.append(f"{name} already as before")
        else:
            notes.append(f"{name} changed since raid mode: left as it is")
    return patch, back, notes


class TwitchExecutor:
    name = "twitch"
    bulk_delete_max = 0
    refresh_gap_s = REFRESH_GAP_S

    def __init__(self, settings: TwitchSettings) -> None:
        if settings.api_token is None:
            raise ConfigError(f"{TOKEN_VAR}: needed by the twitch executor")
        if not settings.client_id:
            raise ConfigError("WARDEN_PLATFORMS__TWITCH__CLIENT_ID: needed by the twitch executor")
        self.settings = settings
        self.base_url = settings.api_base_url.rstrip("/")
        self.bucket = HelixBucket()
        self.moderator_id = settings.moderator_id or ""
        self._session: aiohttp.ClientSession | None = None
        # Warnings whose last try Helix answered with 500/503: not given, so tried again.
        self._unsent_warnings: set[str] = set()
        self._token = settings.api_token.get_secret_value()
        self._refresh_token = (
            settings.refresh_token.get_secret_value() if settings.refresh_token else None
        )
        self._refresh_lock = asyncio.Lock()
        self._refreshed_at = -math.inf
        self._validator: asyncio.Task[None] | None = None

    @property
    def refreshable(self) -> bool:
        return self._refresh_token is not None and self.settings.client_secret is not None

    async def start(self) -> None:
        assert self.settings.client_id is not None
        self._session = aiohttp.ClientSession(
            headers={"Client-Id": self.settings.client_id},
            timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_s),
        )
        # Fail fast on a bad token or client id; learn whose token it is.
        try:
            answer = await self._call("GET", "/users")
        except PermanentActionError as exc:
            await self.close()
            culprit = (
                "WARDEN_PLATFORMS__TWITCH__CLIENT_ID" if "Client ID" in str(exc) else TOKEN_VAR
            )
            raise ConfigError(f"{culprit}: Twitch refused it ({exc})") from exc
        users = answer.data.get("data") if isinstance(answer.data, dict) else None
        token_user = str(users[0]["id"]) if users else ""
        if self.moderator_id and token_user and self.moderator_id != token_user:
            await self.close()
            raise ConfigError(
                "WARDEN_PLATFORMS__TWITCH__MODERATOR_ID: must be the token's user id"
                f" ({token_user}), since Helix acts as the token's user"
            )
        self.moderator_id = self.moderator_id or token_user
        if self.refreshable:
            self._validator = asyncio.create_task(self._validate_hourly(), name="twitch-validate")
        logger.info("twitch executor on %s as moderator %s", self.base_url, self.moderator_id)

    async def close(self) -> None:
        if self._validator is not None:
            self._validator.cancel()
            await asyncio.gather(self._validator, return_exceptions=True)
            self._validator = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def executor_for(self, request: ActionRequest) -> str:
        return self.name

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        tolerate: tuple[int, ...] = (),
        refreshed: bool = False,
    ) -> Answer:
        """One Helix call, the bucket kept and errors turned into our tree.

        Returns the answer when it is 2xx or its status is in ``tolerate`` (an outcome for the
        caller to read); raises otherwise. A 401 with a refreshable token refreshes it and
        makes the call once more.
        """
        if self._session is None:
            raise RuntimeError("TwitchExecutor.start() was not awaited")
        what = f"{method} {path}"
        await self.bucket.acquire()
        token = self._token
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                status = response.status
                headers = dict(response.headers)
                data = await response.json(content_type=None) if status != 204 else None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise RetriableActionError(f"{what}: {type(exc).__name__}: {exc}") from exc
        self.bucket.update(headers)
        message = str(data.get("message", "")) if isinstance(data, dict) else ""
        if status == 429:
            # Nothing more goes out before the reset (the bucket holds every caller); the
            # dispatcher waits it out without holding a slot and tries again.
            self.bucket.empty(_float(headers.get("Ratelimit-Reset")))
            raise RateLimited(f"{what}: 429 {message}".strip(), self.bucket.wait_s())
        if 200 <= status < 300 or status in tolerate:
            return Answer(status, data, message)
        if status == 401 and not refreshed and await self.refresh(token):
            return await self._call(
                method, path, params=params, json=json, tolerate=tolerate, refreshed=True
            )
        detail = f"{what}: {status} {message}".strip()
        if status >= 500 or status == 408:
            raise HelixServerError(detail, status)
        raise PermanentActionError(detail)

    def _ids(self, request: ActionRequest, **more: str) -> dict[str, str]:
        return {"broadcaster_id": request.community, "moderator_id": self.moderator_id, **more}

    # -- actions ------------------------------------------------------------------------------

    async def execute(self, request: ActionRequest) -> Outcome:
        return await run_handler(
            "twitch",
            request,
            {
                ActionKind.DELETE: self._delete,
                ActionKind.TIMEOUT: self._timeout,
                ActionKind.BAN: self._ban,
                ActionKind.KICK: self._kick,
                ActionKind.WARN: self._warn,
                ActionKind.RAID_MODE: self._raid_mode,
                ActionKind.RAID_MODE_OFF: self._raid_mode_off,
                ActionKind.UNBAN: self._unban,
                ActionKind.UNTIMEOUT: self._unban,
            },
        )

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        if request.kind is ActionKind.TIMEOUT:
            return await self._reconcile_timeout(request, started_at)
        if request.kind is ActionKind.WARN and request.action_id not in self._unsent_warnings:
            return Outcome.skipped(
                "in flight at a restart (or its answer was lost): Helix cannot list warnings,"
                " so it is not repeated"
            )
        # delete, ban, kick (checked first), raid mode: finishing them is doing them.
        return await self.execute(request)

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        raise NotImplementedError("Helix has no bulk delete of chosen messages")

    async def _delete(self, request: ActionRequest) -> Outcome:
        if not request.target_message_id:
            # Without message_id Helix deletes every message in the chat.
            raise PermanentActionError("DELETE /moderation/chat: no message id")
        answer = await self._call(
            "DELETE",
            "/moderation/chat",
            params=self._ids(request, message_id=request.target_message_id),
            tolerate=(404,),
        )
        if answer.status == 404:
            return Outcome.done("already deleted (404: not found)")
        return Outcome.done("message deleted")

    async def _ban_call(self, request: ActionRequest, duration: int | None) -> Answer:
        data: dict[str, Any] = {"user_id": request.user, "reason": request.reason[:REASON_MAX]}
        if duration is not None:
            data["duration"] = duration
        return await self._call(
            "POST",
            "/moderation/bans",
            params=self._ids(request),
            json={"data": data},
            tolerate=(400,),
        )

    async def _timed_out(self, request: ActionRequest, seconds: int, what: str) -> Outcome:
        answer = await self._ban_call(request, seconds)
        if answer.status == 400:
            if _already_banned(answer.message):
                return Outcome.done("already banned (a ban outlasts a timeout)")
            raise PermanentActionError(f"POST /moderation/bans: 400 {answer.message}")
        return Outcome.done(what)

    async def _timeout(self, request: ActionRequest) -> Outcome:
        seconds = timeout_seconds(request)
        capped = " (Twitch's maximum)" if (request.duration_s or 0) > MAX_TIMEOUT_S else ""
        return await self._timed_out(request, seconds, f"timed out for {seconds} s{capped}")

    async def _reconcile_timeout(
        self, request: ActionRequest, started_at: datetime | None
    ) -> Outcome:
        ban = await self._current_ban(request)
        if ban is not None:
            return Outcome.done(_describe_ban(ban, "already"))
        left = left_of_timeout(request, started_at, utcnow())
        if left <= 0:
            return Outcome.skipped("interrupted, and the timeout's time is over: not repeated")
        return await self._timed_out(request, left, f"timed out for the {left} s left")

    async def _ban(self, request: ActionRequest) -> Outcome:
        answer = await self._ban_call(request, None)
        if answer.status == 400:
            if _already_banned(answer.message):
                return Outcome.done("already banned")
            raise PermanentActionError(f"POST /moderation/bans: 400 {answer.message}")
        return Outcome.done("banned")

    async def _unban(self, request: ActionRequest) -> Outcome:
        answer = await self._call(
            "DELETE",
            "/moderation/bans",
            params=self._ids(request, user_id=request.user),
            tolerate=(400,),
        )
        if answer.status == 400:
            if "not banned" in answer.message.lower():
                return Outcome.done("not banned or timed out any more")
            raise PermanentActionError(f"DELETE /moderation/bans: 400 {answer.message}")
        lifted = "ban" if request.kind is ActionKind.UNBAN else "timeout"
        return Outcome.done(f"{lifted} lifted")

    async def _current_ban(self, request: ActionRequest) -> dict[str, Any] | None:
        """The user's running ban or timeout in the channel (None: neither)."""
        answer = await self._call(
            "GET",
            "/moderation/banned",
            params={"broadcaster_id": request.community, "user_id": request.user},
        )
        rows = answer.data.get("data") if isinstance(answer.data, dict) else None
        for row in rows or []:
            if isinstance(row, dict) and str(row.get("user_id")) == request.user:
                return row
        return None

    async def _kick(self, request: ActionRequest) -> Outcome:
        seconds = self.settings.kick_timeout_s
        ban = await self._current_ban(request)
        if ban is not None:
            ends = _parse_time(ban.get("expires_at"))
            if ends is None or ends.timestamp() >= time.time() + seconds:
                return Outcome.done(_describe_ban(ban, "no kick on Twitch; already"))
        return await self._timed_out(
            request, seconds, f"timed out for {seconds} s (Twitch has no kick)"
        )

    async def _warn(self, request: ActionRequest) -> Outcome:
        reason = (request.notice or request.reason)[:REASON_MAX]
        try:
            await self._call(
                "POST",
                "/moderation/warnings",
                params=self._ids(request),
                json={"data": {"user_id": request.user, "reason": reason}},
            )
        except HelixServerError as exc:
            if exc.status in NOT_ACTED:
                self._unsent_warnings.add(request.action_id)
            else:
                self._unsent_warnings.discard(request.action_id)
            raise
        except RetriableActionError:
            self._unsent_warnings.discard(request.action_id)  # no answer: it may have gone
            raise
        self._unsent_warnings.discard(request.action_id)
        return Outcome.done("warned (Twitch warning)")

    async def _chat_settings(self, request: ActionRequest) -> dict[str, Any]:
        answer = await self._call("GET", "/chat/settings", params=self._ids(request))
        rows = answer.data.get("data") if isinstance(answer.data, dict) else None
        return rows[0] if rows and isinstance(rows[0], dict) else {}

    async def _raid_mode(self, request: ActionRequest) -> Outcome:
        if not request.modes:
            return Outcome.skipped("raid mode without modes: nothing to turn on")
        current = await self._chat_settings(request)
        patch, on, notes = raid_settings(request.modes, current, self.settings)
        if not on and not any("already" in note for note in notes):
            return Outcome.skipped("; ".join(notes))
        if patch:
            await self._call("PATCH", "/chat/settings", params=self._ids(request), json=patch)
        detail = ("raid mode on: " + ", ".join(on)) if on else "raid mode already on"
        return Outcome.done("; ".join([detail, *notes]), raid_restore(patch, current))

    async def _raid_mode_off(self, request: ActionRequest) -> Outcome:
        if not request.restore:
            return Outcome.skipped("raid mode turned nothing on: nothing to turn off")
        current = await self._chat_settings(request)
        patch, back, notes = off_settings(request.restore, current)
        if patch:
            await self._call("PATCH", "/chat/settings", params=self._ids(request), json=patch)
        detail = ("raid mode off: " + ", ".join(back)) if back else "raid mode: nothing to undo"
        return Outcome.done("; ".join([detail, *notes]))

    async def refresh(self, stale: str, *, refused: bool = True) -> bool:
        """Trade the refresh token for a new pair, unless ``stale`` is no longer the token in
        use (another caller refreshed it). False when no refresh was possible or due: a token
        Helix ``refused`` is not refreshed again within ``refresh_gap_s`` of the last refresh."""
        if not self.refreshable or self._session is None:
            return False
        async with self._refresh_lock:
            if self._token != stale:
                return True
            if refused and time.monotonic() - self._refreshed_at < self.refresh_gap_s:
                return False
            self._refreshed_at = time.monotonic()
            assert self._refresh_token is not None and self.settings.client_secret is not None
            try:
                pair = await refresh_user_token(
                    self._session,
                    self.settings.auth_url,
                    client_id=self.settings.client_id or "",
                    client_secret=self.settings.client_secret.get_secret_value(),
                    refresh_token=self._refresh_token,
                    variable=REFRESH_VAR,
                )
            except TransientError as exc:
                raise RetriableActionError(str(exc)) from exc
            except TokenRefused as exc:
                raise PermanentActionError(str(exc)) from exc
            self._token, self._refresh_token = pair.access_token, pair.refresh_token
            logger.info("twitch user token refreshed (expires in %s s)", pair.expires_in)
            return True

    async def _validate_hourly(self) -> None:
        """Twitch asks every app to validate its user tokens hourly; one about to expire (or
        already refused) is refreshed here rather than by the next action's 401."""
        assert self._session is not None
        url = self.settings.auth_url.rstrip("/") + "/validate"
        while True:
            await asyncio.sleep(self.settings.validate_every_s)
            token = self._token
            try:
                async with self._session.get(
                    url, headers={"Authorization": f"OAuth {token}"}
                ) as response:
                    status = response.status
                    data = await response.json(content_type=None)
                left = data.get("expires_in") if isinstance(data, dict) else None
                if status == 401 or (isinstance(left, int) and 0 < left < REFRESH_BEFORE_S):
                    await self.refresh(token, refused=status == 401)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                logger.warning("twitch token validation failed: %s: %s", type(exc).__name__, exc)
            except PermanentActionError as exc:
                logger.error("%s", exc)


class HelixServerError(RetriableActionError):
    """Helix answered 5xx or 408: may succeed later."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _already_banned(message: str) -> bool:
    return "already banned" in message.lower()


def _describe_ban(ban: Mapping[str, Any], prefix: str) -> str:
    ends = ban.get("expires_at")
    return f"{prefix} banned" if not ends else f"{prefix} timed out until {ends}"


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

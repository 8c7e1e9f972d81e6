"""Slack: delete a message, post an ephemeral warning, remove a user from a channel (slack_sdk).

Slack's rate limits are per method per workspace, by tier (Tier 3: about 50 calls a minute,
Tier 4: about 100), with bursts tolerated; a 429 carries ``Retry-After`` in seconds. Calls go
through a token bucket per (workspace, method) sized by the method's tier, and a 429 stops
that method for the whole workspace until ``Retry-After`` has passed, then the dispatcher
tries again. slack_sdk's own retry handlers are off: retries are the dispatcher's, and they
know which calls may be repeated.

Per action, and how an action found in flight after a restart is finished (``reconcile``):

- delete: ``chat.delete`` (channel, ts: the message id is ``<channel>:<ts>``, as the Slack
  adapter writes it, since a ts is unique only within its channel); ``message_not_found`` = already
  deleted. Repeated. Deleting other people's messages needs a workspace admin's user token
  (``WARDEN_PLATFORMS__SLACK__ADMIN_TOKEN``); the bot token is used without one.
- warn: ``chat.postEphemeral`` to the author in the channel, with a "Dispute" button
  (``warning_blocks``; answered by ``actioners.bots.slack``). Ephemeral messages cannot be
  looked up, so an in-flight warning is not repeated (skipped, saying so).
- kick and ban: ``conversations.kick`` from the channel (a bot has no workspace ban);
  ``not_in_channel`` = already out. Repeated.
- timeout: Slack has none; skipped.
- unban, untimeout (an overturn): skipped, since a bot can neither ban nor time out on Slack
  (a "ban" removed the user from the channel; they may rejoin or be invited back).
- raid_mode (and raid_mode_off): Slack channels have no slow, followers-only or emote-only
  mode; skipped, saying so.
- hold: no call (skipped, "held for review").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from actioners.executors import Outcome, RateLimited, held, unsupported
from core.errors import ConfigError, PermanentActionError, RetriableActionError
from core.settings import SlackSettings
from schemas.events import ActionKind, ActionRequest

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

logger = logging.getLogger(__name__)

# Calls per minute by tier, and each method's tier (api.slack.com/docs/rate-limits).
TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIER = {
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "chat.postMessage": 4,
    "conversations.kick": 3,
    "auth.test": 4,
}
# The warning's "Dispute" button (block action id; its value is the message id), answered by
# the interactivity endpoint (actioners.bots.slack).
DISPUTE_ACTION = "warden_dispute"
RETRIABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class TierLimiter:
    """A token bucket per (workspace, method): ``per_minute`` calls, bursts of a fifth of it.

    Callers reserve a token (going into debt when none is left) and sleep until it is theirs,
    so waiting callers are served in order without a lock.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 5.0)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.blocked_until = 0.0

    def block(self, seconds: float) -> None:
        """A 429: nothing more for ``seconds``."""
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)

    def reserve(self) -> float:
        """Take the next token; return how many seconds to wait until it is due."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        debt = -self.tokens / self.rate if self.tokens < 0 else 0.0
        return max(debt, self.blocked_until - now, 0.0)

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


class SlackExecutor:
    name = "slack"
    bulk_delete_max = 0

    def __init__(self, settings: SlackSettings) -> None:
        if settings.bot_token is None:
            raise ConfigError("WARDEN_PLATFORMS__SLACK__BOT_TOKEN: needed by the slack executor")
        self.settings = settings
        self._bot: AsyncWebClient | None = None
        self._admin: AsyncWebClient | None = None
        self._limiters: dict[tuple[str, str], TierLimiter] = {}
        self._session: aiohttp.ClientSession | None = None

    def _client(self, token: str) -> AsyncWebClient:
        from slack_sdk.web.async_client import AsyncWebClient

        return AsyncWebClient(
            token=token,
            base_url=self.settings.api_base_url,
            timeout=max(1, round(self.settings.request_timeout_s)),
            session=self._session,
            retry_handlers=[],
        )

    async def start(self) -> None:
        assert self.settings.bot_token is not None
        # One connection pool for every call (slack_sdk opens one per call without it).
        self._session = aiohttp.ClientSession()
        self._bot = self._client(self.settings.bot_token.get_secret_value())
        if self.settings.admin_token is not None:
            self._admin = self._client(self.settings.admin_token.get_secret_value())
        # Fail fast on a bad token, like the other executors.
        try:
            await self._api(self._bot, "auth.test", "-")
        except PermanentActionError as exc:
            raise ConfigError(f"WARDEN_PLATFORMS__SLACK__BOT_TOKEN: {exc}") from exc
        logger.info("slack executor on %s", self.settings.api_base_url)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def executor_for(self, request: ActionRequest) -> str:
        return self.name

    def limiter(self, workspace: str, method: str) -> TierLimiter:
        key = (workspace, method)
        if key not in self._limiters:
            self._limiters[key] = TierLimiter(TIER_PER_MINUTE[METHOD_TIER.get(method, 3)])
        return self._limiters[key]

    async def _api(
        self,
        client: AsyncWebClient | None,
        method: str,
        workspace: str,
        *,
        tolerate: tuple[str, ...] = (),
        **params: Any,
    ) -> str | None:
        """Call ``method``; return None, or the Slack error when it is one in ``tolerate``."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        if client is None:
            raise RuntimeError("SlackExecutor.start() was not awaited")
        limiter = self.limiter(workspace, method)
        await limiter.acquire()
        try:
            await client.api_call(method, json=params)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error", "")) if response is not None else ""
            status = getattr(response, "status_code", 0)
            what = f"{method}: {status} {error}".strip()
            if status == 429 or error == "ratelimited":
                retry_after = _retry_after(getattr(response, "headers", {}))
                limiter.block(retry_after)
                raise RateLimited(what, retry_after) from exc
            if error in tolerate:
                return error
            if status >= 500 or error in RETRIABLE_ERRORS:
                raise RetriableActionError(what) from exc
            raise PermanentActionError(what) from exc
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetriableActionError(f"{method}: {type(exc).__name__}: {exc}") from exc
        return None

    async def post_line(self, community: str, channel: str, text: str) -> None:
        """A plain message in a channel the bot is in (the mod-log), links not unfurled."""
        await self._api(
            self._bot,
            "chat.postMessage",
            community,
            channel=channel,
            text=text[:3500],
            unfurl_links=False,
        )

    async def execute(self, request: ActionRequest) -> Outcome:
        if request.kind is ActionKind.HOLD:
            return held()
        if request.kind in (ActionKind.RAID_MODE, ActionKind.RAID_MODE_OFF):
            return Outcome.skipped(
                "Slack has no raid mode (no slow, followers-only or emote-only channels)"
            )
        if request.kind in (ActionKind.UNBAN, ActionKind.UNTIMEOUT):
            return Outcome.skipped(
                "Slack bots cannot ban or time out, so there is nothing to undo"
                " (a removed user may rejoin the channel or be invited back)"
            )
        workspace = request.community
        if request.kind is ActionKind.DELETE:
            gone = await self._api(
                self._admin or self._bot,
                "chat.delete",
                workspace,
                tolerate=("message_not_found",),
                channel=request.channel,
                ts=message_ts(request.target_message_id),
            )
            return Outcome.done("already deleted" if gone else "message deleted")
        if request.kind is ActionKind.WARN:
            absent = await self._api(
                self._bot,
                "chat.postEphemeral",
                workspace,
                tolerate=("user_not_in_channel",),
                channel=request.channel,
                user=request.user,
                text=(request.notice or request.reason)[:3000],
                blocks=warning_blocks(request),
            )
            if absent:
                return Outcome.skipped("the user is not in the channel any more")
            return Outcome.done("ephemeral warning posted")
        if request.kind in (ActionKind.KICK, ActionKind.BAN):
            out = await self._api(
                self._bot,
                "conversations.kick",
                workspace,
                tolerate=("not_in_channel", "user_not_in_channel"),
                channel=request.channel,
                user=request.user,
            )
            note = "" if request.kind is ActionKind.KICK else " (Slack bots cannot ban)"
            if out:
                return Outcome.done("not in the channel (already removed)" + note)
            return Outcome.done("removed from the channel" + note)
        return unsupported("slack", request.kind)

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        if request.kind is ActionKind.WARN:
            return Outcome.skipped(
                "in flight at a restart: an ephemeral warning cannot be looked up, "
                "so it is not repeated"
            )
        return await self.execute(request)

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        raise NotImplementedError("Slack has no bulk delete")


def warning_blocks(request: ActionRequest) -> list[dict[str, Any]]:
    """The warning as blocks: its text and a "Dispute" button carrying the message id."""
    text = (request.notice or request.reason)[:2900]
    button = {
        "type": "button",
        "action_id": DISPUTE_ACTION,
        "text": {"type": "plain_text", "text": "Dispute"},
        "value": request.message_id[:2000],
    }
    return [
        {"type": "section", "text": {"type": "plain_text", "text": text}},
        {"type": "actions", "elements": [button]},
    ]


def message_ts(message_id: str) -> str:
    """The Slack ``ts`` of a message id ``<channel>:<ts>`` (a bare ts is taken as it is)."""
    return message_id.rsplit(":", 1)[-1]


def _retry_after(headers: Any) -> float:
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                break
    return 1.0

"""The mod-log: a compact line per automated action, posted to the community's mod-log channel.

Off unless configured: ``WARDEN_BOTS__MODLOG_CHANNELS`` maps ``"platform:community"`` to a
channel (``{"discord:1234": "5678", "slack:T0001": "C0MODLOG"}``). Each line links the
action's review page, ``{WARDEN_REVIEW__PUBLIC_URL}/messages/{message_id}``::

    timeout 600s: user 42 in 777 (HIGH insult, p=0.93) done: <review link>

The actioner calls :meth:`ModLog.post` with the entries it has just published; lines are
posted in the background, through the platform's executor (Discord: a channel message without
mentions; Slack: ``chat.postMessage``, scope ``chat:write``, the bot invited to the channel),
grouped per channel into as few messages as the platform's length limit allows, since Discord
lets a bot post about five messages per five seconds in a channel. Twitch has no channel a bot
could keep a log in (chat is the only place): Twitch communities are skipped, and so is any
platform whose executor cannot post. A mod-log post never holds up or fails an action: each is
bounded by ``modlog_timeout_s``, failures are logged and counted, and when more than
``MAX_POSTS`` posts wait, further lines are dropped (counted) rather than queued without
bound. Delivery is at most once per publish: a result published twice after a crash (see
``actioners.service``) may log twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from actioners.executors import Router
from actioners.ledger import Entry, State
from core import metrics
from core.errors import WardenError
from core.settings import Settings
from schemas.events import Platform

logger = logging.getLogger(__name__)

MAX_POSTS = 64
# Characters per post: Discord's content limit is 2000, Slack's text 40,000 (kept short).
MESSAGE_LIMIT = {"discord": 1900, "slack": 3500}
LOGGED = (State.DONE, State.FAILED)


@runtime_checkable
class LinePoster(Protocol):
    """An executor that can post a plain line to one of the community's channels."""

    async def post_line(self, community: str, channel: str, text: str) -> None: ...


def review_link(public_url: str, message_id: str) -> str:
    """The review page of a message (the review app's ``/messages/{message_id}``)."""
    return f"{public_url.rstrip('/')}/messages/{quote(message_id, safe='')}"


def line(entry: Entry, public_url: str) -> str:
    """One action as a compact mod-log line."""
    request = entry.request
    what = request.kind.value
    if request.duration_s:
        what += f" {request.duration_s}s"
    status = "done" if entry.state is State.DONE else f"{entry.state.value} ({entry.detail[:60]})"
    return (
        f"{what}: user {request.user} in {request.channel} "
        f"({request.severity.value} {request.reason[:60]}, p={request.p_toxic:.2f}) {status}: "
        f"{review_link(public_url, request.message_id)}"
    )


def chunks(lines: Sequence[str], limit: int) -> list[str]:
    """``lines`` joined into as few texts of at most ``limit`` characters as they fit in."""
    texts: list[str] = []
    current = ""
    for text in lines:
        text = text[:limit]
        if current and len(current) + 1 + len(text) > limit:
            texts.append(current)
            current = ""
        current = f"{current}\n{text}" if current else text
    if current:
        texts.append(current)
    return texts


class ModLog:
    """Posts the lines of published actions to the configured mod-log channels."""

    def __init__(self, settings: Settings, executor: Router) -> None:
        self.channels = dict(settings.bots.modlog_channels)
        self.public_url = settings.review.public_url
        self.timeout_s = settings.bots.modlog_timeout_s
        self.executor = executor
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def post(self, entries: Sequence[Entry]) -> None:
        """Post the lines of ``entries`` in the background (returns at once)."""
        if not self.channels:
            return
        grouped: dict[tuple[str, str], list[str]] = {}
        for entry in entries:
            request = entry.request
            if entry.state not in LOGGED:
                continue
            where = f"{request.platform.value}:{request.community}"
            channel = self.channels.get(where)
            if channel is not None:
                grouped.setdefault((where, channel), []).append(line(entry, self.public_url))
        for (where, channel), lines in grouped.items():
            platform, _, community = where.partition(":")
            poster = self.executor.executors.get(Platform(platform))
            if not isinstance(poster, LinePoster):
                logger.debug("no mod-log on %s (its executor cannot post)", platform)
                continue
            for text in chunks(lines, MESSAGE_LIMIT.get(platform, 1900)):
                if len(self._tasks) >= MAX_POSTS:
                    metrics.ERRORS.labels("actioner", "modlog_dropped").inc()
                    logger.warning("mod-log behind: a post to %s dropped", where)
                    continue
                task = asyncio.create_task(self._post(poster, community, channel, text))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _post(self, poster: LinePoster, community: str, channel: str, text: str) -> None:
        try:
            await asyncio.wait_for(poster.post_line(community, channel, text), self.timeout_s)
        except (WardenError, TimeoutError, RuntimeError) as exc:  # never fails an action
            metrics.ERRORS.labels("actioner", "modlog_failed").inc()
            logger.warning("mod-log post to %s failed: %r", channel, exc)

    async def wait(self) -> None:
        """Wait for the posts under way (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

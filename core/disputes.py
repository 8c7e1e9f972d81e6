"""What every place that takes a dispute shares: its deterministic id and the per-user limit.

Disputes arrive through the webhook API (ingest), Twitch chat (ingest), and the Discord and
Slack bot endpoints (actioners.bots); all of them build the same ``Feedback`` here, so that a
user who disputes one message twice, by whatever route, produces one ``feedback_id`` and the
review queue keeps one dispute (its consumers de-duplicate by ``feedback_id``).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from schemas.events import Feedback, FeedbackKind, Platform, utcnow

# A reason is kept to what the Feedback schema holds.
REASON_MAX = 2000
# Users whose windows are remembered at most; the oldest window is forgotten beyond it (a
# forgotten user starts a fresh window, which only ever lets a few more disputes in).
LIMITER_CAPACITY = 100_000


def dispute_id(platform: str, community: str, message_id: str, user: str) -> str:
    """The id of ``user``'s dispute of ``message_id``: the same for every repeat of it."""
    material = "\x1f".join(("dispute", platform, community, message_id, user))
    return "dsp-" + hashlib.sha256(material.encode()).hexdigest()[:32]


def new_dispute(
    *,
    platform: Platform | str,
    community: str,
    message_id: str,
    user: str,
    reason: str = "",
    source: str,
    action_id: str | None = None,
) -> Feedback:
    """A dispute as it goes on ``moderation.feedback.v1`` (raises ValidationError when an id is
    not acceptable, e.g. empty or with control characters)."""
    platform_value = Platform(platform).value
    return Feedback(
        feedback_id=dispute_id(platform_value, community, message_id, user),
        kind=FeedbackKind.DISPUTE,
        message_id=message_id,
        platform=Platform(platform_value),
        community=community,
        user=user,
        reason=reason.strip()[:REASON_MAX],
        created_at=utcnow(),
        action_id=action_id,
        source=source,
    )


@dataclass
class _Window:
    started: float
    count: int


class DisputeLimiter:
    """At most ``limit`` disputes per key (``platform:community:user``) per ``window_s``: a fixed
    window per key, kept in this process's memory and bounded to ``capacity`` keys."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        capacity: int = LIMITER_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.capacity = capacity
        self.clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def take(self, key: str) -> float | None:
        """Count one dispute for ``key``: None when allowed, else seconds until it would be."""
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window_s:
            window = _Window(now, 0)
            self._windows[key] = window
        self._windows.move_to_end(key)
        while len(self._windows) > self.capacity:
            self._windows.popitem(last=False)
        if window.count >= self.limit:
            return max(0.001, window.started + self.window_s - now)
        window.count += 1
        return None


def limiter_key(platform: str, community: str, user: str) -> str:
    """The key one user's disputes are counted under."""
    return f"{platform}:{community}:{user}"

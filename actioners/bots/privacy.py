"""What the privacy and statistics bot commands do, whatever the platform: each returns the one
reply text (``BotCommands.privacy``).

- **forget**: anyone may forget themself; a moderator may forget anyone of their community
  (the platform module decides who is a moderator and passes ``moderator``). The deletion is
  ``core.privacy.forget``, the same as ``warden privacy forget``; it is recorded as asked by
  ``the user (bot command)`` or by ``<platform>:<moderator id> (bot command)``.
- **opt-out** / **opt-in**: the user themself only (a moderator's opt-out of someone else would
  silence that user's moderation, not protect their privacy).
- **stats** of a user and the **leaderboard**: moderators only (the platform module checks),
  and never naming a user who opted out or was forgotten (``actioners.stats``).

Requests are limited per user like disputes (``WARDEN_BOTS__DISPUTE_LIMIT`` per
``WARDEN_BOTS__DISPUTE_WINDOW_S``): each costs a transaction and a Redis scan.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core import privacy
from core.disputes import DisputeLimiter
from core.errors import ConfigError, TransientError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from actioners.database import Database
    from core.settings import Settings

logger = logging.getLogger(__name__)

STATS_SINCE = timedelta(days=7)
LEADERBOARD_TOP = 10
UNAVAILABLE = "That could not be done right now; please try again in a minute."
NOT_SET_UP = (
    "Deletion requests are not set up here yet; please ask the moderators (the operator needs"
    " to set WARDEN_PRIVACY__PSEUDONYM_SECRET)."
)


class PrivacyCommands:
    """Forget, opt-out, opt-in, user stats and the leaderboard, on the actioner's database and
    Redis (a client built on first use unless one is given)."""

    def __init__(
        self,
        settings: Settings,
        limiter: DisputeLimiter | None = None,
        redis: aioredis.Redis | None = None,
    ) -> None:
        self.settings = settings
        bots = settings.bots
        self.limiter = limiter or DisputeLimiter(bots.dispute_limit, bots.dispute_window_s)
        self._redis = redis

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            from core.clients import redis_client

            self._redis = redis_client(self.settings.redis)
        return self._redis

    def _limited(self, platform: str, community: str, user: str) -> str | None:
        wait = self.limiter.take(f"privacy:{platform}:{community}:{user}")
        if wait is None:
            return None
        return f"Too many requests; try again in about {max(1, round(wait / 60))} min."

    async def forget(
        self,
        db: Database,
        platform: str,
        community: str,
        asker: str,
        target: str | None = None,
        *,
        moderator: bool = False,
    ) -> str:
        """Forget ``target`` (default: the asker); only a moderator may name someone else."""
        user = target or asker
        if user != asker and not moderator:
            return "You can only ask for your own data to be deleted."
        limited = self._limited(platform, community, asker)
        if limited:
            return limited
        try:
            privacy.require_secret(self.settings)
            by = (
                "the user (bot command)"
                if user == asker
                else f"{platform}:{asker} (bot command, moderator)"
            )
            report = await privacy.forget(
                db.transaction, self.redis, self.settings, platform, community, user, by
            )
        except ConfigError as exc:
            logger.warning("a forget request could not be carried out: %s", exc)
            return NOT_SET_UP
        except privacy.PrivacyError as exc:
            return str(exc)
        except (TransientError, RedisError, OSError) as exc:
            # Whatever was done stays done; asked again, the rest is.
            logger.warning("a forget request failed half-way: %r", exc)
            return UNAVAILABLE
        whose = "Your" if user == asker else f"<@{user}>'s"
        text = (
            f"{whose} data in this community is deleted: {sum(report.deleted.values())} item(s);"
            f" the record of actions taken is kept without {'your' if user == asker else 'their'}"
            " identity, and retraining leaves it out."
        )
        if report.open_actions:
            text += " An action still under way is finished first; ask again in a few minutes."
        if user == asker:
            text += " To stop your messages being read from now on, opt out as well."
        return text

    async def opt(self, platform: str, community: str, user: str, *, out: bool) -> str:
        """Opt the asking user out (or back in)."""
        limited = self._limited(platform, community, user)
        if limited:
            return limited
        try:
            key = privacy.user_key(platform, community, user)
        except privacy.PrivacyError as exc:
            return str(exc)
        change = privacy.opt_out if out else privacy.opt_in
        try:
            changed = await change(self.redis, self.settings, key)
        except (RedisError, OSError) as exc:
            logger.warning("an opt-%s request failed: %r", "out" if out else "in", exc)
            return UNAVAILABLE
        if out and self.settings.ingest.opt_out != "redis":
            # Recorded, and honoured once the operator turns it on: say so, not more.
            return (
                "You are on the opt-out list, but this deployment does not drop opted-out users'"
                " messages yet (WARDEN_INGEST__OPT_OUT); please tell the moderators."
            )
        if out:
            return (
                "You are opted out: your messages here are no longer read or stored."
                if changed
                else "You were already opted out."
            )
        return "You are opted back in." if changed else "You were not opted out."

    async def user_stats(self, db: Database, platform: str, community: str, user: str) -> str:
        from actioners.stats import render_user, user_stats

        async with db.transaction() as cur:
            counts = await user_stats(
                cur, self.redis, self.settings, platform, community, user, STATS_SINCE
            )
        return render_user(counts, mention=True)

    async def leaderboard(self, db: Database, platform: str, community: str) -> str:
        from actioners.stats import community_stats, render_community

        async with db.transaction() as cur:
            counts = await community_stats(
                cur, self.redis, self.settings, platform, community, STATS_SINCE, LEADERBOARD_TOP
            )
        return render_community(counts, mention=True)

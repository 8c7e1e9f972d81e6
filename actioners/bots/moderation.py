"""What the bot commands do, whatever the platform: each returns the one reply text.

Users are named as ``<@id>``, the mention syntax of both Discord and Slack (Discord replies
turn mentions off, so naming a user never pings them).

The platform modules (``actioners.bots.discord``, ``actioners.bots.slack``) verify the request,
decide who is a moderator and turn options into arguments; everything here runs on the
actioner's database (``actioners.commands``) and is scoped to the community the request came
from, so a moderator of one community never reads another's decisions or strikes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from actioners.bots.feedback import FeedbackSink
from actioners.bots.privacy import PrivacyCommands
from actioners.commands import apply_preset, explain, pardon, set_policy, show_policy, user_strikes
from actioners.database import Database
from actioners.policy import PolicyChangeError
from core.disputes import DisputeLimiter, limiter_key, new_dispute
from core.settings import Settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

# Discord: https://discord.com/channels/<guild>/<channel>/<message> (ptb./canary. too).
DISCORD_LINK = re.compile(
    r"^https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(\d{1,20}|@me)/(\d{1,20})/(\d{1,20})/?$"
)
# Slack: https://<workspace>.slack.com/archives/<channel>/p<ts without the dot>.
SLACK_LINK = re.compile(r"^https://[\w.-]+\.slack\.com/archives/([A-Z0-9]{1,20})/p(\d{10})(\d{6})")
MESSAGE_ID = re.compile(r"^[\w.:-]{1,200}$")
WORDS_SHOWN = 6


class BadArgument(ValueError):
    """An option the user gave that cannot be used; the text is the reply."""


def discord_message(text: str) -> tuple[str | None, str]:
    """(guild id or None, message id) of a Discord message link or bare id."""
    text = text.strip().strip("<>")
    link = DISCORD_LINK.match(text)
    if link:
        guild = link.group(1)
        return (None if guild == "@me" else guild), link.group(3)
    if text.isdigit() and len(text) <= 20:
        return None, text
    raise BadArgument("give a message link (Copy Message Link) or a message id")


def slack_message(text: str) -> str:
    """The message id (``<channel>:<ts>``, as the Slack adapter writes it) of a Slack permalink
    or an id given as it is."""
    text = text.strip().strip("<>").split("|", 1)[0]
    link = SLACK_LINK.match(text)
    if link:
        return f"{link.group(1)}:{link.group(2)}.{link.group(3)}"
    if MESSAGE_ID.match(text):
        return text
    raise BadArgument(
        "give a message link (Copy link) or a message id like C0123:1712345678.000100"
    )


class BotCommands:
    """The commands, bound to the actioner's database, a feedback sink and the settings."""

    def __init__(
        self,
        db: Database | Callable[[], Database],
        feedback: FeedbackSink,
        settings: Settings,
        limiter: DisputeLimiter | None = None,
        redis: aioredis.Redis | None = None,
    ) -> None:
        # A getter is called at each use: an app whose database connects in its lifespan
        # (the review app) can build the routers before it has one.
        self._db = db
        self.feedback = feedback
        self.settings = settings
        bots = settings.bots
        self.limiter = limiter or DisputeLimiter(bots.dispute_limit, bots.dispute_window_s)
        self.first_day = settings.actioner.first_day == "shadow"
        self.preset = settings.actioner.default_preset
        self.privacy = PrivacyCommands(settings, redis=redis)

    @property
    def db(self) -> Database:
        return self._db() if callable(self._db) else self._db

    async def dispute(
        self,
        *,
        platform: str,
        community: str,
        user: str,
        message_id: str,
        reason: str,
        source: str,
    ) -> str:
        """Publish the user's dispute (deduplicated by its id, limited per user)."""
        wait = self.limiter.take(limiter_key(platform, community, user))
        if wait is not None:
            minutes = max(1, round(wait / 60))
            return f"You have disputed too often; try again in about {minutes} min."
        try:
            feedback = new_dispute(
                platform=platform,
                community=community,
                message_id=message_id,
                user=user,
                reason=reason,
                source=source,
            )
        except ValidationError:
            return "That is not a message id I can dispute."
        try:
            await self.feedback.send(feedback)
        except TimeoutError:
            logger.warning("dispute %s not delivered in time", feedback.feedback_id)
            return "Your dispute could not be recorded right now; please try again in a minute."
        logger.info("dispute %s of %s from %s", feedback.feedback_id, message_id, source)
        return (
            f"Your dispute of message {message_id} is recorded (id {feedback.feedback_id[:12]}); "
            "a moderator will review it. Disputing it again changes nothing."
        )

    async def forget(
        self,
        platform: str,
        community: str,
        asker: str,
        target: str | None = None,
        *,
        moderator: bool = False,
    ) -> str:
        """Forget the asker (or, for a moderator, ``target``): ``actioners.bots.privacy``."""
        return await self.privacy.forget(
            self.db, platform, community, asker, target, moderator=moderator
        )

    async def opt(self, platform: str, community: str, user: str, *, out: bool) -> str:
        return await self.privacy.opt(platform, community, user, out=out)

    async def user_stats(self, platform: str, community: str, user: str) -> str:
        return await self.privacy.user_stats(self.db, platform, community, user)

    async def leaderboard(self, platform: str, community: str) -> str:
        return await self.privacy.leaderboard(self.db, platform, community)

    async def strikes(self, platform: str, community: str, user: str) -> str:
        report = await user_strikes(
            self.db,
            platform,
            community,
            user,
            default_preset=self.preset,
            first_day=self.first_day,
        )
        lines = [
            f"<@{user}> has {report.active} active strike(s)"
            + (f" (+{report.shadow} shadow)" if report.shadow else "")
            + f"; strikes decay after {report.strike_decay}."
        ]
        if report.next_rung is not None:
            rung = report.next_rung
            duration = f" {rung.duration_s} s" if rung.duration_s else ""
            lines.append(f"Next strike: {rung.action}{duration}.")
        for strike in report.strikes[:5]:
            lines.append(
                f"- {strike.created_at:%Y-%m-%d %H:%M} {strike.points} pt: {strike.reason[:80]}"
            )
        return "\n".join(lines)

    async def pardon(
        self, platform: str, community: str, user: str, *, moderator: str, reason: str
    ) -> str:
        if not reason.strip():
            raise BadArgument("a pardon needs a reason")
        done = await pardon(
            self.db, platform, community, user, moderator=moderator, reason=reason.strip()[:500]
        )
        return f"Pardoned <@{user}>: {done.strikes_cleared} strike(s) cleared."

    async def explain(self, platform: str, community: str, message_id: str) -> str:
        """The stored explanation of a decision of this community, or its rule and labels."""
        report = await explain(self.db, message_id)
        decision = report.decision if report is not None else None
        if (
            report is None
            or decision is None
            or decision.get("platform") != platform
            or decision.get("community") != community
        ):
            return f"No automated decision on message {message_id} in this community."
        labels = ", ".join(decision.get("labels") or []) or "none"
        lines = [
            f"Message {message_id}: {decision.get('severity')} (rule {decision.get('rule')}, "
            f"labels {labels}), model {decision.get('model_version')}, "
            f"policy {decision.get('policy_version')}."
        ]
        if decision.get("reason"):
            lines.append(f"Reason: {str(decision['reason'])[:300]}")
        document = await self._explanation(message_id)
        if document is not None:
            lines.append(_words(document))
        for entry in report.actions:
            lines.append(f"- {entry.request.kind.value}: {entry.state.value} {entry.detail[:80]}")
        return "\n".join(lines)

    async def _explanation(self, message_id: str) -> dict[str, Any] | None:
        async with self.db.transaction() as cur:
            await cur.execute("SELECT to_regclass('explanations') IS NOT NULL")
            row = await cur.fetchone()
            if not row or not row[0]:
                return None  # the review migration is not applied
            await cur.execute(
                "SELECT document FROM explanations WHERE message_id = %s", (message_id,)
            )
            found = await cur.fetchone()
        document = found[0] if found else None
        return document if isinstance(document, dict) else None

    async def policy_show(self, platform: str, community: str) -> str:
        stored = await show_policy(
            self.db, platform, community, default_preset=self.preset, first_day=self.first_day
        )
        policy = stored.policy
        mode = "first-day (acts on nothing)" if policy.first_day else "live"
        if policy.shadow:
            mode = "shadow (decides, acts on nothing)"
        origin = "default" if stored.is_default else f"v{stored.version} by {stored.author}"
        ladder = ", ".join(
            f"{r.strikes}: {r.action}" + (f" {r.duration_s}s" if r.duration_s else "")
            for r in policy.ladder
        )
        return (
            f"Policy {stored.version_id} ({origin}): preset {policy.preset}, {mode}; "
            f"strikes decay after {policy.decay_text}; ladder {ladder}."
        )

    async def policy_preset(self, platform: str, community: str, name: str, moderator: str) -> str:
        try:
            stored = await apply_preset(
                self.db,
                platform,
                community,
                name,
                author=moderator,
                default_preset=self.preset,
                first_day=self.first_day,
            )
        except ValueError as exc:
            raise BadArgument(str(exc)) from None
        return f"Policy is now preset {name} ({stored.version_id})."

    async def shadow(self, platform: str, community: str, on: bool, moderator: str) -> str:
        try:
            stored = await set_policy(
                self.db,
                platform,
                community,
                {"shadow": on},
                author=moderator,
                note=f"shadow {'on' if on else 'off'} (bot command)",
                default_preset=self.preset,
                first_day=self.first_day,
            )
        except PolicyChangeError as exc:
            raise BadArgument(str(exc)) from None
        state = "on: decisions are recorded, nothing is acted on" if on else "off: acting"
        return f"Shadow mode {state} ({stored.version_id})."


def _words(document: dict[str, Any]) -> str:
    """The words that weighed most in an explanation document (``schemas.events.Explanation``)."""
    weights = [w for w in document.get("weights") or [] if isinstance(w, dict)]
    weights.sort(key=lambda w: abs(float(w.get("weight") or 0.0)), reverse=True)
    shown = ", ".join(
        f"{w.get('token')} {float(w.get('weight') or 0.0):+.2f}" for w in weights[:WORDS_SHOWN]
    )
    reasons = document.get("reasons") or {}
    other = "; ".join(f"{k}: {v}" for k, v in list(reasons.items())[:3])
    text = f"Words: {shown or 'none'}."
    return text + (f" Also: {other}." if other else "")

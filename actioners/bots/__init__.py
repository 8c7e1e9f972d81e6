"""Disputes and moderator commands in chat: the Discord interactions endpoint and the Slack
slash-command / interactivity endpoint, as FastAPI routers the review app mounts::

    from actioners.bots import bot_routers
    from actioners.bots.feedback import KafkaFeedback

    feedback = KafkaFeedback(settings.kafka)  # close it in the lifespan: await feedback.close()
    for router in bot_routers(lambda: app.state.services.db, feedback, settings):
        app.include_router(router)  # POST /bots/discord/interactions, /bots/slack/events

``db`` is the actioner's ``Database`` or a getter of it (called per request, so an app whose
database connects in its lifespan can mount the routers first); ``feedback`` is anything with
``async send(Feedback)``. ``discord_router`` and ``slack_router`` raise ``ConfigError`` when
their secrets are not set; ``bot_routers`` returns only the configured ones.

Twitch has no HTTP commands: ``actioners.bots.twitch`` is a chat bot on Twitch IRC that the
review app runs as a background task (``twitch_bot(settings, db, feedback)``, None unless
``WARDEN_BOTS__TWITCH_COMMANDS``), or ``warden bots twitch`` alone.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from actioners.bots.discord import discord_router
from actioners.bots.feedback import FeedbackSink
from actioners.bots.slack import slack_router
from actioners.database import Database
from core.settings import Settings


def bot_routers(
    db: Database | Callable[[], Database], feedback: FeedbackSink, settings: Settings
) -> list[APIRouter]:
    """The routers whose platform is configured: Discord with ``WARDEN_BOTS__DISCORD_PUBLIC_KEY``,
    Slack with ``WARDEN_BOTS__SLACK_SIGNING_SECRET`` and the Slack bot token."""
    routers = []
    if settings.bots.discord_public_key is not None:
        routers.append(discord_router(db, feedback, settings))
    if settings.bots.slack_signing_secret is not None and settings.platforms.slack.bot_token:
        routers.append(slack_router(db, feedback, settings))
    return routers


__all__ = ["bot_routers", "discord_router", "slack_router"]

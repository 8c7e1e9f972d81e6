"""Platform executors (Discord, Slack, Twitch, the signed webhook) and the one the settings ask
for."""

from __future__ import annotations

from actioners.executors import Executor, LogExecutor, Router
from core.settings import Settings
from schemas.events import Platform


def build_executor(settings: Settings) -> Router:
    """The executor ``WARDEN_ACTIONER__EXECUTOR`` names, as a router by platform.

    ``log`` acts on nothing; ``discord``, ``slack``, ``twitch`` act on their platform's verdicts
    only (the others are skipped, saying so); ``webhook`` sends every action to the webhook;
    ``platform`` routes Discord, Slack and Twitch verdicts to their executors where a token is
    set (Twitch: ``api_token``), and the rest to the webhook when its url is set, else to the
    log.
    """
    from actioners.platforms.discord import DiscordExecutor
    from actioners.platforms.slack import SlackExecutor
    from actioners.platforms.twitch import TwitchExecutor
    from actioners.platforms.webhook import WebhookExecutor

    platforms = settings.platforms
    kind = settings.actioner.executor
    if kind == "log":
        return Router({}, fallback=LogExecutor())
    if kind == "discord":
        return Router({Platform.DISCORD: DiscordExecutor(platforms.discord)})
    if kind == "slack":
        return Router({Platform.SLACK: SlackExecutor(platforms.slack)})
    if kind == "twitch":
        return Router({Platform.TWITCH: TwitchExecutor(platforms.twitch)})
    if kind == "webhook":
        return Router({}, fallback=WebhookExecutor(platforms.webhook))
    executors: dict[Platform, Executor] = {}
    if platforms.discord.token is not None:
        executors[Platform.DISCORD] = DiscordExecutor(platforms.discord)
    if platforms.slack.bot_token is not None:
        executors[Platform.SLACK] = SlackExecutor(platforms.slack)
    if platforms.twitch.api_token is not None:
        executors[Platform.TWITCH] = TwitchExecutor(platforms.twitch)
    fallback: Executor = (
        WebhookExecutor(platforms.webhook) if platforms.webhook.url else LogExecutor()
    )
    return Router(executors, fallback=fallback)

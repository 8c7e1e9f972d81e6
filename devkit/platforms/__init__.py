"""Local servers that speak the platforms' REST protocols (Discord, Slack), for tests and
``warden bench``: the real executors run against them through their configurable base URL.

Production code never needs them. Tests know them as ``fakes.discord`` / ``fakes.slack``.
"""

from devkit.platforms.discord import DISCORD_LIMITS, DiscordServer
from devkit.platforms.server import Limit, Recorded
from devkit.platforms.slack import SLACK_LIMITS, SlackServer

__all__ = ["DISCORD_LIMITS", "SLACK_LIMITS", "DiscordServer", "Limit", "Recorded", "SlackServer"]

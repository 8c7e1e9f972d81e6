"""Local servers that speak the platforms' REST protocols (Discord, Slack, Twitch Helix), for
tests and ``warden bench``: the real executors run against them through their configurable
base URL.

Production code never needs them. Tests know them as ``fakes.discord`` / ``fakes.slack`` /
``fakes.twitch``.
"""

from devkit.platforms.discord import DISCORD_LIMITS, DiscordServer
from devkit.platforms.server import Limit, Recorded
from devkit.platforms.slack import SLACK_LIMITS, SlackServer
from devkit.platforms.twitch import HELIX_LIMIT, TwitchServer

__all__ = [
    "DISCORD_LIMITS",
    "HELIX_LIMIT",
    "SLACK_LIMITS",
    "DiscordServer",
    "Limit",
    "Recorded",
    "SlackServer",
    "TwitchServer",
]

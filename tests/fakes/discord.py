"""The tests' fake Discord REST API: the local Discord server of ``devkit.platforms`` (it lives
there so that ``warden bench`` can use it without importing tests)."""

from devkit.platforms.discord import DISCORD_LIMITS, DiscordServer
from devkit.platforms.server import Limit, Recorded

FakeDiscord = DiscordServer
TOKEN = "fake-discord-token"

__all__ = ["DISCORD_LIMITS", "TOKEN", "FakeDiscord", "Limit", "Recorded"]

"""The tests' fake Twitch Helix API: the local Helix server of ``devkit.platforms``."""

from devkit.platforms.server import Limit, Recorded
from devkit.platforms.twitch import HELIX_LIMIT, TwitchServer

FakeTwitch = TwitchServer
TOKEN = "fake-twitch-token"
CLIENT_ID = "fake-client-id"
MODERATOR_ID = "9001"

__all__ = ["CLIENT_ID", "HELIX_LIMIT", "MODERATOR_ID", "TOKEN", "FakeTwitch", "Limit", "Recorded"]

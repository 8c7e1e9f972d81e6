"""The tests' fake Slack Web API: the local Slack server of ``devkit.platforms``."""

from devkit.platforms.server import Recorded
from devkit.platforms.slack import SLACK_LIMITS, SlackServer

FakeSlack = SlackServer
BOT_TOKEN = "xoxb-fake"

__all__ = ["BOT_TOKEN", "SLACK_LIMITS", "FakeSlack", "Recorded"]

"""A fake Slack Web API (the implementation lives in ``actioners.fakeplatform``)."""

from actioners.fakeplatform import SLACK_LIMITS, FakeSlack, Recorded

BOT_TOKEN = "xoxb-fake"

__all__ = ["BOT_TOKEN", "SLACK_LIMITS", "FakeSlack", "Recorded"]

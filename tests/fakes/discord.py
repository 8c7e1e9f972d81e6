"""A fake Discord REST API (the implementation lives in ``actioners.fakeplatform`` so that
``warden bench`` can use it without importing tests)."""

from actioners.fakeplatform import DISCORD_LIMITS, FakeDiscord, Limit, Recorded

TOKEN = "fake-discord-token"

__all__ = ["DISCORD_LIMITS", "TOKEN", "FakeDiscord", "Limit", "Recorded"]

"""The dispute id every route shares, and the per-user dispute limit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.disputes import DisputeLimiter, dispute_id, new_dispute


def test_one_users_disputes_of_one_message_share_an_id_and_others_do_not() -> None:
    first = new_dispute(
        platform="discord", community="g", message_id="m", user="u", reason="a", source="discord"
    )
    again = new_dispute(
        platform="discord", community="g", message_id="m", user="u", reason="b", source="webhook"
    )
    assert first.feedback_id == again.feedback_id == dispute_id("discord", "g", "m", "u")
    assert first.kind == "dispute" and first.source == "discord" and first.reason == "a"
    others = {
        dispute_id("discord", "g", "m", "v"),
        dispute_id("discord", "g", "n", "u"),
        dispute_id("slack", "g", "m", "u"),
        dispute_id("discord", "h", "m", "u"),
    }
    assert first.feedback_id not in others and len(others) == 4
    # Separators cannot be forged by moving characters between fields.
    assert dispute_id("discord", "g", "m:x", "u") != dispute_id("discord", "g:m", "x", "u")


def test_a_dispute_with_a_control_character_in_an_id_is_refused() -> None:
    with pytest.raises(ValidationError):
        new_dispute(
            platform="webhook", community="g", message_id="m\n1", user="u", source="webhook"
        )
    with pytest.raises(ValueError, match="not a valid Platform"):
        new_dispute(platform="myspace", community="g", message_id="m", user="u", source="webhook")


def test_the_limit_is_per_user_and_per_window() -> None:
    now = [1000.0]
    limiter = DisputeLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.take("a") is None and limiter.take("a") is None
    wait = limiter.take("a")
    assert wait is not None and 59.0 < wait <= 60.0
    assert limiter.take("b") is None  # someone else is not held back
    now[0] += 60.0
    assert limiter.take("a") is None  # a new window


def test_the_limiter_forgets_the_oldest_users_beyond_its_capacity() -> None:
    limiter = DisputeLimiter(1, 60.0, capacity=3)
    for user in "abcd":
        assert limiter.take(user) is None
    assert len(limiter._windows) == 3
    assert limiter.take("d") is not None

"""Waits between tries of something that failed: exponential back-off with full jitter."""

from __future__ import annotations

import random


def full_jitter(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds to wait before try ``attempt + 1``: uniform in [0, min(max_s, base_s * 2^(n-1))].

    Full jitter spreads the clients that one outage cut off over the whole window, so they do
    not come back in step.
    """
    cap = min(max_s, base_s * 2 ** (attempt - 1))
    return random.uniform(0, cap)  # noqa: S311 - jitter, not cryptography

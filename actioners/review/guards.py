"""The review service's guards: CSRF tokens, the sign-in rate limit, response headers.

- CSRF: each session holds a random token; every POST form carries it in a hidden field and
  is refused (403) when it does not match (compared in constant time). The session cookie is
  also ``SameSite=Strict``, so a cross-site form does not even carry it.
- Sign-in: at most ``review.login_attempts`` failed tries per client address and per name in
  ``review.login_window_s``; beyond that every try is refused (429) until the window passes,
  right or wrong, so a password cannot be guessed quickly from one place or against one name.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

CSRF_KEY = "csrf"
# Bounds the limiter's memory under a flood of distinct names or addresses.
MAX_TRACKED = 10_000

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
}


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], submitted: str | None) -> bool:
    expected = session.get(CSRF_KEY)
    if not isinstance(expected, str) or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


class LoginLimiter:
    """Failed sign-ins per key (an address, a name) in a sliding window."""

    def __init__(
        self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def blocked(self, *keys: str) -> float:
        """Seconds until a try is allowed again for every key (0: allowed now)."""
        wait = 0.0
        for key in keys:
            failures = self._recent(key)
            if len(failures) >= self.attempts:
                wait = max(wait, failures[0] + self.window_s - self.clock())
        return wait

    def failed(self, *keys: str) -> None:
        if len(self._failures) > MAX_TRACKED:
            # Forget the quietest keys first: a flood of new keys cannot grow memory forever.
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[:1000]:
                del self._failures[key]
        now = self.clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, name_key: str) -> None:
        self._failures.pop(name_key, None)

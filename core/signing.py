"""HMAC request signatures: each scheme we sign or check, defined once.

Warden webhook signature, used in both directions (callers sign what they POST to the ingest
webhook's ``/v1`` API; the actioner's webhook executor signs each action it POSTs to a
receiver)::

    X-Warden-Timestamp: <unix seconds>
    X-Warden-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The timestamp is inside the signed bytes so that a receiver can refuse old requests without
trusting an unsigned header; each side decides its own tolerance.

Slack v0 signature (what Slack sends with every HTTP request; in production Bolt checks it, the
local fake Slack signs with this so that Bolt accepts it)::

    X-Slack-Request-Timestamp: <unix seconds>
    X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<timestamp>:" + body)>

Both are wire formats other programs implement: change one only with a new scheme, never in
place (``tests/unit/core/test_signing.py`` pins them with known-answer vectors).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Warden-Signature"
TIMESTAMP_HEADER = "X-Warden-Timestamp"
DEFAULT_TOLERANCE_S = 300

SLACK_SIGNATURE_HEADER = "X-Slack-Signature"
SLACK_TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"


def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def webhook_signature(secret: bytes | str, timestamp: str, body: bytes) -> str:
    """The ``X-Warden-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(_key(secret), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signature_matches(secret: bytes | str, timestamp: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` is the webhook signature of ``body`` at ``timestamp``.

    Compared in constant time, as bytes: a header is whatever the sender put there, and
    ``hmac.compare_digest`` refuses a non-ASCII ``str`` with an exception instead of a False.
    """
    expected = webhook_signature(secret, timestamp, body).encode()
    return hmac.compare_digest(signature.encode("utf-8", "surrogateescape"), expected)


def verify_webhook_signature(
    secret: bytes | str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is right for this body and the timestamp is within tolerance.

    What a receiver of the actioner's webhook runs; refusing old timestamps means a captured
    request cannot be replayed later. (The ingest webhook checks the timestamp itself, to name
    the reason in its 401, and then calls :func:`signature_matches`.)
    """
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and signature_matches(secret, timestamp, body, signature)


def slack_signature(secret: bytes | str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack sends for ``body`` at ``timestamp``."""
    digest = hmac.new(_key(secret), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()

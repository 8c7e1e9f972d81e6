"""Known-answer vectors for every HMAC scheme: the wire formats other programs implement.

Each expected value was computed once outside this code base and is written down here, so a
change to a scheme (the separator, the prefix, the digest, the order of the signed parts) fails
these tests; checking our ``sign`` against our own ``verify`` would pass it.

    printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
    printf '%s' '1718474401.{"id":"1","text":"x"}' | openssl dgst -sha256 -hmac sec
    Slack's own example (api.slack.com/authentication/verifying-requests-from-slack).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fakes.webhook import FakeWebhook
from pydantic import SecretStr

from actioners.platforms.webhook import WebhookExecutor
from core.settings import IngestSettings, WebhookSettings
from core.signing import (
    SIGNATURE_HEADER,
    SLACK_SIGNATURE_HEADER,
    SLACK_TIMESTAMP_HEADER,
    TIMESTAMP_HEADER,
    signature_matches,
    slack_signature,
    verify_webhook_signature,
    webhook_signature,
)
from ingest.adapters.webhook import Authenticator, Refused
from schemas.events import ActionKind, ActionRequest, Platform, Severity

WEBHOOK_VECTORS = [
    # (secret, timestamp, body, X-Warden-Signature)
    (
        b"secret",
        "1700000000",
        b'{"a":1}',
        "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686",
    ),
    (
        b"sec",
        "1718474401",
        b'{"id":"1","text":"x"}',
        "sha256=81a19560799e3619b9d73dcd06815c2f811287421b18620956c6f75d3f2cbcb8",
    ),
]

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_header_names_are_the_documented_ones() -> None:
    assert (SIGNATURE_HEADER, TIMESTAMP_HEADER) == ("X-Warden-Signature", "X-Warden-Timestamp")
    assert (SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER) == (
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
    )


@pytest.mark.parametrize(("secret", "timestamp", "body", "expected"), WEBHOOK_VECTORS)
def test_webhook_signature_known_answers(
    secret: bytes, timestamp: str, body: bytes, expected: str
) -> None:
    assert webhook_signature(secret, timestamp, body) == expected
    assert webhook_signature(secret.decode(), timestamp, body) == expected  # str secrets too
    assert signature_matches(secret, timestamp, body, expected)


@pytest.mark.parametrize(("secret", "timestamp", "body", "expected"), WEBHOOK_VECTORS)
def test_verify_accepts_the_vector_only_unchanged_and_in_time(
    secret: bytes, timestamp: str, body: bytes, expected: str
) -> None:
    at = float(timestamp)
    assert verify_webhook_signature(secret, timestamp, body, expected, now=at + 299)
    assert not verify_webhook_signature(secret, timestamp, body, expected, now=at + 301)
    assert not verify_webhook_signature(secret, timestamp, body + b" ", expected, now=at)
    assert not verify_webhook_signature(b"other", timestamp, body, expected, now=at)
    assert not verify_webhook_signature(secret, str(int(at) + 1), body, expected, now=at)
    # The bare hex, another prefix, or a header that is not even ASCII: refused, not raised.
    assert not verify_webhook_signature(secret, timestamp, body, expected[7:], now=at)
    assert not verify_webhook_signature(secret, timestamp, body, "v0=" + expected[7:], now=at)
    assert not verify_webhook_signature(secret, timestamp, body, "sha256=é", now=at)
    assert not verify_webhook_signature(secret, "soon", body, expected, now=at)


def test_slack_signature_known_answer() -> None:
    assert slack_signature(SLACK_SECRET, SLACK_TIMESTAMP, SLACK_BODY) == SLACK_SIGNATURE
    assert slack_signature(SLACK_SECRET.encode(), SLACK_TIMESTAMP, SLACK_BODY) == SLACK_SIGNATURE


def test_the_ingest_webhook_accepts_the_known_vector() -> None:
    secret, timestamp, body, expected = WEBHOOK_VECTORS[0]
    auth = Authenticator(IngestSettings(webhook_hmac_secret=SecretStr(secret.decode())))
    headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: expected}
    credential, taken = auth.authenticate(headers, body, now=float(timestamp))
    assert (credential.name, taken) == ("default", expected)
    with pytest.raises(Refused, match="invalid signature"):
        tampered = {**headers, SIGNATURE_HEADER: expected[:-1] + "0"}
        Authenticator(auth.settings).authenticate(tampered, body, now=float(timestamp))


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[FakeWebhook]:
    hook = FakeWebhook()
    await hook.start()
    yield hook
    await hook.close()


async def test_the_actioner_signs_its_webhook_actions_with_the_scheme(
    receiver: FakeWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock of both ends: the receiver refuses a timestamp five minutes off its own.
    monkeypatch.setattr("time.time", lambda: 1700000000.5)
    executor = WebhookExecutor(WebhookSettings(url=receiver.url, secret=SecretStr(receiver.secret)))
    request = ActionRequest.model_validate(
        {
            "action_id": "m1:warn",
            "message_id": "m1",
            "platform": Platform.DISCORD,
            "community": "g1",
            "channel": "c1",
            "user": "u1",
            "kind": ActionKind.WARN,
            "reason": "test",
            "severity": Severity.LOW,
            "p_toxic": 0.4,
            "model_version": "m",
            "policy_version": "p",
            "sent_at": "2026-11-21T10:00:00Z",
            "requested_at": "2026-11-21T10:00:00Z",
        }
    )
    await executor.start()
    try:
        await executor.execute(request)
    finally:
        await executor.close()
    (delivery,) = receiver.deliveries
    assert delivery.valid_signature
    assert json.loads(delivery.body)["action_id"] == "m1:warn"
    # The scheme spelled out independently of core.signing: whole seconds, ".", the body.
    mac = hmac.new(receiver.secret.encode(), b"1700000000." + delivery.body, hashlib.sha256)
    assert delivery.headers[TIMESTAMP_HEADER] == "1700000000"
    assert delivery.headers[SIGNATURE_HEADER] == "sha256=" + mac.hexdigest()

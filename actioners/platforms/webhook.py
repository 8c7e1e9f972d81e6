"""Webhook: a signed POST of each action to a configured URL, for chats without an executor.

The body is the ``ActionRequest`` as JSON. Headers:

- ``X-Warden-Timestamp``: Unix seconds when it was signed;
- ``X-Warden-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}." + body`` with
  ``WARDEN_PLATFORMS__WEBHOOK__SECRET`` (the scheme of ``core.signing``; receivers check it
  with ``core.signing.verify_webhook_signature`` and refuse old timestamps, so a captured
  request cannot be replayed);
- ``Idempotency-Key``: the ``action_id``. A receiver must act once per key: an action in
  flight at a restart is sent again with the same key (that is how it is reconciled).

A ``hold`` is never sent (skipped: "held for review"); a ``raid_mode`` is sent like any
action, with its ``modes`` and ``duration_s`` for the receiver to apply.

2xx is done; 409 is done (the receiver had it already); 408, 425, 429 (``Retry-After``
honoured) and 5xx are tried again; any other status is a permanent failure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

import aiohttp

from actioners.executors import Outcome, RateLimited, held
from core.errors import ConfigError, PermanentActionError, RetriableActionError
from core.settings import WebhookSettings
from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature
from schemas.events import ActionKind, ActionRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookExecutor:
    name = "webhook"
    bulk_delete_max = 0

    def __init__(self, settings: WebhookSettings) -> None:
        if not settings.url:
            raise ConfigError("WARDEN_PLATFORMS__WEBHOOK__URL: needed by the webhook executor")
        if settings.secret is None:
            raise ConfigError("WARDEN_PLATFORMS__WEBHOOK__SECRET: webhook actions are signed")
        self.url = settings.url
        self.secret = settings.secret.get_secret_value().encode()
        self.timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self.timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def executor_for(self, request: ActionRequest) -> str:
        return self.name

    async def execute(self, request: ActionRequest) -> Outcome:
        if request.kind is ActionKind.HOLD:
            return held()  # a hold waits for a moderator: nothing is sent
        if self._session is None:
            raise RuntimeError("WebhookExecutor.start() was not awaited")
        body = request.to_json_bytes()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(self.secret, timestamp, body),
            IDEMPOTENCY_HEADER: request.action_id,
            "User-Agent": "ChatWarden-actioner",
        }
        what = f"POST {self.url}"
        try:
            async with self._session.post(self.url, data=body, headers=headers) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                text = (await response.text())[:200]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetriableActionError(f"{what}: {type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return Outcome.done(f"delivered ({status})")
        if status == 409:
            return Outcome.done("delivered before (409)")
        detail = f"{what}: {status} {text}".strip()
        if status == 429:
            raise RateLimited(detail, _seconds(retry_after))
        if status >= 500 or status in (408, 425):
            raise RetriableActionError(detail)
        raise PermanentActionError(detail)

    async def reconcile(self, request: ActionRequest, started_at: datetime | None) -> Outcome:
        # The receiver acts once per Idempotency-Key: sending again finishes, never repeats.
        return await self.execute(request)

    async def bulk_delete(self, requests: Sequence[ActionRequest]) -> Outcome:
        raise NotImplementedError("the webhook has no bulk delete")


def _seconds(value: str | None) -> float:
    try:
        return float(value) if value else 1.0
    except ValueError:
        return 1.0

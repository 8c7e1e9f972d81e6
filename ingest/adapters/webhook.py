"""The webhook / batch API: chat from any system over HTTP, and synchronous moderation.

``POST /v1/messages``
    One message or a batch, in the seed moderation service's shape plus any ChatMessage
    field::

        {"messages": [{"id": "m1", "text": "hello", "user": "u1", "community": "acme"}, ...]}

    (a single ``{"id": ..., "text": ...}`` object, or a bare JSON list, works too). ``id`` (or
    ``message_id``) and ``text`` are required; ``platform`` defaults to ``webhook``,
    ``community`` and ``channel`` to ``default``, ``user`` to ``anonymous``, ``sent_at`` to now;
    ``received_at`` is always the server's clock. Answers ``202 {"accepted": [ids]}``. Items that
    are not valid are named in a ``422 {"accepted": [...], "errors": [{"index", "id",
    "errors"}]}``: the valid ones of the same batch are still taken (and the invalid ones go to
    the dead-letter topic). While the broker is unreachable and the ingest buffer is full the
    answer is ``503`` with ``Retry-After`` and nothing of that request is taken; a batch is
    taken whole or not at all.

``POST /v1/moderate``
    The same body; scores the batch now with the configured model (the scorer's) and answers
    ``200 {"model_version", "results": [{"id", "p_toxic", "severity", "flagged", "labels"}]}``
    (``422`` with ``errors`` beside the results when some items are invalid). Nothing is
    published: this is for callers who want the verdict in the response.

``GET /healthz``
    ``200 {"status": "ok", "buffered": n}`` (no authentication).

Authentication (every ``/v1`` call), either of:

* ``Authorization: Bearer <WARDEN_INGEST__WEBHOOK_TOKEN>``
* ``X-Warden-Timestamp: <unix seconds>`` and ``X-Warden-Signature: sha256=<hex>``, the
  HMAC-SHA256 of ``"<timestamp>." + body`` with ``WARDEN_INGEST__WEBHOOK_HMAC_SECRET``;
  timestamps more than ``signature_tolerance_s`` off are refused, so a captured request
  cannot be replayed later.

Anything else is ``401``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ingest.publisher import BufferFull, Publisher
from schemas.events import ChatMessage, Platform, Severity, utcnow
from toxicity.base import TextScorer
from warden.errors import ConfigError, TransientError
from warden.settings import IngestSettings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Warden-Signature"
TIMESTAMP_HEADER = "X-Warden-Timestamp"
DEFAULTS: dict[str, Any] = {
    "platform": Platform.WEBHOOK.value,
    "community": "default",
    "channel": "default",
    "user": "anonymous",
}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Warden-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def authenticate(
    settings: IngestSettings, headers: Any, body: bytes, now: float | None = None
) -> str | None:
    """None when the request is authenticated, else the reason it is not."""
    token = settings.webhook_token
    authorization = headers.get("Authorization", "")
    if token is not None and authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization[7:].encode(), token.get_secret_value().encode()):
            return None
        return "invalid bearer token"
    secret = settings.webhook_hmac_secret
    sent_signature = headers.get(SIGNATURE_HEADER)
    if secret is not None and sent_signature:
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        try:
            age = abs((time.time() if now is None else now) - int(timestamp))
        except ValueError:
            return f"{TIMESTAMP_HEADER} must be unix seconds"
        if age > settings.signature_tolerance_s:
            return f"{TIMESTAMP_HEADER} is {age:.0f} s off (stale or replayed request)"
        expected = signature(secret.get_secret_value(), timestamp, body)
        if hmac.compare_digest(sent_signature.encode(), expected.encode()):
            return None
        return "invalid signature"
    return "missing credentials (Authorization: Bearer, or X-Warden-Signature)"


@dataclass
class ParsedBatch:
    messages: list[ChatMessage] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # (raw item, error) of each invalid item, for the dead-letter topic.
    invalid: list[tuple[bytes, Exception]] = field(default_factory=list)


def batch_items(payload: Any) -> list[Any]:
    """The items of a request body: ``{"messages": [...]}``, one object, or a list."""
    if isinstance(payload, dict) and "messages" in payload:
        items = payload["messages"]
        if not isinstance(items, list):
            raise ValueError('"messages" must be a list')
        return items
    if isinstance(payload, dict):
        return [payload]
    if isinstance(payload, list):
        return payload
    raise ValueError('expected {"messages": [...]}, one message object, or a list')


def _describe(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'item'}: {err['msg']}" for err in exc.errors()
    ]


def to_chat_message(item: Any, received_at: datetime) -> ChatMessage:
    """One webhook item as a ChatMessage; raises ValueError (or ValidationError) naming why not."""
    if not isinstance(item, dict):
        raise ValueError("an item must be a JSON object")
    record = {**DEFAULTS, **{k: v for k, v in item.items() if v is not None}}
    message_id = record.pop("id", None)
    if "message_id" not in record:
        if isinstance(message_id, int) and not isinstance(message_id, bool):
            message_id = str(message_id)
        if message_id is None:
            raise ValueError("id: Field required")
        record["message_id"] = message_id
    record.setdefault("sent_at", received_at.isoformat())
    record["received_at"] = received_at.isoformat()
    # Through JSON so that timestamps and enums are read the way the topic's consumers read them.
    return ChatMessage.model_validate_json(json.dumps(record))


def parse_batch(items: list[Any], received_at: datetime) -> ParsedBatch:
    parsed = ParsedBatch()
    for index, item in enumerate(items):
        try:
            parsed.messages.append(to_chat_message(item, received_at))
        except (ValueError, TypeError) as exc:
            problems = _describe(exc) if isinstance(exc, ValidationError) else [str(exc)]
            item_id = item.get("id", item.get("message_id")) if isinstance(item, dict) else None
            parsed.errors.append({"index": index, "id": item_id, "errors": problems})
            parsed.invalid.append((json.dumps(item, default=str).encode(), exc))
    return parsed


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebhookAPI:
    """The aiohttp application; ``model`` is needed only for ``/v1/moderate``."""

    def __init__(
        self,
        settings: IngestSettings,
        publisher: Publisher,
        model: TextScorer | None = None,
        flag_severity: Severity = Severity.MEDIUM,
    ) -> None:
        if settings.webhook_token is None and settings.webhook_hmac_secret is None:
            raise ConfigError(
                "the webhook needs WARDEN_INGEST__WEBHOOK_TOKEN or "
                "WARDEN_INGEST__WEBHOOK_HMAC_SECRET: it never runs unauthenticated"
            )
        self.settings = settings
        self.publisher = publisher
        self.model = model
        self.flag_severity = flag_severity
        # One model call at a time, off the event loop.
        self._model_lock = asyncio.Lock()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.webhook_max_body_bytes)
        app.router.add_post("/v1/messages", self._authenticated(self.messages))
        app.router.add_post("/v1/moderate", self._authenticated(self.moderate))
        app.router.add_get("/healthz", self.health)
        return app

    def _authenticated(
        self, handler: Callable[[web.Request, bytes], Awaitable[web.Response]]
    ) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _error(413, f"body over {self.settings.webhook_max_body_bytes} bytes")
            problem = authenticate(self.settings, request.headers, body)
            if problem is not None:
                return _error(401, problem)
            return await handler(request, body)

        return wrapped

    def _items(self, body: bytes) -> list[Any] | web.Response:
        try:
            items = batch_items(json.loads(body))
        except ValueError as exc:
            return _error(400, f"not a valid request body: {exc}")
        if len(items) > self.settings.webhook_max_batch:
            return _error(413, f"{len(items)} items; at most {self.settings.webhook_max_batch}")
        return items

    async def messages(self, request: web.Request, body: bytes) -> web.Response:
        items = self._items(body)
        if isinstance(items, web.Response):
            return items
        parsed = parse_batch(items, utcnow())
        rejects = [(raw, exc, "webhook") for raw, exc in parsed.invalid]
        try:
            self.publisher.offer(parsed.messages, rejects)
        except BufferFull as exc:
            return _error(
                503,
                str(exc),
                headers={"Retry-After": str(exc.retry_after_s)},
                retry_after_s=exc.retry_after_s,
            )
        except TransientError as exc:
            return _error(503, str(exc), headers={"Retry-After": str(self.settings.retry_after_s)})
        accepted = [m.message_id for m in parsed.messages]
        if parsed.errors:
            return web.json_response({"accepted": accepted, "errors": parsed.errors}, status=422)
        return web.json_response({"accepted": accepted}, status=202)

    async def moderate(self, request: web.Request, body: bytes) -> web.Response:
        if self.model is None:
            return _error(501, "no model loaded in this process")
        items = self._items(body)
        if isinstance(items, web.Response):
            return items
        parsed = parse_batch(items, utcnow())
        model = self.model
        texts = [m.text for m in parsed.messages]
        async with self._model_lock:
            scores = await asyncio.to_thread(model.score, texts) if texts else []
        results = [
            {
                "id": m.message_id,
                "p_toxic": s.p_toxic,
                "severity": s.severity.value,
                "flagged": s.severity.rank >= self.flag_severity.rank,
                "labels": list(s.labels),
            }
            for m, s in zip(parsed.messages, scores, strict=True)
        ]
        payload: dict[str, Any] = {"model_version": model.version, "results": results}
        if parsed.errors:
            payload["errors"] = parsed.errors
            return web.json_response(payload, status=422)
        return web.json_response(payload, status=200)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "buffered": self.publisher.buffered})


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, headers=headers)

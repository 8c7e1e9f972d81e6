"""The webhook / batch API: chat from any system over HTTP, and synchronous moderation.

``POST /v1/messages``
    One message or a batch, in the seed moderation service's shape plus any ChatMessage
    field::

        {"messages": [{"id": "m1", "text": "hello", "user": "u1", "community": "acme"}, ...]}

    (a single ``{"id": ..., "text": ...}`` object, or a bare JSON list, works too). ``id`` (or
    ``message_id``) and ``text`` are required; ``platform`` defaults to ``webhook``,
    ``community`` and ``channel`` to ``default``, ``user`` to ``anonymous``, ``sent_at`` to now;
    ``received_at`` is always the server's clock. Answers ``202 {"accepted": [ids]}``. Items that
    are not valid (or outside the credential's scope, see below) are named in a
    ``422 {"accepted": [...], "errors": [{"index", "id", "errors"}]}``: the valid ones of the
    same batch are still taken (and the invalid ones go to the dead-letter topic). When it
    cannot deliver (see Availability) the answer is ``503`` with ``Retry-After`` and nothing of
    that request is taken; a batch is taken whole or not at all.

``POST /v1/moderate``
    The same body; scores the batch now with the configured model (the scorer's) and answers
    ``200 {"model_version", "results": [{"id", "p_toxic", "severity", "flagged", "labels",
"label_scores"}]}``
    (``422`` with ``errors`` beside the results when some items are invalid). Nothing is
    published: this is for callers who want the verdict in the response.

``POST /v1/disputes``
    A user's dispute of an automated action, from any platform::

        {"platform": "discord", "community": "g1", "user": "u1", "message_id": "m1",
         "action_id": "optional", "reason": "it was a joke"}

    ``platform`` defaults to ``webhook``; ``community``, ``user`` and ``message_id`` are
    required. It becomes a ``Feedback(kind=dispute, source="webhook")`` on
    ``moderation.feedback.v1`` (key: the message id) and is answered ``202 {"dispute_id"}``.
    The id is deterministic (``core.disputes.dispute_id``: platform, community, message and the
    disputing user), so a dispute sent again is the same dispute downstream. The credential's
    platforms and communities bound what it may dispute for (``403`` otherwise), each user may
    dispute ``dispute_limit`` times per ``dispute_window_s`` (``WARDEN_BOTS__*``; ``429`` with
    ``Retry-After``), a body over ``DISPUTE_MAX_BODY`` bytes is ``413`` and anything else
    invalid ``400`` with one line saying what.

``GET /healthz``
    ``200 {"status": "ok", "buffered": n, "accepting": bool}`` (no authentication).

Authentication (every ``/v1`` call), either of:

* ``Authorization: Bearer <token>``
* ``X-Warden-Timestamp: <unix seconds>`` and ``X-Warden-Signature: sha256=<hex>``, the
  HMAC-SHA256 of ``"<timestamp>." + body`` with the credential's HMAC secret (the scheme of
  ``core.signing``, which the actioner's webhook executor signs with too). Timestamps more
  than ``signature_tolerance_s`` off are refused, and within that window each signature is
  taken once: a captured request sent again is ``401 replayed request``. (A request answered
  ``5xx`` is forgotten, so that it can be retried unchanged.) At most
  ``webhook_replay_cache_size`` signatures are remembered; beyond that signed requests get
  ``503`` until the oldest expire, rather than forgetting one that could then be replayed.

Anything else is ``401``. The credentials are ``WARDEN_INGEST__WEBHOOK_TOKEN`` and/or
``WARDEN_INGEST__WEBHOOK_HMAC_SECRET`` (named ``default``), plus any in
``WARDEN_INGEST__WEBHOOK_CREDENTIALS`` (a JSON list of ``{"name", "token", "hmac_secret",
"platforms", "communities"}``).

Authorization: what a credential may speak for
    Each credential is bound to platforms (``WARDEN_INGEST__WEBHOOK_PLATFORMS`` for the default
    one; only ``["webhook"]`` unless configured) and communities
    (``WARDEN_INGEST__WEBHOOK_COMMUNITIES``; unset: any). An item naming another platform or
    community is refused on its own (``422``, named in ``errors``, and dead-lettered like any
    invalid item): a webhook client cannot post as a Discord, Slack or Twitch user and get that
    user's message deleted or the user banned. ``user_roles`` are taken as the caller states
    them only inside its scope, where the caller is the platform; roles claimed for a platform
    the credential may not speak for never get in, as those items are refused whole.
    ``/v1/moderate`` publishes nothing and is not scoped.

Limits
    Bodies over ``webhook_max_body_bytes`` are ``413``, batches over ``webhook_max_batch`` items
    ``413``, and JSON nested deeper than ``webhook_max_json_depth`` ``400`` (checked by a
    linear scan before parsing, so no depth can exhaust the parser's recursion).

Availability
    A message is answered ``202`` only once it is in the publisher's buffer. The answer is
    ``503`` with ``Retry-After: retry_after_s`` and nothing is taken when the buffer is full,
    when the publisher stopped or is shutting down, and when the broker has not answered for
    ``unavailable_after_s`` (default 30 s): accepting then would only pile messages up in
    memory, to be lost if the process went down too.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from core.disputes import DisputeLimiter, limiter_key, new_dispute
from core.errors import ConfigError, TransientError
from core.settings import BotSettings, IngestSettings
from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches
from ingest.publisher import BufferFull, Publisher
from schemas.events import ChatMessage, Feedback, Platform, Severity, utcnow
from schemas.rules import is_flagged
from toxicity.base import TextScorer

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "platform": Platform.WEBHOOK.value,
    "community": "default",
    "channel": "default",
    "user": "anonymous",
}


@dataclass(frozen=True)
class Credential:
    """One caller: its secrets and the platforms and communities it may publish for."""

    name: str
    token: bytes | None
    hmac_secret: bytes | None
    platforms: frozenset[str]
    communities: frozenset[str] | None  # None: any

    def refuses(self, message: ChatMessage) -> str | None:
        """Why this caller may not publish ``message`` (None: it may)."""
        if message.platform.value not in self.platforms:
            allowed = ", ".join(sorted(self.platforms))
            return (
                f"platform: credential {self.name!r} may not publish for platform "
                f"{message.platform.value!r} (allowed: {allowed})"
            )
        if self.communities is not None and message.community not in self.communities:
            return (
                f"community: credential {self.name!r} may not publish for community "
                f"{message.community!r}"
            )
        return None


# A dispute is a few short fields: anything larger is not one.
DISPUTE_MAX_BODY = 8 * 1024


class DisputeBody(BaseModel):
    """The body of ``POST /v1/disputes`` (unknown fields are errors, so a typo is not lost)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    platform: str = Field(default=Platform.WEBHOOK.value, max_length=20)
    community: str = Field(min_length=1, max_length=200)
    user: str = Field(min_length=1, max_length=200)
    message_id: str = Field(min_length=1, max_length=200)
    action_id: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


def parse_dispute(body: bytes, credential: Credential) -> Feedback:
    """The Feedback of a dispute body; raises ValueError with one line naming what is wrong,
    or :class:`OutOfScope` when the credential may not speak for its platform or community."""
    try:
        parsed = DisputeBody.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(_dispute_problems(exc)) from None
    allowed = ", ".join(sorted(credential.platforms))
    if parsed.platform not in credential.platforms:
        raise OutOfScope(
            f"credential {credential.name!r} may not dispute for platform "
            f"{parsed.platform!r} (allowed: {allowed})"
        )
    if credential.communities is not None and parsed.community not in credential.communities:
        raise OutOfScope(
            f"credential {credential.name!r} may not dispute for community {parsed.community!r}"
        )
    try:
        return new_dispute(
            platform=parsed.platform,
            community=parsed.community,
            message_id=parsed.message_id,
            user=parsed.user,
            reason=parsed.reason,
            action_id=parsed.action_id,
            source="webhook",
        )
    except ValidationError as exc:
        raise ValueError(_dispute_problems(exc)) from None
    except ValueError as exc:  # Platform(...) of an unknown name
        raise ValueError(f"platform: {exc}") from None


def _dispute_problems(exc: ValidationError) -> str:
    """A dispute body's validation errors on one line, in words a caller can act on."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"]
        if err["type"] == "string_pattern_mismatch":
            message = "must not contain control characters"
        elif err["type"] == "json_invalid":
            message = "not JSON: " + str(err.get("ctx", {}).get("error", message))
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def credentials(settings: IngestSettings) -> list[Credential]:
    """The default credential (token / HMAC secret settings) and the configured extra ones."""
    found = []
    if settings.webhook_token is not None or settings.webhook_hmac_secret is not None:
        found.append(
            Credential(
                name="default",
                token=_secret(settings.webhook_token),
                hmac_secret=_secret(settings.webhook_hmac_secret),
                platforms=frozenset(settings.webhook_platforms),
                communities=_optional_set(settings.webhook_communities),
            )
        )
    for extra in settings.webhook_credentials:
        found.append(
            Credential(
                name=extra.name,
                token=_secret(extra.token),
                hmac_secret=_secret(extra.hmac_secret),
                platforms=frozenset(extra.platforms),
                communities=_optional_set(extra.communities),
            )
        )
    return found


def _secret(value: SecretStr | None) -> bytes | None:
    return None if value is None else value.get_secret_value().encode()


def _optional_set(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


class Refused(Exception):
    """A request that is not let in: its status, the one-line reason, and a Retry-After."""

    def __init__(self, status: int, reason: str, retry_after_s: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


class SeenSignatures:
    """Signatures already taken, each until its timestamp leaves the tolerance window.

    Bounded: at most ``capacity`` entries. Entries are evicted from the oldest while expired;
    when the cache is full of live ones a new signature is refused (503) rather than an old
    one forgotten, since a forgotten one could be replayed.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, signature: str, expires_at: float, now: float) -> str | None:
        """Take ``signature`` (None), or say why not: ``"replayed"`` or ``"full"``."""
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry >= now:
                break
            del self._expiry[oldest]
        previous = self._expiry.get(signature)
        if previous is not None and previous >= now:
            return "replayed"
        if len(self._expiry) >= self.capacity:
            # Timestamps within the window arrive out of order: drop any expired entry first.
            for key in [k for k, e in self._expiry.items() if e < now]:
                del self._expiry[key]
            if len(self._expiry) >= self.capacity:
                return "full"
        self._expiry[signature] = expires_at
        return None

    def forget(self, signature: str) -> None:
        self._expiry.pop(signature, None)


class Authenticator:
    """Checks a request's bearer token or HMAC signature against every credential."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.credentials = credentials(settings)
        self.seen = SeenSignatures(settings.webhook_replay_cache_size)

    def authenticate(
        self, headers: Any, body: bytes, now: float | None = None
    ) -> tuple[Credential, str | None]:
        """The caller's credential and the signature taken (None for a bearer token).

        Raises :class:`Refused` (401, or 503 when the replay cache is full).
        """
        now = time.time() if now is None else now
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            sent = authorization[7:].encode()
            # Every credential is compared, so the time taken does not say which one matched.
            matches = [
                c for c in self.credentials if c.token and hmac.compare_digest(sent, c.token)
            ]
            if matches:
                return matches[0], None
            raise Refused(401, "invalid bearer token")
        sent_signature = headers.get(SIGNATURE_HEADER)
        if sent_signature:
            timestamp = headers.get(TIMESTAMP_HEADER, "")
            try:
                at = int(timestamp)
            except ValueError:
                raise Refused(401, f"{TIMESTAMP_HEADER} must be unix seconds") from None
            tolerance = self.settings.signature_tolerance_s
            if abs(now - at) > tolerance:
                raise Refused(
                    401, f"{TIMESTAMP_HEADER} is {abs(now - at):.0f} s off (stale or replayed)"
                )
            matches = [
                c
                for c in self.credentials
                if c.hmac_secret
                and signature_matches(c.hmac_secret, timestamp, body, sent_signature)
            ]
            if not matches:
                raise Refused(401, "invalid signature")
            verdict = self.seen.remember(sent_signature, at + tolerance, now)
            if verdict == "replayed":
                raise Refused(401, "replayed request")
            if verdict == "full":
                raise Refused(
                    503,
                    "too many signed requests within the signature window; try again later",
                    self.settings.retry_after_s,
                )
            return matches[0], sent_signature
        raise Refused(401, "missing credentials (Authorization: Bearer, or X-Warden-Signature)")


# Strings (with their escapes) removed, then everything but brackets: what is left is the
# nesting, scanned in C (translate, accumulate, max) in one linear pass, no recursion.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _open, _close in (b"[]", b"{}"):
    _STEP[_open], _STEP[_close] = 1, -1


def nesting_depth(body: bytes) -> int:
    """How deeply ``body``'s arrays and objects nest (brackets inside strings do not count)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)))


class OutOfScope(ValueError):
    """An item the caller's credential may not publish (another platform or community)."""


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


def parse_batch(
    items: list[Any], received_at: datetime, credential: Credential | None = None
) -> ParsedBatch:
    """The batch's valid messages, and the errors of the others (outside ``credential``'s
    scope included)."""
    parsed = ParsedBatch()
    for index, item in enumerate(items):
        try:
            message = to_chat_message(item, received_at)
            refusal = None if credential is None else credential.refuses(message)
            if refusal is not None:
                raise OutOfScope(refusal)
            parsed.messages.append(message)
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
        bots: BotSettings | None = None,
    ) -> None:
        self.auth = Authenticator(settings)
        if not self.auth.credentials:
            raise ConfigError(
                "the webhook needs WARDEN_INGEST__WEBHOOK_TOKEN, "
                "WARDEN_INGEST__WEBHOOK_HMAC_SECRET or WARDEN_INGEST__WEBHOOK_CREDENTIALS: "
                "it never runs unauthenticated"
            )
        self.settings = settings
        self.publisher = publisher
        self.model = model
        self.flag_severity = flag_severity
        # One model call at a time, off the event loop.
        self._model_lock = asyncio.Lock()
        bots = bots or BotSettings()
        self.disputes_limiter = DisputeLimiter(bots.dispute_limit, bots.dispute_window_s)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.webhook_max_body_bytes)
        app.router.add_post("/v1/messages", self._authenticated(self.messages))
        app.router.add_post("/v1/moderate", self._authenticated(self.moderate))
        app.router.add_post("/v1/disputes", self._authenticated(self.dispute))
        app.router.add_get("/healthz", self.health)
        return app

    def _authenticated(
        self, handler: Callable[[web.Request, bytes, Credential], Awaitable[web.Response]]
    ) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _error(413, f"body over {self.settings.webhook_max_body_bytes} bytes")
            try:
                credential, signed = self.auth.authenticate(request.headers, body)
            except Refused as refused:
                return _refusal(refused)
            response = await handler(request, body, credential)
            if signed is not None and response.status >= 500:
                # Nothing was taken: the same signed request may be sent again.
                self.auth.seen.forget(signed)
            return response

        return wrapped

    def _items(self, body: bytes) -> list[Any] | web.Response:
        depth_limit = self.settings.webhook_max_json_depth
        if nesting_depth(body) > depth_limit:
            return _error(400, f"not a valid request body: JSON nested deeper than {depth_limit}")
        try:
            items = batch_items(json.loads(body))
        except (ValueError, RecursionError) as exc:
            return _error(400, f"not a valid request body: {exc}")
        if len(items) > self.settings.webhook_max_batch:
            return _error(413, f"{len(items)} items; at most {self.settings.webhook_max_batch}")
        return items

    def _unavailable(self, reason: str) -> web.Response:
        retry = self.settings.retry_after_s
        return _error(
            503,
            f"not accepting messages now: {reason}",
            headers={"Retry-After": str(retry)},
            retry_after_s=retry,
        )

    async def messages(
        self, request: web.Request, body: bytes, credential: Credential
    ) -> web.Response:
        problem = self.publisher.unavailable()
        if problem is not None:
            return self._unavailable(problem)
        items = self._items(body)
        if isinstance(items, web.Response):
            return items
        parsed = parse_batch(items, utcnow(), credential)
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
            return self._unavailable(str(exc))
        accepted = [m.message_id for m in parsed.messages]
        if parsed.errors:
            return web.json_response({"accepted": accepted, "errors": parsed.errors}, status=422)
        return web.json_response({"accepted": accepted}, status=202)

    async def moderate(
        self, request: web.Request, body: bytes, credential: Credential
    ) -> web.Response:
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
                "flagged": is_flagged(s.severity, self.flag_severity),
                "labels": list(s.labels),
                "label_scores": s.label_scores,
            }
            for m, s in zip(parsed.messages, scores, strict=True)
        ]
        payload: dict[str, Any] = {"model_version": model.version, "results": results}
        if parsed.errors:
            payload["errors"] = parsed.errors
            return web.json_response(payload, status=422)
        return web.json_response(payload, status=200)

    async def dispute(
        self, request: web.Request, body: bytes, credential: Credential
    ) -> web.Response:
        """``POST /v1/disputes``: one dispute onto the feedback topic (see the module doc)."""
        if len(body) > DISPUTE_MAX_BODY:
            return _error(413, f"a dispute body is at most {DISPUTE_MAX_BODY} bytes")
        problem = self.publisher.unavailable()
        if problem is not None:
            return self._unavailable(problem)
        try:
            feedback = parse_dispute(body, credential)
        except OutOfScope as exc:
            return _error(403, str(exc))
        except ValueError as exc:
            return _error(400, f"not a valid dispute: {exc}")
        key = limiter_key(feedback.platform.value, feedback.community, feedback.user)
        wait = self.disputes_limiter.take(key)
        if wait is not None:
            retry = max(1, round(wait))
            return _error(
                429,
                f"too many disputes from this user; try again in {retry} s",
                headers={"Retry-After": str(retry)},
                retry_after_s=retry,
            )
        try:
            self.publisher.offer_feedback(feedback)
        except BufferFull as exc:
            return _error(
                503,
                str(exc),
                headers={"Retry-After": str(exc.retry_after_s)},
                retry_after_s=exc.retry_after_s,
            )
        except TransientError as exc:
            return self._unavailable(str(exc))
        logger.info("dispute %s of %s accepted", feedback.feedback_id, feedback.message_id)
        return web.json_response(
            {"dispute_id": feedback.feedback_id, "message_id": feedback.message_id}, status=202
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "buffered": self.publisher.buffered,
                "accepting": self.publisher.unavailable() is None,
            }
        )


def _refusal(refused: Refused) -> web.Response:
    if refused.retry_after_s is None:
        return _error(refused.status, refused.reason)
    return _error(
        refused.status,
        refused.reason,
        headers={"Retry-After": str(refused.retry_after_s)},
        retry_after_s=refused.retry_after_s,
    )


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, headers=headers)

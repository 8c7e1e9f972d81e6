"""The review web app: sign-in, the queue, one page per message, uphold/overturn/hold forms.

Server-rendered (Jinja2, a little CSS, no script). Sessions are Starlette's signed cookie
(``WARDEN_REVIEW__SESSION_SECRET``; HttpOnly, SameSite=Strict, Secure when ``public_url`` is
https), holding only the moderator's name and the CSRF token; the moderator's communities are
read from Postgres on every request, so a revoked grant or a disabled account takes effect at
once. A page of a community the moderator does not moderate is 404, exactly like a message
that does not exist. Unauthenticated: pages redirect to the sign-in, ``/api/*`` answers 401.

It mounts the chat bots' endpoints (``actioners.bots``: ``/bots/discord/interactions``,
``/bots/slack/events``) whose secrets are set. The lifespan starts what the service needs: the
Postgres connection (schema checked), the actioner's executor (``WARDEN_ACTIONER__EXECUTOR``),
the producer, the consumers of the feedback and explanations topics
(``actioners.review.intake``), the resumption of unfinished reversals
(``actioners.review.resolutions``) and, with ``WARDEN_BOTS__TWITCH_COMMANDS``, the Twitch chat
bot (``actioners.bots.twitch``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from redis.exceptions import RedisError
from starlette.middleware.sessions import SessionMiddleware

from actioners.bots import bot_routers
from actioners.bots.feedback import KafkaFeedback
from actioners.bots.twitch import twitch_bot
from actioners.chatlog import ChatLog
from actioners.database import Database
from actioners.publisher import Publisher
from actioners.review import store
from actioners.review.accounts import MAX_PASSWORD, Accounts, authenticate
from actioners.review.guards import (
    SECURITY_HEADERS,
    LoginLimiter,
    csrf_ok,
    csrf_token,
)
from actioners.review.intake import Intake
from actioners.review.resolutions import CANNOT_UNDO, REVERSALS, NotFound, ResolutionError, Resolver
from core import metrics
from core.clients import kafka_producer
from core.errors import ConfigError
from core.settings import Settings
from schemas.events import ActionKind

logger = logging.getLogger(__name__)
SERVICE = "review"
TEMPLATES = Path(__file__).resolve().parent / "templates"
REVIEW_TABLES = ("moderators", "moderator_communities", "disputes", "reviews", "explanations")


class Unauthenticated(Exception):
    """No signed-in moderator (redirect to sign-in, or 401 for the API)."""


@dataclass(frozen=True)
class Moderator:
    name: str
    communities: tuple[store.Community, ...]


@dataclass
class Services:
    db: Database
    accounts: Accounts
    resolver: Resolver
    chatlog: ChatLog


def session_secret(settings: Settings) -> str:
    """The session signing key, or ``ConfigError`` naming the variable to set."""
    secret = settings.review.session_secret
    value = secret.get_secret_value() if secret is not None else ""
    if len(value) < 32:
        raise ConfigError(
            "WARDEN_REVIEW__SESSION_SECRET: set it to a random string of at least 32 characters"
            " (it signs the moderators' session cookies), e.g. `python -c 'import secrets;"
            " print(secrets.token_urlsafe(48))'`"
        )
    return value


async def check_review_schema(db: Database) -> None:
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
            (list(REVIEW_TABLES),),
        )
        found = {row[0] for row in await cur.fetchall()}
    missing = sorted(set(REVIEW_TABLES) - found)
    if missing:
        raise ConfigError(
            f"PostgreSQL lacks the tables {', '.join(missing)}: run `warden migrate`"
            " (WARDEN_POSTGRES__DSN says which database)"
        )


def services_of(app: FastAPI) -> Services:
    found: Services = app.state.services
    return found


def services(request: Request) -> Services:
    return services_of(request.app)


async def moderator(request: Request) -> Moderator:
    """The signed-in moderator with the communities granted now (else ``Unauthenticated``)."""
    name = request.session.get("moderator")
    if not isinstance(name, str):
        raise Unauthenticated
    communities = await services(request).accounts.communities(name)
    if communities is None:  # disabled or removed since sign-in
        request.session.clear()
        raise Unauthenticated
    return Moderator(name, communities)


Signed = Annotated[Moderator, Depends(moderator)]
Note = Annotated[str, Form(max_length=4000)]
Csrf = Annotated[str, Form(max_length=200)]


def create_app(settings: Settings) -> FastAPI:
    """The review app; its lifespan connects everything (see the module)."""
    secret = session_secret(settings)
    limiter = LoginLimiter(settings.review.login_attempts, settings.review.login_window_s)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    feedback = KafkaFeedback(settings.kafka)
    # Twitch moderator commands (WARDEN_BOTS__TWITCH_COMMANDS): built here so a missing token
    # fails at start; the database getter is called per command, after the lifespan connects.
    twitch = twitch_bot(settings, lambda: services_of(app).db, feedback)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from actioners.platforms import build_executor

        metrics.READY.labels(SERVICE).set(0)
        db = await Database.connect(settings.postgres)
        await db.check_schema()
        await check_review_schema(db)
        executor = build_executor(settings)
        await executor.start()
        publisher = Publisher(lambda: kafka_producer(settings.kafka), service=SERVICE)
        await publisher.start()
        resolver = Resolver(settings, db, executor, publisher)
        chatlog = ChatLog(settings)
        app.state.services = Services(db, Accounts(db), resolver, chatlog)
        intake = Intake(settings, db, publisher)
        background = [
            asyncio.create_task(intake.run(), name="review-intake"),
            asyncio.create_task(resolver.resume(), name="review-resume"),
        ]
        if twitch is not None:
            background.append(asyncio.create_task(twitch.run(), name="review-twitch-bot"))
        for task in background:
            task.add_done_callback(_report_failure)
        metrics.READY.labels(SERVICE).set(1)
        logger.info(
            "review service on %s:%d acting through %s",
            settings.review.host,
            settings.review.port,
            executor.name,
        )
        try:
            yield
        finally:
            metrics.READY.labels(SERVICE).set(0)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await resolver.close()
            await feedback.close()
            await publisher.stop()
            await executor.close()
            await chatlog.close()
            await db.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    # The chat bots' endpoints (actioners.bots): only those whose secrets are set.
    for router in bot_routers(lambda: services_of(app).db, feedback, settings):
        app.include_router(router)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="warden_review",
        max_age=settings.review.session_max_age_s,
        same_site="strict",
        https_only=settings.review.public_url.startswith("https://"),
    )

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "sign in first"}, status_code=401)
        target = request.url.path if request.method == "GET" else "/"
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        flash = request.session.pop("flash", None)
        return templates.TemplateResponse(
            request,
            name,
            {
                "csrf": csrf_token(request.session),
                "flash": flash,
                "signed_in": request.session.get("moderator"),
                **context,
            },
            status_code=status,
        )

    def not_found(request: Request) -> HTMLResponse:
        return render(request, "missing.html", status=404)

    def refuse_csrf(request: Request, token: str | None) -> Response | None:
        if csrf_ok(request.session, token):
            return None
        return HTMLResponse("CSRF token missing or wrong: reload the page", status_code=403)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", next=_local(next), error=None)

    @app.post("/login")
    async def login(
        request: Request,
        name: Annotated[str, Form(max_length=64)] = "",
        password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        refused = refuse_csrf(request, csrf)
        if refused is not None:
            return refused
        address = f"ip:{request.client.host if request.client else '?'}"
        name_key = f"name:{name.lower()}"
        wait = limiter.blocked(address, name_key)
        if wait > 0:
            response = render(
                request,
                "login.html",
                status=429,
                next=_local(next),
                error=f"Too many failed sign-ins: try again in {int(wait) + 1} s.",
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not await authenticate(services(request).accounts, name, password):
            limiter.failed(address, name_key)
            logger.info("failed sign-in for %r from %s", name[:64], address)
            return render(
                request,
                "login.html",
                status=401,
                next=_local(next),
                error="Wrong name or password.",
            )
        limiter.succeeded(name_key)
        request.session.clear()
        request.session["moderator"] = name
        csrf_token(request.session)
        logger.info("%s signed in", name)
        return RedirectResponse(_local(next), status_code=303)

    @app.post("/logout")
    async def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
        refused = refuse_csrf(request, csrf)
        if refused is not None:
            return refused
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/", response_class=HTMLResponse)
    async def queue_page(request: Request, who: Signed) -> HTMLResponse:
        queue = await store.queue(services(request).db, who.communities, settings.review)
        return render(request, "queue.html", queue=queue, who=who, communities=who.communities)

    @app.get("/messages/{message_id}", response_class=HTMLResponse)
    async def message_page(request: Request, message_id: str, who: Signed) -> HTMLResponse:
        found = services(request)
        page = await store.message_page(found.db, message_id, who.communities)
        if page is None:
            return not_found(request)
        decision = page.decision
        chat = await _chat(found.chatlog, decision)
        explanation = page.explanation
        words = (
            store.weighted_words(decision.get("text") or "", explanation.get("weights", []))
            if explanation
            else []
        )
        scale = max((abs(w) for _, w in words), default=0.0) or 1.0
        return render(
            request,
            "message.html",
            page=page,
            d=decision,
            chat=chat,
            words=words,
            scale=scale,
            who=who,
            reversible={k.value for k in REVERSALS},
            cannot_undo={k.value: why for k, why in CANNOT_UNDO.items()},
            hold_kind=ActionKind.HOLD.value,
        )

    async def resolve(
        request: Request, message_id: str, who: Moderator, csrf: str, work: Any
    ) -> Response:
        refused = refuse_csrf(request, csrf)
        if refused is not None:
            return refused
        try:
            resolution = await work()
        except NotFound:
            return not_found(request)
        except ResolutionError as exc:
            request.session["flash"] = f"Not done: {exc}."
        else:
            request.session["flash"] = _summary(resolution.outcome, resolution.strikes_cleared)
            logger.info("%s: %s %s", who.name, resolution.outcome, message_id)
        return RedirectResponse(f"/messages/{quote(message_id, safe='')}", status_code=303)

    @app.post("/messages/{message_id}/overturn")
    async def overturn(
        request: Request, message_id: str, who: Signed, note: Note = "", csrf: Csrf = ""
    ) -> Response:
        resolver = services(request).resolver
        return await resolve(
            request,
            message_id,
            who,
            csrf,
            lambda: resolver.overturn(who.name, message_id, who.communities, note),
        )

    @app.post("/messages/{message_id}/uphold")
    async def uphold(
        request: Request, message_id: str, who: Signed, note: Note = "", csrf: Csrf = ""
    ) -> Response:
        resolver = services(request).resolver
        return await resolve(
            request,
            message_id,
            who,
            csrf,
            lambda: resolver.uphold(who.name, message_id, who.communities, note),
        )

    @app.post("/messages/{message_id}/hold")
    async def hold(
        request: Request,
        message_id: str,
        who: Signed,
        note: Note = "",
        csrf: Csrf = "",
        decision: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        if decision not in ("approve", "dismiss"):
            return HTMLResponse("decision must be approve or dismiss", status_code=400)
        resolver = services(request).resolver
        return await resolve(
            request,
            message_id,
            who,
            csrf,
            lambda: resolver.resolve_hold(
                who.name, message_id, who.communities, note, approve=decision == "approve"
            ),
        )

    @app.get("/api/queue")
    async def api_queue(request: Request, who: Signed) -> dict[str, Any]:
        queue = await store.queue(services(request).db, who.communities, settings.review)
        return {
            "disputes": [_plain(row) for row in queue.disputes],
            "holds": [_plain(row) for row in queue.holds],
            "sample": [_plain(row) for row in queue.sample],
        }

    @app.get("/api/messages/{message_id}")
    async def api_message(request: Request, message_id: str, who: Signed) -> Response:
        page = await store.message_page(services(request).db, message_id, who.communities)
        if page is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(
            {
                "decision": _plain(page.decision),
                "actions": [
                    {
                        "action_id": e.action_id,
                        "kind": e.request.kind.value,
                        "state": e.state.value,
                        "detail": e.detail,
                        "reverses": e.request.reverses,
                    }
                    for e in page.actions
                ],
                "strikes": [_plain(s) for s in page.strikes],
                "dispute": _plain(page.dispute) if page.dispute else None,
                "reviews": [_plain(r) for r in page.reviews],
                "explanation": page.explanation,
            }
        )

    return app


async def _chat(chatlog: ChatLog, decision: dict[str, Any]) -> list[Any]:
    try:
        return await chatlog.recent(
            decision["platform"], decision["community"], decision["user_id"]
        )
    except (RedisError, OSError, TimeoutError) as exc:  # display data: shown without it
        logger.warning("recent lines unavailable (Redis: %s)", type(exc).__name__)
        return []


def _report_failure(task: asyncio.Task[None]) -> None:
    """A background task that ended by an error is logged (its work resumes at the next
    start: the consumers from their committed offsets, reversals from the ledger)."""
    if not task.cancelled() and task.exception() is not None:
        metrics.ERRORS.labels(SERVICE, "background_failed").inc()
        logger.error("%s stopped: %r", task.get_name(), task.exception(), exc_info=task.exception())


def _summary(outcome: str, cleared: int) -> str:
    return {
        "overturned": f"Overturned: reversals requested, {cleared} strike point(s) cleared.",
        "upheld": "Upheld.",
        "hold_approved": "Hold approved: the held action was requested.",
        "hold_dismissed": "Hold dismissed.",
    }.get(outcome, outcome)


def _local(target: str) -> str:
    """Only a path on this site (no open redirect to another host)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _plain(row: dict[str, Any] | None) -> dict[str, Any]:
    from datetime import datetime

    out: dict[str, Any] = {}
    for key, value in (row or {}).items():
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out

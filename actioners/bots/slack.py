"""Slack's slash command and interactivity endpoint (slack-bolt): disputes and moderator commands.

One request URL, ``POST /bots/slack/events``, serves both the ``/warden`` slash command and
interactivity (the "Dispute" button of the warning the Slack executor posts). slack-bolt checks
every request's ``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<body>`` with
``WARDEN_BOTS__SLACK_SIGNING_SECRET``, timestamps within five minutes) before any listener
runs; anything else is ``401``.

``/warden dispute <message link or id> <reason>``
    Anyone: a dispute on the feedback topic (the button does the same, without a reason).
``/warden privacy forget [@user]``, ``/warden privacy opt-out``, ``/warden privacy opt-in``
    Anyone, for themself; a moderator may name another user to forget
    (``actioners.bots.privacy``).
``/warden strikes @user``, ``/warden pardon @user <reason>``, ``/warden explain <message>``,
``/warden policy show``, ``/warden policy preset <name>``, ``/warden shadow on|off``,
``/warden stats @user``, ``/warden leaderboard``
    Moderators only. Slack has no per-channel moderators: a moderator is a workspace admin or
    owner (``users.info`` ``is_admin`` / ``is_owner``, scope ``users:read``) or a user listed in
    ``WARDEN_BOTS__SLACK_MODERATORS``.

Users are given as mentions: turn on "Escape channels, users, and links" for the command so
that Slack sends ``<@U123|name>`` (a bare ``U123`` works too). Every answer is ephemeral.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from actioners.bots.feedback import FeedbackSink
from actioners.bots.moderation import BadArgument, BotCommands, slack_message
from actioners.database import Database
from actioners.platforms.slack import DISPUTE_ACTION
from core.errors import ConfigError
from core.settings import Settings

logger = logging.getLogger(__name__)

PATH = "/bots/slack/events"
COMMAND = "/warden"
MAX_BODY = 64 * 1024
MENTION = re.compile(r"^<@([UW][A-Z0-9]{1,20})(?:\|[^>]*)?>$|^([UW][A-Z0-9]{1,20})$")
USAGE = (
    "Usage: /warden dispute <message link> <reason> | privacy forget|opt-out|opt-in | "
    "strikes @user | pardon @user <reason> | explain <message link> | policy show | "
    "policy preset <name> | shadow on|off | stats @user | leaderboard"
)
MODERATOR_COMMANDS = frozenset(
    {"strikes", "pardon", "explain", "policy", "shadow", "stats", "leaderboard"}
)
PRIVACY_USAGE = "/warden privacy forget [@user] | /warden privacy opt-out | /warden privacy opt-in"


def mentioned_user(text: str) -> str:
    """The user id of ``<@U123|name>`` or ``U123``."""
    match = MENTION.match(text.strip())
    if not match:
        raise BadArgument("name the user as a mention (@user)")
    return match.group(1) or match.group(2)


def split_command(text: str) -> tuple[str, list[str]]:
    """(sub-command, words) of a slash command's text (``"strikes <@U1>"``)."""
    words = text.split()
    if not words:
        return "help", []
    return words[0].lower(), words[1:]


class SlackCommands:
    """The ``/warden`` command and the Dispute button, answered from :class:`BotCommands`."""

    def __init__(self, commands: BotCommands, moderators: list[str]) -> None:
        self.commands = commands
        self.moderators = frozenset(moderators)

    async def is_moderator(self, client: AsyncWebClient, user: str) -> bool:
        if user in self.moderators:
            return True
        try:
            reply = await client.users_info(user=user)
        except SlackApiError as exc:
            logger.warning("users.info of %s failed: %s", user, exc)
            return False
        info = reply.get("user") or {}
        return bool(info.get("is_admin") or info.get("is_owner"))

    async def command(self, payload: dict[str, Any], client: AsyncWebClient) -> str:
        team = str(payload.get("team_id") or "")
        user = str(payload.get("user_id") or "")
        name, words = split_command(str(payload.get("text") or ""))
        try:
            if name == "dispute":
                if not words:
                    raise BadArgument("/warden dispute <message link or id> <reason>")
                return await self.commands.dispute(
                    platform="slack",
                    community=team,
                    user=user,
                    message_id=slack_message(words[0]),
                    reason=" ".join(words[1:]),
                    source="slack",
                )
            if name == "privacy":
                return await self._privacy(words, team, user, client)
            if name not in MODERATOR_COMMANDS:
                return USAGE
            if not await self.is_moderator(client, user):
                return "Only workspace admins and ChatWarden's moderators can use this command."
            return await self._moderator_command(name, words, team, f"slack:{user} (bot command)")
        except BadArgument as exc:
            return str(exc)

    async def _privacy(self, words: list[str], team: str, user: str, client: AsyncWebClient) -> str:
        """``/warden privacy ...``: the user's own data (a moderator may forget another)."""
        action = words[0].lower() if words else ""
        if action == "forget":
            target = mentioned_user(words[1]) if len(words) > 1 else None
            moderator = target not in (None, user) and await self.is_moderator(client, user)
            return await self.commands.forget("slack", team, user, target, moderator=moderator)
        if action in ("opt-out", "opt-in"):
            return await self.commands.opt("slack", team, user, out=action == "opt-out")
        raise BadArgument(PRIVACY_USAGE)

    async def _moderator_command(
        self, name: str, words: list[str], team: str, moderator: str
    ) -> str:
        first = words[0] if words else ""
        if name == "strikes":
            return await self.commands.strikes("slack", team, mentioned_user(first))
        if name == "pardon":
            return await self.commands.pardon(
                "slack",
                team,
                mentioned_user(first),
                moderator=moderator,
                reason=" ".join(words[1:]),
            )
        if name == "explain":
            return await self.commands.explain("slack", team, slack_message(first))
        if name == "policy":
            if first == "show" or not words:
                return await self.commands.policy_show("slack", team)
            if first == "preset" and len(words) == 2:
                return await self.commands.policy_preset("slack", team, words[1], moderator)
            raise BadArgument("/warden policy show | /warden policy preset <name>")
        if name == "stats":
            return await self.commands.user_stats("slack", team, mentioned_user(first))
        if name == "leaderboard":
            return await self.commands.leaderboard("slack", team)
        if first not in ("on", "off"):
            raise BadArgument("/warden shadow on | /warden shadow off")
        return await self.commands.shadow("slack", team, first == "on", moderator)

    async def button(self, body: dict[str, Any]) -> tuple[str, str, str]:
        """(channel, user, reply) of a Dispute button click."""
        user = str((body.get("user") or {}).get("id") or "")
        team = str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id"))
        channel = str((body.get("channel") or {}).get("id") or "")
        actions: list[dict[str, Any]] = body.get("actions") or []
        action = next((a for a in actions if a.get("action_id") == DISPUTE_ACTION), {})
        try:
            reply = await self.commands.dispute(
                platform="slack",
                community=team,
                user=user,
                message_id=slack_message(str(action.get("value") or "")),
                reason="",
                source="slack",
            )
        except BadArgument as exc:
            reply = str(exc)
        return channel, user, reply


def slack_app(commands: SlackCommands, settings: Settings) -> AsyncApp:
    """The bolt app: signing-secret verification, the command and the button listener."""
    secret = settings.bots.slack_signing_secret
    token = settings.platforms.slack.bot_token
    if secret is None or token is None:
        raise ConfigError(
            "WARDEN_BOTS__SLACK_SIGNING_SECRET and WARDEN_PLATFORMS__SLACK__BOT_TOKEN: "
            "needed for Slack commands"
        )
    client = AsyncWebClient(
        token=token.get_secret_value(), base_url=settings.platforms.slack.api_base_url
    )
    # process_before_response: the reply is the HTTP answer, so it is complete when sent.
    app = AsyncApp(
        signing_secret=secret.get_secret_value(),
        client=client,
        process_before_response=True,
    )

    @app.command(COMMAND)
    async def warden(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        reply = await commands.command(command, client)
        await ack(text=reply[:3000], response_type="ephemeral")

    @app.action(DISPUTE_ACTION)
    async def dispute(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        channel, user, reply = await commands.button(body)
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=reply)
        except SlackApiError as exc:
            logger.warning("dispute acknowledgement not posted: %s", exc)

    return app


def slack_router(
    db: Database | Callable[[], Database], feedback: FeedbackSink, settings: Settings
) -> APIRouter:
    """``POST /bots/slack/events``; raises ConfigError without the signing secret or token."""
    commands = SlackCommands(BotCommands(db, feedback, settings), settings.bots.slack_moderators)
    handler = AsyncSlackRequestHandler(slack_app(commands, settings))
    router = APIRouter()

    @router.post(PATH)
    async def events(request: Request) -> Response:
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            return Response(f"a body of at most {MAX_BODY} bytes, with its length", status_code=413)
        return await handler.handle(request)

    return router

"""Discord's HTTP interactions endpoint: disputes and moderator slash commands.

Discord posts every interaction of the application to its "Interactions Endpoint URL"
(``POST /bots/discord/interactions`` here), signed with the application's Ed25519 key:
``X-Signature-Ed25519`` is the signature of ``X-Signature-Timestamp + body``, checked against
``WARDEN_BOTS__DISCORD_PUBLIC_KEY``; anything unsigned, badly signed or more than
``TIMESTAMP_TOLERANCE_S`` old is ``401`` (Discord itself sends a bad signature when the URL is
saved, and refuses an endpoint that takes it). ``PING`` is answered ``PONG``.

The commands are defined with discord.py's ``app_commands`` (so their JSON is exactly what
discord.py would register) and registered by ``warden bots sync-discord`` (``PUT
/applications/{id}/commands``):

- ``/dispute message:<link or id> reason:<text>``: anyone; a dispute on the feedback topic.
- The "Dispute" button on the warning DM (custom id ``warden:dispute:<guild>:<message>``, put
  there by the Discord executor): the same dispute, without a reason.
- ``/privacy forget [user]``, ``/privacy opt-out``, ``/privacy opt-in``: anyone, for
  themself; a moderator may name another member to forget (``actioners.bots.privacy``).
- ``/strikes user``, ``/pardon user reason``, ``/explain message``, ``/policy show``,
  ``/policy preset name``, ``/shadow mode:on|off``, ``/stats user``, ``/leaderboard``:
  moderators only. Registered with
  ``default_member_permissions`` = MODERATE_MEMBERS so Discord hides them from others, and
  checked again here from the member's ``permissions`` in the payload (MODERATE_MEMBERS or
  ADMINISTRATOR), since a server can override who sees a command.

Every reply is ephemeral (flags 64): only the user who asked sees it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import discord
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from discord import app_commands
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from actioners.bots.feedback import FeedbackSink
from actioners.bots.moderation import BadArgument, BotCommands, discord_message
from actioners.database import Database
from actioners.platforms.discord import DISPUTE_BUTTON
from actioners.policy import PRESETS
from core.errors import ConfigError
from core.settings import Settings

logger = logging.getLogger(__name__)

PATH = "/bots/discord/interactions"
SIGNATURE_HEADER = "X-Signature-Ed25519"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
TIMESTAMP_TOLERANCE_S = 300
MAX_BODY = 64 * 1024
# Interaction types and response types (discord.com/developers/docs/interactions).
PING = 1
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
PONG = 1
CHANNEL_MESSAGE = 4
EPHEMERAL = 1 << 6
# Permission bits.
ADMINISTRATOR = 1 << 3
MODERATE_MEMBERS = 1 << 40
MODERATOR_COMMANDS = frozenset(
    {"strikes", "pardon", "explain", "policy", "shadow", "stats", "leaderboard"}
)


def verify_signature(public_key: str, signature: str, timestamp: str, body: bytes) -> bool:
    """Whether ``signature`` (hex) is the Ed25519 signature of ``timestamp + body``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        key.verify(bytes.fromhex(signature), timestamp.encode() + body)
    except (ValueError, InvalidSignature):
        return False
    return True


def is_moderator(interaction: dict[str, Any]) -> bool:
    """MODERATE_MEMBERS or ADMINISTRATOR in the member's permissions (in a guild only)."""
    member = interaction.get("member")
    if not isinstance(member, dict):
        return False
    try:
        permissions = int(member.get("permissions") or 0)
    except (TypeError, ValueError):
        return False
    return bool(permissions & (MODERATE_MEMBERS | ADMINISTRATOR))


def command_options(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(``name`` or ``name sub``, {option: value}) of an application command's data."""
    name = str(data.get("name", ""))
    options = data.get("options") or []
    # A subcommand (type 1) carries its own options.
    if options and isinstance(options[0], dict) and options[0].get("type") == 1:
        name = f"{name} {options[0].get('name')}"
        options = options[0].get("options") or []
    values = {str(o.get("name")): o.get("value") for o in options if isinstance(o, dict)}
    return name, values


def dispute_button_target(custom_id: str) -> tuple[str, str] | None:
    """(guild id, message id) of a Dispute button's custom id; None for any other id."""
    prefix, _, rest = custom_id.partition(":dispute:")
    guild, _, message = rest.partition(":")
    if f"{prefix}:dispute" != DISPUTE_BUTTON or not guild.isdigit() or not message.isdigit():
        return None
    return guild, message


def ephemeral(text: str) -> dict[str, Any]:
    """An interaction response only the invoking user sees."""
    data = {"content": text[:2000], "flags": EPHEMERAL, "allowed_mentions": {"parse": []}}
    return {"type": CHANNEL_MESSAGE, "data": data}


def command_definitions() -> list[dict[str, Any]]:
    """The application commands as discord.py would register them (``PUT .../commands``)."""
    # The client only carries the tree (no connection, no voice): discord.py's warning that
    # voice libraries are missing would only be noise here.
    quiet = logging.getLogger("discord.client")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        client = discord.Client(intents=discord.Intents(guilds=True))
    finally:
        quiet.setLevel(level)
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    moderators = discord.Permissions(moderate_members=True)

    # The callbacks never run: interactions arrive over HTTP (InteractionHandler).
    @app_commands.command(name="dispute", description="Dispute a moderation action on a message")
    @app_commands.describe(message="Link to the message (or its id)", reason="Why it was wrong")
    async def dispute(interaction: discord.Interaction, message: str, reason: str) -> None: ...

    @app_commands.command(name="strikes", description="A member's active strikes")
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.guild_only()
    @app_commands.describe(user="The member")
    async def strikes(interaction: discord.Interaction, user: discord.User) -> None: ...

    @app_commands.command(name="pardon", description="Clear a member's active strikes")
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.guild_only()
    @app_commands.describe(user="The member", reason="Why (recorded)")
    async def pardon(interaction: discord.Interaction, user: discord.User, reason: str) -> None: ...

    @app_commands.command(name="explain", description="Why a message was acted on")
    @app_commands.describe(message="Link to the message (or its id)")
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.guild_only()
    async def explain(interaction: discord.Interaction, message: str) -> None: ...

    @app_commands.command(
        name="shadow", description="Shadow mode: decide and record, act on nothing"
    )
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.guild_only()
    @app_commands.choices(
        mode=[
            app_commands.Choice(name="on", value="on"),
            app_commands.Choice(name="off", value="off"),
        ]
    )
    @app_commands.describe(mode="on: decide and record only; off: act")
    async def shadow(interaction: discord.Interaction, mode: str) -> None: ...

    policy = app_commands.Group(
        name="policy",
        description="This server's moderation policy",
        default_permissions=moderators,
        guild_only=True,
    )

    @policy.command(name="show", description="The policy in force")
    async def show(interaction: discord.Interaction) -> None: ...

    @policy.command(name="preset", description="Switch to a built-in preset")
    @app_commands.choices(name=[app_commands.Choice(name=p, value=p) for p in PRESETS])
    @app_commands.describe(name="lenient, balanced, strict or livestream")
    async def use_preset(interaction: discord.Interaction, name: str) -> None: ...

    @app_commands.command(name="stats", description="A member's messages, flags and actions")
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.guild_only()
    @app_commands.describe(user="The member")
    async def stats(interaction: discord.Interaction, user: discord.User) -> None: ...

    @app_commands.command(name="leaderboard", description="This server's most-actioned members")
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.guild_only()
    async def leaderboard(interaction: discord.Interaction) -> None: ...

    # Everyone's: a member's own data (a moderator may name someone else to forget).
    privacy = app_commands.Group(
        name="privacy", description="Your data in this server's moderation", guild_only=True
    )

    @privacy.command(name="forget", description="Delete your moderation data in this server")
    @app_commands.describe(user="Moderators: the member to forget (default: you)")
    async def forget(
        interaction: discord.Interaction, user: discord.User | None = None
    ) -> None: ...

    @privacy.command(name="opt-out", description="Stop ChatWarden reading your messages here")
    async def opt_out(interaction: discord.Interaction) -> None: ...

    @privacy.command(name="opt-in", description="Let ChatWarden moderate your messages again")
    async def opt_in(interaction: discord.Interaction) -> None: ...

    commands: list[app_commands.Command[Any, ..., Any] | app_commands.Group] = [
        dispute,
        strikes,
        pardon,
        explain,
        shadow,
        policy,
        stats,
        leaderboard,
        privacy,
    ]
    return [command.to_dict(tree) for command in commands]


class InteractionHandler:
    """Answers verified interactions (``handle``) from the commands of :class:`BotCommands`."""

    def __init__(self, commands: BotCommands) -> None:
        self.commands = commands

    async def handle(self, interaction: dict[str, Any]) -> dict[str, Any]:
        kind = interaction.get("type")
        if kind == PING:
            return {"type": PONG}
        try:
            if kind == APPLICATION_COMMAND:
                return ephemeral(await self._command(interaction))
            if kind == MESSAGE_COMPONENT:
                return ephemeral(await self._component(interaction))
        except BadArgument as exc:
            return ephemeral(str(exc))
        return ephemeral("This interaction is not supported.")

    async def _component(self, interaction: dict[str, Any]) -> str:
        data = interaction.get("data") or {}
        target = dispute_button_target(str(data.get("custom_id", "")))
        if target is None:
            return "This button is not ChatWarden's."
        guild, message_id = target
        return await self.commands.dispute(
            platform="discord",
            community=guild,
            user=_user_id(interaction),
            message_id=message_id,
            reason="",
            source="discord",
        )

    async def _command(self, interaction: dict[str, Any]) -> str:
        name, options = command_options(interaction.get("data") or {})
        guild = str(interaction.get("guild_id") or "")
        user = _user_id(interaction)
        if name == "dispute":
            linked_guild, message_id = discord_message(str(options.get("message", "")))
            community = linked_guild or guild
            if not community:
                raise BadArgument("In a DM, give the message link (it names the server).")
            return await self.commands.dispute(
                platform="discord",
                community=community,
                user=user,
                message_id=message_id,
                reason=str(options.get("reason", "")),
                source="discord",
            )
        if name.startswith("privacy "):
            return await self._privacy(name, options, guild, user, interaction)
        if name.split(" ")[0] not in MODERATOR_COMMANDS:
            return f"Unknown command /{name}."
        if not guild or not is_moderator(interaction):
            return "Only moderators (Timeout Members permission) can use this command."
        moderator = f"discord:{user} (bot command)"
        if name == "strikes":
            return await self.commands.strikes("discord", guild, str(options.get("user", "")))
        if name == "pardon":
            return await self.commands.pardon(
                "discord",
                guild,
                str(options.get("user", "")),
                moderator=moderator,
                reason=str(options.get("reason", "")),
            )
        if name == "explain":
            _, message_id = discord_message(str(options.get("message", "")))
            return await self.commands.explain("discord", guild, message_id)
        if name == "policy show":
            return await self.commands.policy_show("discord", guild)
        if name == "policy preset":
            return await self.commands.policy_preset(
                "discord", guild, str(options.get("name", "")), moderator
            )
        if name == "shadow":
            mode = str(options.get("mode", ""))
            if mode not in ("on", "off"):
                raise BadArgument("/shadow on or /shadow off")
            return await self.commands.shadow("discord", guild, mode == "on", moderator)
        if name == "stats":
            return await self.commands.user_stats("discord", guild, str(options.get("user", "")))
        if name == "leaderboard":
            return await self.commands.leaderboard("discord", guild)
        return f"Unknown command /{name}."

    async def _privacy(
        self, name: str, options: dict[str, Any], guild: str, user: str, interaction: dict[str, Any]
    ) -> str:
        """``/privacy forget|opt-out|opt-in``: in a server, about the member themself (or, for
        a moderator's forget, the member named)."""
        if not guild or not user:
            return "Use this command in the server whose data it is about."
        if name == "privacy forget":
            target = str(options.get("user") or "") or None
            return await self.commands.forget(
                "discord", guild, user, target, moderator=is_moderator(interaction)
            )
        if name in ("privacy opt-out", "privacy opt-in"):
            return await self.commands.opt("discord", guild, user, out=name.endswith("out"))
        return f"Unknown command /{name}."


def _user_id(interaction: dict[str, Any]) -> str:
    """Who acted: ``member.user`` in a guild, ``user`` in a DM."""
    member = interaction.get("member")
    user = member.get("user") if isinstance(member, dict) else interaction.get("user")
    return str((user or {}).get("id") or "")


def discord_router(
    db: Database | Callable[[], Database], feedback: FeedbackSink, settings: Settings
) -> APIRouter:
    """``POST /bots/discord/interactions``; raises ConfigError without the public key."""
    public_key = settings.bots.discord_public_key
    if public_key is None:
        raise ConfigError("WARDEN_BOTS__DISCORD_PUBLIC_KEY: needed to verify Discord interactions")
    handler = InteractionHandler(BotCommands(db, feedback, settings))
    router = APIRouter()

    @router.post(PATH)
    async def interactions(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_TOLERANCE_S:
            return JSONResponse({"error": "missing or stale signature timestamp"}, 401)
        if not verify_signature(public_key, signature, timestamp, body):
            return JSONResponse({"error": "invalid request signature"}, status_code=401)
        try:
            interaction = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(interaction, dict):
            return JSONResponse({"error": "body is not an interaction object"}, status_code=400)
        return JSONResponse(await handler.handle(interaction))

    return router

"""``warden stack up|down|status``, ``warden topics create`` and ``warden migrate``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.commandline import settings_from

if TYPE_CHECKING:
    from deploy.stack import ServerStatus


@click.group()
def stack() -> None:
    """The local Kafka, Redis and PostgreSQL (loopback ports, no Docker)."""


@stack.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Install what is missing, start the servers, migrate, create the topics."""
    from deploy import stack as local_stack

    settings = settings_from(ctx)
    began = time.monotonic()
    before = local_stack.status(settings)
    local_stack.up(settings)
    after = local_stack.status(settings)
    for name, server in after.items():
        verb = "running" if before[name]["running"] else "started"
        click.echo(f"{name:<9} {verb:<8} {server['address']:<44} pid {server['pid']}")
    click.echo(
        f"ready in {time.monotonic() - began:.1f} s; data and logs in {_short(settings.stack.dir)}"
    )


@stack.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the servers that `stack up` started; their data stays."""
    from deploy import stack as local_stack

    settings = settings_from(ctx)
    before = local_stack.status(settings)
    local_stack.down(settings)
    stopped = [name for name, server in before.items() if server["running"]]
    click.echo("stopped " + ", ".join(stopped) if stopped else "nothing was running")


@stack.command()
@click.option("--check", is_flag=True, help="Exit 1 unless every server is running.")
@click.pass_context
def status(ctx: click.Context, check: bool) -> None:
    """Which servers run (pid) and where they listen."""
    from deploy import stack as local_stack

    servers = local_stack.status(settings_from(ctx))
    _print_status(servers)
    if check and not all(server["running"] for server in servers.values()):
        ctx.exit(1)


def _print_status(servers: dict[str, ServerStatus]) -> None:
    for name, server in servers.items():
        state = f"pid {server['pid']}" if server["running"] else "stopped"
        click.echo(f"{name:<9} {state:<10} {server['address']:<44} log {_short(server['log'])}")


def _short(path: str | Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


@click.group()
def topics() -> None:
    """Kafka topics declared in schemas/topics.py."""


@topics.command("create")
@click.option("--suffix", default=None, help="Appended to every name (default: the setting).")
@click.pass_context
def create(ctx: click.Context, suffix: str | None) -> None:
    """Create the topics that do not exist yet."""
    from core.topic_admin import create_topics

    settings = settings_from(ctx)
    created = asyncio.run(create_topics(settings.kafka, suffix))
    for name in created:
        click.echo(f"created {name}")
    if not created:
        click.echo("all topics exist")


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply the SQL migrations not applied yet."""
    from deploy import migrations

    applied = migrations.apply(settings_from(ctx))
    for version in applied:
        click.echo(f"applied {version}")
    if not applied:
        click.echo("database is up to date")

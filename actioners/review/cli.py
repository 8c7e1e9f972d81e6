"""``warden review`` (the review web service) and ``warden moderators add|list|grant|revoke``."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from core.commandline import settings_from

if TYPE_CHECKING:
    from actioners.database import Database
    from actioners.review.accounts import Accounts

T = TypeVar("T")
COMMUNITY_HELP = "PLATFORM:ID, e.g. discord:123456789 (repeat for several)."


@click.command()
@click.pass_context
def review(ctx: click.Context) -> None:
    """Serve the moderators' review queue (needs WARDEN_REVIEW__SESSION_SECRET)."""
    import uvicorn

    from actioners.review.web import create_app
    from core import metrics

    settings = settings_from(ctx)
    app = create_app(settings)  # fails here, naming the variable, without a session secret
    metrics.serve(settings.metrics.review_port, settings.metrics.host)
    metrics.initialise("review", settings.metrics.communities)
    uvicorn.run(
        app,
        host=settings.review.host,
        port=settings.review.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


def _run(ctx: click.Context, work: Callable[[Accounts], Awaitable[T]]) -> T:
    """``work`` on the moderator accounts, its changes recorded as made by this operator."""
    from actioners.cli import _with_db
    from actioners.commands import operator
    from actioners.review.accounts import Accounts

    async def run(db: Database) -> T:
        return await work(Accounts(db, by=await operator(db)))

    return _with_db(settings_from(ctx), run)


def _communities(values: tuple[str, ...]) -> list[tuple[str, str]]:
    from actioners.review.accounts import parse_community

    return [parse_community(v) for v in values]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def moderators() -> None:
    """Moderator accounts of the review queue and the communities each one moderates."""


@moderators.command("add")
@click.argument("name")
@click.option("--community", "communities", multiple=True, help=COMMUNITY_HELP)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@click.pass_context
def moderators_add(
    ctx: click.Context, name: str, communities: tuple[str, ...], password_stdin: bool
) -> None:
    """Add a moderator (the password is prompted for, or read with --password-stdin)."""
    from actioners.review.accounts import check_name, check_password

    check_name(name)
    grants = _communities(communities)
    password = check_password(_password(password_stdin))
    _run(ctx, lambda accounts: accounts.add(name, password, grants))
    where = ", ".join(f"{p}:{c}" for p, c in grants) or "no community yet"
    click.echo(f"moderator {name} added ({where})")


@moderators.command("list")
@click.pass_context
def moderators_list(ctx: click.Context) -> None:
    """List moderators and their communities."""

    found = _run(ctx, lambda accounts: accounts.list())
    if not found:
        click.echo("no moderators")
    for m in found:
        grants = ", ".join(f"{p}:{c}" for p, c in m.communities) or "-"
        state = " (disabled)" if m.disabled else ""
        click.echo(f"{m.name}{state}\t{grants}")


@moderators.command("grant")
@click.argument("name")
@click.option("--community", "communities", multiple=True, required=True, help=COMMUNITY_HELP)
@click.pass_context
def moderators_grant(ctx: click.Context, name: str, communities: tuple[str, ...]) -> None:
    """Let a moderator review these communities."""

    grants = _communities(communities)
    _run(ctx, lambda accounts: accounts.grant(name, grants))
    click.echo(f"{name} now moderates " + ", ".join(f"{p}:{c}" for p, c in grants))


@moderators.command("revoke")
@click.argument("name")
@click.option("--community", "communities", multiple=True, help=COMMUNITY_HELP)
@click.option("--disable", is_flag=True, help="Disable the account (signs it out everywhere).")
@click.pass_context
def moderators_revoke(
    ctx: click.Context, name: str, communities: tuple[str, ...], disable: bool
) -> None:
    """Take communities away from a moderator, or disable the account."""
    from actioners.review.accounts import AccountError

    if not communities and not disable:
        raise AccountError("say which --community to revoke, or --disable")
    grants = _communities(communities)

    async def work(accounts: Accounts) -> int:
        removed = await accounts.revoke(name, grants) if grants else 0
        if disable:
            await accounts.set_disabled(name, True)
        return removed

    removed = _run(ctx, work)
    click.echo(f"{name}: {removed} grant(s) removed" + ("; disabled" if disable else ""))

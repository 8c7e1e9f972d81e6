"""``warden models list|show|register|promote|rollback|shadow-report``: the model registry
(retrain.registry) and the challengers scoring in shadow (retrain.shadow)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.commandline import Age, settings_from

if TYPE_CHECKING:
    from retrain.registry import ModelRecord, Registry

_COLUMNS = (
    ("hatexplain_test_roc_auc", "HX test AUC", "{:.3f}"),
    ("chat_test_benign_flagged", "chat benign flagged", "{:.1%}"),
    ("chat_test_harmful_caught", "chat harmful caught", "{:.1%}"),
)


def _registry(ctx: click.Context) -> Registry:
    from retrain.registry import Registry

    return Registry(settings_from(ctx))


def _number(record: ModelRecord, key: str, fmt: str) -> str:
    value = record.metrics.get(key)
    return fmt.format(value) if isinstance(value, int | float) else "-"


@click.group()
def models() -> None:
    """The model registry: every model with its data, metrics and lineage, and which one the
    scorers run. Promotion is gated on the reserved sets; scorers pick up a promoted model
    between batches, without a restart (WARDEN_MODEL__REGISTRY names the registry)."""


@models.command("list")
@click.pass_context
def list_models(ctx: click.Context) -> None:
    """Every registered model, the active one marked with '*'.

    Without PostgreSQL (a fresh clone before `warden stack up`), the model directories shipped
    with the repository are listed instead."""
    from core.errors import TransientError

    registry = _registry(ctx)
    try:
        records = registry.records()
    except TransientError as exc:
        reason = " ".join(str(exc).split())  # one line: psycopg adds a hint line
        click.echo(f"registry offline ({reason}); the shipped model directories:", err=True)
        _list_directories()
        return
    restored = registry.sync_pointer()
    header = ["", "version", "status", "registered", *(title for _, title, _ in _COLUMNS)]
    rows = [
        [
            "*" if r.status == "active" else "",
            r.version,
            r.status,
            r.registered_at.strftime("%Y-%m-%d %H:%M"),
            *(_number(r, key, fmt) for key, _, fmt in _COLUMNS),
        ]
        for r in records
    ]
    _table(header, rows)
    if restored:
        click.echo(f"(the scorers' pointer in Redis was missing or stale: now {restored})")


def _list_directories() -> None:
    from retrain.registry import metric_summary
    from toxicity.artifacts import MODELS_DIR, default_model_dir, load_meta

    default = default_model_dir().resolve()
    rows = []
    for folder in sorted(p for p in MODELS_DIR.iterdir() if (p / "model.json").is_file()):
        meta = load_meta(folder)
        summary = metric_summary(meta.metrics)
        rows.append(
            [
                "*" if folder.resolve() == default else "",
                meta.version,
                "shipped (models/DEFAULT)" if folder.resolve() == default else "directory",
                *(
                    fmt.format(summary[key]) if summary.get(key) is not None else "-"
                    for key, _, fmt in _COLUMNS
                ),
            ]
        )
    _table(["", "version", "status", *(title for _, title, _ in _COLUMNS)], rows)


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


@models.command("show")
@click.argument("version", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def show(ctx: click.Context, version: str | None, as_json: bool) -> None:
    """One model (the active one by default): path, data, metrics, lineage and history."""
    from toxicity.artifacts import resolve_stored

    registry = _registry(ctx)
    record = registry.get(version) if version else registry.active()
    if record is None:
        raise click.UsageError("no active model: name a version")
    events = registry.events(record.version)
    lineage = registry.lineage(record.version)
    document: dict[str, Any] = {
        "version": record.version,
        "status": record.status,
        "path": record.path,
        "card": str(resolve_stored(record.path) / "MODEL_CARD.md"),
        "parent": record.parent,
        "lineage": lineage,
        "trained_at": record.trained_at.isoformat() if record.trained_at else None,
        "registered_at": record.registered_at.isoformat(),
        "metrics": record.metrics,
        "data": {"rows": record.data.get("rows", {}), "sha256": record.data.get("data_sha256")},
        "history": [
            {
                "at": e.at.isoformat(),
                "event": e.event,
                "version": e.version,
                "previous": e.previous,
                "actor": e.actor,
                "reason": e.reason,
            }
            for e in events
        ],
    }
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
        return
    click.echo(f"{record.version}  ({record.status})")
    click.echo(f"  path     {record.path}")
    click.echo(f"  card     {document['card']}")
    click.echo(f"  lineage  {' <- '.join(lineage)}")
    rows = document["data"]["rows"]
    if rows:
        click.echo("  data     " + ", ".join(f"{k} {v}" for k, v in rows.items()))
    for key, value in record.metrics.items():
        if value is not None:
            click.echo(
                f"  {key:<28} {value:.4f}" if isinstance(value, float) else f"  {key} {value}"
            )
    click.echo("  history")
    for e in events:
        previous = f" (was {e.previous})" if e.previous and e.version == record.version else ""
        target = "" if e.version == record.version else f" {e.version} replaced it"
        click.echo(
            f"    {e.at:%Y-%m-%d %H:%M} {e.event}{previous}{target} by {e.actor}"
            + (f": {e.reason}" if e.reason else "")
        )


@models.command("register")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--parent", default=None, help="The model it was derived from.")
@click.pass_context
def register(ctx: click.Context, folder: Path, parent: str | None) -> None:
    """Record a model directory (from `warden train`) as a candidate."""
    record = _registry(ctx).register(folder, parent=parent)
    click.echo(f"{record.version} registered ({record.status}): {record.path}")


@models.command("promote")
@click.argument("version")
@click.option("--force", is_flag=True, help="Promote even when the gate refuses (recorded).")
@click.option("--reason", default="", help="Why, for the history.")
@click.pass_context
def promote(ctx: click.Context, version: str, force: bool, reason: str) -> None:
    """Make a candidate the active model, if it is not worse than the active one on any reserved
    set beyond noise (paired bootstrap, 95 %; see retrain/gating.py). Running scorers switch to
    it between batches."""
    promotion = _registry(ctx).promote(version, force=force, reason=reason)
    for check in promotion.checks:
        click.echo(f"  {check.line()}")
    state = "FORCED past the gate" if promotion.forced else "promoted"
    click.echo(f"{version} {state}; was {promotion.previous or 'none'}")


@models.command("rollback")
@click.option("--reason", default="", help="Why, for the history.")
@click.pass_context
def rollback(ctx: click.Context, reason: str) -> None:
    """Make the model that was active before the current one active again (no gate)."""
    record, was = _registry(ctx).rollback(reason=reason)
    click.echo(f"{record.version} active again; {was} retired")


@models.command("shadow-report")
@click.option(
    "--since", type=Age(), default="24h", show_default=True, help="How far back: 30m, 24h, 7d."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per challenger.")
@click.pass_context
def shadow_report(ctx: click.Context, since: timedelta, as_json: bool) -> None:
    """Challengers in shadow against the live model: agreement, flag-rate difference and, on
    messages a moderator reviewed, who was right (a challenger is a scorer started with
    WARDEN_SCORER__SHADOW=true and its WARDEN_MODEL__PATH)."""
    import asyncio

    from retrain.shadow import report

    start = datetime.now(UTC) - since
    tallies = asyncio.run(report(settings_from(ctx), start))
    if as_json:
        for tally in tallies:
            click.echo(json.dumps(tally.summary()))
        return
    if not tallies:
        click.echo(f"no challenger verdicts joined to live ones since {start:%Y-%m-%d %H:%M} UTC")
    for tally in tallies:
        s = tally.summary()
        click.echo(
            f"{tally.challenger} vs {', '.join(s['live_models'])}: {tally.messages} messages,"
            f" flag agreement {s['flag_agreement']:.1%}, severity agreement"
            f" {s['severity_agreement']:.1%}, flag rate {s['challenger_flag_rate']:.1%} vs"
            f" {s['live_flag_rate']:.1%} ({100 * s['flag_rate_difference']:+.1f} points)"
        )
        if tally.reviewed:
            click.echo(
                f"  reviewed {tally.reviewed}: challenger right"
                f" {s['challenger_accuracy_on_reviewed']:.1%}, live right"
                f" {s['live_accuracy_on_reviewed']:.1%} (only the challenger right"
                f" {tally.only_challenger_right}, only live right {tally.only_live_right},"
                f" both wrong {tally.both_wrong})"
            )
        else:
            click.echo("  no reviewed messages among them yet")


@models.command("forget-user")
@click.argument("key")
@click.pass_context
def forget_user(ctx: click.Context, key: str) -> None:
    """Leave a user's messages (and the reviews of them) out of every later retrain.
    KEY is PLATFORM:COMMUNITY:USER, e.g. discord:123:456."""
    parts = key.split(":")
    if len(parts) != 3 or not all(parts):
        raise click.BadParameter(f"{key!r}: expected PLATFORM:COMMUNITY:USER", param_hint="KEY")
    added = _registry(ctx).forget_user(*parts)
    state = "recorded" if added else "was already recorded"
    click.echo(f"{key}: {state}; later retrains leave this user's data out")

"""``warden drift run|report|pin|list``: the drift monitor and the commands an operator runs
beside it. Evidently and Kafka are imported inside the commands, so ``--help`` stays fast."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from core.commandline import settings_from
from core.errors import TransientError, WardenError

if TYPE_CHECKING:
    from core.settings import Settings
    from retrain.drift import Windows

# A reference needs at least this many verdicts (fewer make every test noise).
MIN_PIN_ROWS = 50


class DriftCommandError(WardenError):
    """Nothing to test or pin: no verdicts of the communities asked for on the topic."""


COMMUNITY = click.option(
    "--community",
    "communities",
    multiple=True,
    metavar="KEY",
    help="platform:community, or a bare community name (repeatable) [default: every "
    "community read].",
)
SCAN = click.option(
    "--scan",
    type=click.IntRange(1, 10_000_000),
    default=None,
    help="Verdicts read from the end of each partition of moderation.verdicts.v1 "
    "[default: 5 x WARDEN_DRIFT__WINDOW_ROWS].",
)


@click.group()
def drift() -> None:
    """Drift of each community's verdicts against a pinned reference (Evidently).

    \b
    A community's reference is its first WARDEN_DRIFT__REFERENCE_ROWS verdicts (saved under
    WARDEN_DRIFT__DIR/references; `warden drift pin` replaces it). Each test compares the
    newest WARDEN_DRIFT__WINDOW_ROWS verdicts with it, column by column: p_toxic, flagged,
    severity, one column per label, text length, non-ASCII share and script, and the
    WARDEN_DRIFT__FEATURES of the feature snapshot.
    """


@drift.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The monitor: read moderation.verdicts.v1 (own consumer group), test every community
    every WARDEN_DRIFT__CHECK_EVERY_S, export warden_drift_* metrics on
    WARDEN_METRICS__DRIFT_PORT, write an HTML report and publish a DriftEvent on
    moderation.drift.v1 when a community drifts (at most once per WARDEN_DRIFT__COOLDOWN_S)."""
    from core import metrics
    from core.stopping import run_until_signalled
    from retrain.drift import prepare_folders
    from retrain.drift_service import serve

    settings = settings_from(ctx)
    prepare_folders(settings)
    metrics.serve(settings.metrics.drift_port, settings.metrics.host)
    metrics.initialise("drift", settings.metrics.communities)

    run_until_signalled(lambda stop: serve(settings, stop))


def _read(settings: Settings, scan: int | None, *, rows: int | None = None) -> Windows:
    """The newest verdicts on the topic, in windows (nothing pinned, nothing committed)."""
    from aiokafka.errors import KafkaError

    from retrain.drift import ReferenceStore, Windows, folders
    from retrain.drift_service import read_tail

    config = settings.drift
    if rows is not None:
        config = config.model_copy(update={"reference_rows": rows})
    windows = Windows(config, ReferenceStore(folders(settings)[0]), auto_pin=False)
    per_partition = scan or 5 * max(config.window_rows, config.reference_rows)
    try:
        asyncio.run(read_tail(settings, windows, per_partition))
    except KafkaError as exc:
        raise TransientError(
            f"cannot read the verdicts from {settings.kafka.bootstrap_servers}: {exc!r}"
        ) from exc
    return windows


def _chosen(windows: Windows, communities: tuple[str, ...]) -> list[str]:
    from retrain.drift import matching

    keys = matching((w.key for w in windows), communities)
    if not keys:
        asked = ", ".join(communities) if communities else "any community"
        raise DriftCommandError(f"no verdicts of {asked} among the newest on the topic")
    return sorted(keys)


@drift.command()
@COMMUNITY
@SCAN
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON lines.")
@click.pass_context
def report(
    ctx: click.Context, communities: tuple[str, ...], scan: int | None, as_json: bool
) -> None:
    """Test the newest verdicts of each community against its reference now, write an
    Evidently HTML report per community (WARDEN_DRIFT__REPORTS_DIR) and print where it went.

    Nothing is published and nothing pinned; a community without a reference is named."""
    from retrain.drift import compare, load_evidently, prepare_folders, write_report

    settings = settings_from(ctx)
    _, reports = prepare_folders(settings)
    load_evidently()
    windows = _read(settings, scan)
    config = settings.drift
    for key in _chosen(windows, communities):
        window = windows.get(key)
        assert window is not None
        if window.reference is None:
            click.echo(
                f"{key}: {len(window.rows)} verdicts read, no reference yet (`warden drift pin "
                f"--community {key}`, or `warden drift run` pins its first "
                f"{config.reference_rows})"
            )
            continue
        result = compare(windows.current(window), window.reference.sample, config)
        write_report(result, reports, config.keep_reports, datetime.now(UTC))
        if as_json:
            line = {
                "community": key,
                "rows": len(result.current.rows),
                "reference_rows": len(result.reference.rows),
                "detected": result.detected,
                "drift_share": result.share,
                "drifted": list(result.drifted),
                "scores": result.scores,
                "flag_rate": result.flag_rate,
                "reference_flag_rate": result.reference_flag_rate,
                "report": str(result.report) if result.report else None,
            }
            click.echo(json.dumps(line))
            continue
        verdict = "DRIFT" if result.detected else "no drift"
        noisy = (
            " (fewer than WARDEN_DRIFT__MIN_ROWS: noisy)"
            if (len(result.current.rows) < config.min_rows)
            else ""
        )
        click.echo(
            f"{key}: {verdict}: {len(result.drifted)} of {len(result.scores)} columns drifted "
            f"({result.method} >= {result.threshold:g}): {', '.join(result.drifted) or '-'}; "
            f"flag rate {result.reference_flag_rate:.3f} -> {result.flag_rate:.3f}; "
            f"{len(result.current.rows)} verdicts vs {len(result.reference.rows)}{noisy}"
        )
        click.echo(f"  report: {result.report or 'none (no column could be tested)'}")


@drift.command()
@COMMUNITY
@SCAN
@click.option(
    "--rows",
    type=click.IntRange(MIN_PIN_ROWS, 100_000),
    default=None,
    help="Verdicts in the new reference [default: WARDEN_DRIFT__REFERENCE_ROWS].",
)
@click.pass_context
def pin(
    ctx: click.Context, communities: tuple[str, ...], scan: int | None, rows: int | None
) -> None:
    """Make each community's newest verdicts on the topic its reference (replacing the old).

    Pin after accepting a change (a new model, a new policy, a new audience); a running
    `warden drift run` tests against the new reference from its next check."""
    from retrain.drift import prepare_folders

    settings = settings_from(ctx)
    prepare_folders(settings)
    size = rows or settings.drift.reference_rows
    windows = _read(settings, scan, rows=size)
    for key in _chosen(windows, communities):
        window = windows.get(key)
        assert window is not None
        if len(window.rows) < MIN_PIN_ROWS:
            click.echo(f"{key}: only {len(window.rows)} verdicts read; not pinned")
            continue
        reference = windows.pin(window, source="warden drift pin")
        sample = reference.sample
        click.echo(
            f"{key}: pinned {len(sample.rows)} verdicts from {sample.start:%Y-%m-%d %H:%M:%S} "
            f"to {sample.end:%Y-%m-%d %H:%M:%S} UTC -> {windows.store.path(key)}"
        )


@drift.command(name="list")
@click.pass_context
def list_references(ctx: click.Context) -> None:
    """The references on disk: community, verdicts, period, when and how pinned, and its
    newest drift report."""
    from retrain.drift import ReferenceStore, folders, slug

    settings = settings_from(ctx)
    references, reports = folders(settings)
    found = False
    for reference in ReferenceStore(references).all():
        found = True
        sample = reference.sample
        latest = sorted(reports.glob(f"{slug(sample.key)}-*.html"))
        click.echo(
            f"{sample.key}: {len(sample.rows)} verdicts {sample.start:%Y-%m-%d %H:%M} to "
            f"{sample.end:%Y-%m-%d %H:%M} UTC, pinned {reference.pinned_at:%Y-%m-%d %H:%M} "
            f"({reference.source}); report: {latest[-1] if latest else '-'}"
        )
    if not found:
        click.echo(f"no references in {references}")

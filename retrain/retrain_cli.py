"""``warden retrain``: a candidate model from the base data plus reviewed feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from core.commandline import settings_from


@click.command()
@click.option(
    "--since-days",
    type=float,
    default=None,
    help="Read verdicts and reviews this far back [default: WARDEN_RETRAIN__SINCE_DAYS, 14].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Parent folder of the candidate [default: WARDEN_RETRAIN__OUT_DIR or <cache>/models].",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Keep running; retrain when WARDEN_RETRAIN__TRIGGER says (drift, new reviews, either).",
)
@click.option("--sample", type=int, default=None, hidden=True)
@click.option("--pool-csv", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
@click.option("--hatexplain-dir", type=click.Path(file_okay=False, path_type=Path), hidden=True)
@click.pass_context
def retrain(
    ctx: click.Context,
    since_days: float | None,
    out: Path | None,
    watch: bool,
    sample: int | None,
    pool_csv: Path | None,
    hatexplain_dir: Path | None,
) -> None:
    """Train a candidate from the base training set plus moderators' reviews (the feedback
    topic joined to the verdicts they judged, with their context features; a stable 20 % held
    out), evaluate it on the reserved sets and the held-out feedback next to the active model,
    and register it as a candidate. Promote it with `warden models promote` (gated).
    How labels are weighted, deduplicated and how deleted users are left out:
    retrain/feedback.py."""
    import asyncio

    from retrain.retraining import retrain as run_retrain
    from retrain.retraining import watch as run_watch

    settings = settings_from(ctx)
    options: dict[str, Any] = {
        "out": out,
        "sample": sample,
        "pool_csv": pool_csv,
        "hatexplain_dir": hatexplain_dir,
    }
    if watch:
        asyncio.run(run_watch(settings, echo=click.echo, **options))
        return
    since = datetime.now(UTC) - timedelta(days=since_days) if since_days is not None else None
    done = run_retrain(settings, since=since, echo=click.echo, **options)
    click.echo(f"candidate {done.record.version}: `warden models promote {done.record.version}`")

"""``warden bench``: run the benchmark and write its JSON summary and plot."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import click

from core.commandline import settings_from


@click.command()
@click.option("--quick", is_flag=True, help="A short run (under 5 minutes with the stack).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON summary here too (it is always printed).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-latency.png"),
    show_default=True,
    help="PNG of latency against offered load.",
)
@click.option("--no-stack", is_flag=True, help="Use the configured Kafka/Redis as they are.")
@click.pass_context
def bench(
    ctx: click.Context, quick: bool, json_path: Path | None, plot_path: Path, no_stack: bool
) -> None:
    """Model-only ceiling vs pipeline vs per-message HTTP, in one run on this machine."""
    from benchmarks.cpu_sampler import machine_table
    from benchmarks.pipeline import Plan, plot, run
    from benchmarks.stage_costs import stage_table

    settings = settings_from(ctx)
    started = time.monotonic()
    if not no_stack:
        from deploy import stack

        stack.up(settings)
    plan = Plan.quick() if quick else Plan.full()
    (settings.stack.dir / "logs").mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run(settings, plan, settings.stack.dir / "logs"))
    report.results["plan"] = "quick" if quick else "full"
    report.results["wall_seconds"] = round(time.monotonic() - started, 1)
    plot(report, plot_path)
    text = json.dumps(report.results, indent=2)
    if json_path is not None:
        json_path.write_text(text + "\n")
    click.echo(text)
    results = report.results
    per_core = results.get("per_core", {})
    for name, costs, machine in (
        (
            "one scorer",
            results.get("stage_costs_us_per_msg"),
            results.get("machine_cpu_us_per_msg"),
        ),
        (
            "one scorer per core, sharing their cache",
            per_core.get("stage_costs_us_per_msg"),
            per_core.get("machine_cpu_us_per_msg"),
        ),
    ):
        if costs:
            click.echo(f"per-stage CPU, {name}:\n{stage_table(costs)}", err=True)
        if machine:
            click.echo(f"the machine over the drains, {name}:\n{machine_table(machine)}", err=True)
    for drain, warning in results.get("disturbed_drains", {}).items():
        click.echo(f"warning: {drain}: {warning}", err=True)
    click.echo(f"plot: {plot_path}", err=True)

"""Fault trials: the whole pipeline on a throwaway stack whose servers the trials stop.

One :class:`pipeline.ChaosStack` serves the whole session (its servers start in ~20 s); each
trial has its own topics, consumer groups and Discord guild. ``make test`` runs the trials
small (``--chaos-messages`` 1200, 8 s outages); ``make chaos`` runs them at 9,000 messages and
30 s outages and writes the report the README quotes (``--chaos-report``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability.pipeline import ChaosStack

from core.settings import load_settings

REPORT: list[dict[str, Any]] = []
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every trial here runs a stack of its own: mark it ``integration`` and ``reliability``.

    A hook sees the whole session's items, so only those under this folder are marked.
    """
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    stack = ChaosStack(tmp_path_factory.mktemp("chaos-stack"), load_settings())
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
def chaos_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    config = request.config
    return {
        "messages": config.getoption("--chaos-messages"),
        "rate": config.getoption("--chaos-rate"),
        "outage_s": config.getoption("--chaos-outage-s"),
    }


@pytest.fixture
def report() -> Any:
    """Call with an Outcome row to put it in the session's report."""
    return REPORT.append


def pytest_sessionfinish(session: pytest.Session) -> None:
    path: Path | None = session.config.getoption("--chaos-report")
    if path is None or not REPORT:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(REPORT, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(REPORT))


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| trial | fault | messages | verdicts | lost | duplicate verdicts | dead letters |"
        " actions done | repeated platform calls | results published twice |"
        " longest verdict gap | replay exit | alive and ready after | SIGTERM stop (slowest) |"
        " log lines (most) | notes |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        ok = all(r["alive_after"].values()) and all(r["ready_after"].values())
        lines.append(
            f"| {r['trial']} | {r['fault']} | {r['messages']} | {r['verdicts']} | {r['lost']} |"
            f" {r['duplicate_verdicts']} | {r['dead_letters']} | {r['actions_done']} |"
            f" {r['repeated_platform_calls']} | {r['results_published_twice']} |"
            f" {r['longest_verdict_gap_s']:.1f} s | {r['replay_exit']} |"
            f" {'yes' if ok else 'NO'} | {max(r['stop_seconds'].values(), default=0):.1f} s |"
            f" {max(r['log_lines'].values(), default=0)} | {'; '.join(r['notes'])} |"
        )
    return head + "\n".join(lines) + "\n"

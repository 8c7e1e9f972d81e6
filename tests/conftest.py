"""Options shared by every test tier (pytest reads them from this root conftest only)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "reliability trials (tests/reliability)")
    group.addoption(
        "--chaos-messages",
        type=int,
        default=1200,
        help="Messages replayed through the pipeline in each fault trial (make chaos: 9000).",
    )
    group.addoption(
        "--chaos-rate",
        type=float,
        default=100.0,
        help="Replay rate in messages per second during a fault trial (make chaos: 300).",
    )
    group.addoption(
        "--chaos-outage-s",
        type=float,
        default=8.0,
        help="How long a server stays down in an outage trial (make chaos: 30).",
    )
    group.addoption(
        "--chaos-report",
        type=Path,
        default=None,
        help="Write each trial's counts to this JSON file (and a Markdown table beside it).",
    )
    group = parser.getgroup("screenshots", "the review pages' screenshots")
    group.addoption(
        "--screenshots",
        type=Path,
        default=None,
        help="Save the browser test's screenshots here (the README's are docs/: "
        "pytest tests/integration/test_review_browser.py --screenshots docs).",
    )

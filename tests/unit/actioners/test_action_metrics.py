"""The dispatcher's metrics: failed-action and rate-limit series exist at 0 from the start (the
alerts use increase(), which needs a sample before the first failure), and every finished
action is counted by community, kind and result in warden_community_actions_total."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from actioners.dispatch import Dispatcher
from actioners.executors import LogExecutor, Router
from actioners.ledger import Entry, Source, State
from core import metrics
from core.settings import ActionerSettings
from schemas.events import ActionKind, ActionRequest, ActionResult, Platform, Severity

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_community_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Label communities from scratch: other tests in this process may have named 20 already."""
    monkeypatch.setattr(metrics, "COMMUNITIES", metrics.CommunityLabels(20))


def entry(n: int, kind: str, community: str, platform: Platform = Platform.DISCORD) -> Entry:
    request = ActionRequest(
        action_id=f"{community}-m{n}:{kind}",
        message_id=f"{community}-m{n}",
        platform=platform,
        community=community,
        channel="c1",
        user=f"u{n}",
        kind=ActionKind(kind),
        reason="test",
        severity=Severity.HIGH,
        p_toxic=0.9,
        model_version="m",
        policy_version="p",
        sent_at=NOW,
        requested_at=NOW,
    )
    return Entry(request=request, state=State.PENDING, source=Source("verdicts", 0, n))


class Books:
    async def start(self, entries: Sequence[Entry], executor: str) -> list[Entry]:
        return [replace(e, state=State.IN_FLIGHT, started_at=NOW) for e in entries]

    async def finish(
        self, entry: Entry, result: ActionResult, attempts: int, restore: Any = None
    ) -> Entry:
        return replace(entry, state=State(result.status.value), detail=result.detail)


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_failure_series_exist_from_the_start() -> None:
    Dispatcher(Router({Platform.DISCORD: LogExecutor()}), Books(), ActionerSettings())
    for platform in ("discord", "slack", "twitch"):
        for kind in ("delete", "timeout", "ban"):
            labels = {"platform": platform, "kind": kind, "status": "failed"}
            assert value("warden_actions_total", **labels) is not None, labels
    assert value("warden_action_rate_limited_total", executor="log") is not None
    assert value("warden_action_retries_total", executor="log") is not None


async def test_finished_actions_are_counted_by_community_kind_and_result() -> None:
    dispatcher = Dispatcher(Router({Platform.DISCORD: LogExecutor()}), Books(), ActionerSettings())
    entries = [
        entry(0, "delete", "metrics-g1"),
        entry(1, "timeout", "metrics-g1"),
        entry(2, "delete", "metrics-g1"),
        # No executor for Slack here: skipped, and counted as such.
        entry(3, "ban", "metrics-T1", Platform.SLACK),
    ]
    finished = await dispatcher.run(entries)
    assert sorted(e.state.value for e in finished) == ["done", "done", "done", "skipped"]
    done = {"community": "discord:metrics-g1", "status": "done"}
    assert value("warden_community_actions_total", kind="delete", **done) == 2
    assert value("warden_community_actions_total", kind="timeout", **done) == 1
    skipped = {"community": "slack:metrics-T1", "kind": "ban", "status": "skipped"}
    assert value("warden_community_actions_total", **skipped) == 1

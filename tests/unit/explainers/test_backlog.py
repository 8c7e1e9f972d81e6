"""The explainer's queue: HIGH first, newest first within a grade, the least urgent shed; and
the service's intake (which verdicts are queued, disputes answered, sheds counted), no Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from core.settings import ExplainerSettings, Settings
from explainers.backlog import Backlog, Job
from explainers.service import ExplainerService, RecentVerdicts
from schemas.events import Feedback, FeedbackKind, Platform, Severity, Verdict

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def verdict(message_id: str, severity: str, text: str = "some line") -> Verdict:
    return Verdict(
        message_id=message_id,
        platform=Platform.TWITCH,
        community="chan",
        channel="chan",
        user="u",
        text=text,
        p_toxic={"SAFE": 0.1, "LOW": 0.4, "MEDIUM": 0.6, "HIGH": 0.9}[severity],
        severity=Severity(severity),
        flagged=severity in ("MEDIUM", "HIGH"),
        model_version="m",
        sent_at=AT,
        received_at=AT,
        scored_at=AT,
    )


def drain(backlog: Backlog) -> list[str]:
    out = []
    while (job := backlog.pop()) is not None:
        out.append(job.verdict.message_id)
    return out


def test_high_first_then_medium_then_low_newest_first_within_a_grade() -> None:
    backlog = Backlog(10)
    for message_id, severity in [
        ("l1", "LOW"), ("m1", "MEDIUM"), ("h1", "HIGH"), ("m2", "MEDIUM"), ("h2", "HIGH"),
    ]:  # fmt: skip
        assert backlog.put(Job(verdict(message_id, severity))) is None
    backlog.put(Job(verdict("s1", "SAFE"), on_demand=True))
    assert backlog.holds("m1") and not backlog.holds("x")
    assert drain(backlog) == ["s1", "h2", "h1", "m2", "m1", "l1"]


def test_a_full_queue_sheds_the_oldest_of_the_lowest_grade() -> None:
    backlog = Backlog(3)
    for message_id, severity in [("m1", "MEDIUM"), ("l1", "LOW"), ("l2", "LOW")]:
        backlog.put(Job(verdict(message_id, severity)))
    shed = backlog.put(Job(verdict("h1", "HIGH")))
    assert shed is not None and shed.verdict.message_id == "l1"
    shed = backlog.put(Job(verdict("m2", "MEDIUM")))
    assert shed is not None and shed.verdict.message_id == "l2"
    # Nothing below MEDIUM left: a new LOW ranks below everything and is shed itself.
    shed = backlog.put(Job(verdict("l3", "LOW")))
    assert shed is not None and shed.verdict.message_id == "l3"
    # The same grade: the newcomer stays, the oldest of that grade goes.
    shed = backlog.put(Job(verdict("m3", "MEDIUM")))
    assert shed is not None and shed.verdict.message_id == "m1"
    assert len(backlog) == 3
    assert drain(backlog) == ["h1", "m3", "m2"]


def shed_count(severity: str) -> float:
    return REGISTRY.get_sample_value("warden_explanations_shed_total", {"severity": severity}) or 0


@pytest.fixture
def service() -> ExplainerService:
    settings = Settings(explainer=ExplainerSettings(queue_size=2, min_severity="MEDIUM"))
    none: Any = None  # the intake needs neither Kafka nor the model
    return ExplainerService(settings, none, none, none)


def test_intake_queues_flagged_verdicts_counts_sheds_and_answers_disputes(
    service: ExplainerService,
) -> None:
    before = shed_count("MEDIUM")
    service.on_verdict(verdict("safe1", "SAFE"))
    service.on_verdict(verdict("low1", "LOW"))
    assert len(service.backlog) == 0  # below min_severity: remembered, not explained
    service.on_verdict(verdict("m1", "MEDIUM"))
    service.on_verdict(verdict("h1", "HIGH"))
    service.on_verdict(verdict("h2", "HIGH"))  # full: m1 is shed
    assert shed_count("MEDIUM") == before + 1
    dispute = Feedback(
        feedback_id="f1",
        kind=FeedbackKind.DISPUTE,
        message_id="low1",
        platform=Platform.TWITCH,
        community="chan",
        user="u",
        created_at=AT,
    )
    high = shed_count("HIGH")
    # Someone waits for these: explained on demand, ahead of (here: instead of) HIGH ones.
    service.on_feedback(dispute)
    service.on_feedback(dispute.model_copy(update={"message_id": "m1"}))  # shed, then disputed
    service.on_feedback(dispute.model_copy(update={"message_id": "never-seen"}))
    assert shed_count("HIGH") == high + 2
    jobs = [service.backlog.pop(), service.backlog.pop()]
    assert [(j.verdict.message_id, j.on_demand) for j in jobs if j] == [
        ("m1", True),
        ("low1", True),
    ]


def test_recent_verdicts_are_bounded_in_count_and_characters() -> None:
    recent = RecentVerdicts(max_entries=2, max_chars=25)
    recent.add(verdict("a", "SAFE", "x" * 10))
    recent.add(verdict("b", "SAFE", "x" * 10))
    recent.add(verdict("c", "SAFE", "x" * 10))
    assert recent.pop("a") is None
    assert recent.chars == 20
    recent.add(verdict("d", "SAFE", "x" * 10))  # 30 characters: b goes
    assert recent.pop("b") is None and recent.pop("c") is not None
    recent.add(verdict("e", "SAFE", "x" * 26))  # longer than the whole budget: not kept
    assert recent.pop("e") is None

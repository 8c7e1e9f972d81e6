"""core.metrics: bounded community labels, outcome counting, and failure series that exist
from the start (so that an alert on ``increase()`` sees the first failure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from core import metrics
from core.metrics import CommunityLabels
from schemas.events import Verdict

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def fresh_community_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Label communities from scratch: other tests in this process may have named 20 already."""
    monkeypatch.setattr(metrics, "COMMUNITIES", metrics.CommunityLabels(20))


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def verdict(
    community: str, severity: str, p_toxic: float, labels: list[str], **extra: object
) -> Verdict:
    return Verdict.model_validate(
        {
            **extra,
            "message_id": "m1",
            "platform": "discord",
            "community": community,
            "channel": "c",
            "user": "u",
            "text": "hi",
            "p_toxic": p_toxic,
            "severity": severity,
            "flagged": severity in ("MEDIUM", "HIGH"),
            "labels": labels,
            "model_version": "v1",
            "sent_at": "2026-11-21T10:00:00+00:00",
            "received_at": "2026-11-21T10:00:00+00:00",
            "scored_at": "2026-11-21T10:00:01+00:00",
        }
    )


def test_the_first_communities_are_named_and_the_rest_are_other() -> None:
    labels = CommunityLabels(2)
    assert labels("discord", "g1") == "discord:g1"
    assert labels("slack", "T1") == "slack:T1"
    assert labels("discord", "g2") == "other"
    assert labels("twitch", "x") == "other"
    # A named community keeps its label; "other" never takes a place.
    assert labels("discord", "g1") == "discord:g1"
    assert labels("slack", "T1") == "slack:T1"
    assert CommunityLabels(0)("discord", "g1") == "other"


def test_a_verdict_counts_its_kind_severity_flag_labels_and_score() -> None:
    key = "discord:outcome-test"
    text = {"community": key, "kind": "text"}
    before = value("warden_verdicts_total", **text, severity="HIGH", flagged="true") or 0
    low = value("warden_verdict_p_toxic_bucket", **text, le="0.9") or 0
    high = value("warden_verdict_p_toxic_bucket", **text, le="0.95") or 0
    image = verdict(
        "outcome-test",
        "HIGH",
        0.97,
        ["sexual_explicit"],
        kind="image",
        images=[{"url": "https://cdn.example/a.png", "index": 0, "sha256": "ab" * 32}],
    )
    metrics.observe_verdicts(
        [
            verdict("outcome-test", "HIGH", 0.93, ["insult", "spam", "made-up"]),
            verdict("outcome-test", "SAFE", 0.02, []),
            image,
        ]
    )
    assert value("warden_verdicts_total", **text, severity="HIGH", flagged="true") == (before + 1)
    assert value("warden_verdicts_total", **text, severity="SAFE", flagged="false") == 1
    assert value("warden_verdict_labels_total", **text, label="insult") == 1
    assert value("warden_verdict_labels_total", **text, label="spam") == 1
    # A label outside the taxonomy is "other": verdict labels are open strings on the wire.
    assert value("warden_verdict_labels_total", **text, label="other") == 1
    assert value("warden_verdict_labels_total", **text, label="made-up") is None
    # 0.02 is at most 0.9; 0.93 only at most 0.95.
    assert value("warden_verdict_p_toxic_bucket", **text, le="0.9") == low + 1
    assert value("warden_verdict_p_toxic_bucket", **text, le="0.95") == high + 2
    assert value("warden_verdict_p_toxic_count", **text) == 2
    # The image verdict is counted apart, with its image label named.
    pictured = {"community": key, "kind": "image"}
    assert value("warden_verdicts_total", **pictured, severity="HIGH", flagged="true") == 1
    assert value("warden_verdict_labels_total", **pictured, label="sexual_explicit") == 1
    assert value("warden_verdict_p_toxic_count", **pictured) == 1


def test_initialise_creates_the_failure_series_at_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(metrics.ERROR_KINDS, "fresh", ("first_kind", "second_kind"))
    assert value("warden_errors_total", service="fresh", kind="first_kind") is None
    metrics.initialise("fresh")
    assert value("warden_dead_letters_total", service="fresh") == 0
    assert value("warden_errors_total", service="fresh", kind="first_kind") == 0
    assert value("warden_errors_total", service="fresh", kind="second_kind") == 0
    metrics.initialise("explainer")
    for kind in metrics.ERROR_KINDS["explainer"]:
        assert value("warden_errors_total", service="explainer", kind=kind) is not None
    monkeypatch.setattr(metrics.COMMUNITIES, "limit", metrics.COMMUNITIES.limit)  # restored
    metrics.initialise("scorer", communities=7)
    assert value("warden_degraded_total", service="scorer") is not None
    assert value("warden_model_swaps_total", service="scorer", result="failed") is not None
    assert metrics.COMMUNITIES.limit == 7


def test_every_error_kind_the_code_counts_is_initialised() -> None:
    """`metrics.ERRORS.labels(SERVICE, "kind")` anywhere in the services: each literal kind is
    in ERROR_KINDS, so its series exists before its first error."""
    call = re.compile(r"ERRORS\.labels\(\s*[\w.\"]+\s*,\s*\"([a-z_]+)\"\s*\)")
    spelt: dict[str, str] = {}
    for path in ROOT.rglob("*.py"):
        if path.relative_to(ROOT).parts[0] in {"tests", "build"}:
            continue
        for kind in call.findall(path.read_text()):
            spelt[kind] = str(path.relative_to(ROOT))
    assert len(spelt) >= 10, "the scan found too little to mean anything"
    known = {kind for kinds in metrics.ERROR_KINDS.values() for kind in kinds}
    assert {kind: where for kind, where in spelt.items() if kind not in known} == {}


def test_thread_cpu_counts_a_child_process_as_the_encoders() -> None:
    """A scorer's encoder sessions may run in a child process: its CPU is reported as
    ``encoder_process`` and is part of the process total (`warden bench` reads both)."""
    import subprocess
    import sys
    import time

    def reading() -> dict[str, float]:
        (family,) = metrics._ThreadCpu().collect()
        return {sample.labels["thread"]: sample.value for sample in family.samples}

    # Other children of the test process (a throwaway broker) count too: compare before/after.
    before = reading().get("encoder_process", 0.0)
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        used = reading()
    finally:
        child.kill()
        child.wait()
    assert used["encoder_process"] - before >= 0.1
    assert used["process"] >= used["encoder_process"]

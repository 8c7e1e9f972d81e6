"""`warden replay-decision`'s comparisons: a score, a stream-detector flag and a decision made
again against what was stored (no servers: the lexical model, the built-in presets)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest

from actioners.ledger import decision_row
from actioners.policy import Decision, builtin, evaluate, preset, stored_number
from actioners.policystore import StoredPolicy
from core.commandline import Age
from core.settings import Settings, load_settings
from schemas.events import ChatMessage, Platform, Severity, Verdict
from scorers.batch import BatchScorer
from toxicity.base import Score, Thresholds
from toxicity.lexical import LexicalScorer
from warden.replay import (
    DIFFERS,
    MATCH,
    STORED,
    ModelNotFound,
    Recorded,
    StoredDecision,
    compare_decision,
    compare_model,
    detector_part,
    model_dir,
    model_part,
    policy_part,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "verdict.v1.json"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def golden(**overrides: Any) -> Verdict:
    return Verdict.model_validate({**json.loads(GOLDEN.read_text()), **overrides})


def scored(text: str, *, medium: float = 0.5, flag: Severity = Severity.MEDIUM) -> Verdict:
    """A verdict as the scorer builds it, with the lexical model."""
    message = ChatMessage(
        message_id="m1",
        platform=Platform.DISCORD,
        community="g1",
        channel="c1",
        user="u1",
        text=text,
        sent_at=NOW,
        received_at=NOW,
    )
    model = LexicalScorer(Thresholds(0.3, medium, 0.7))
    context = {"user_bad_ratio_7d": 0.5, "violation_count_7d": 2.0}
    return BatchScorer(model, flag).score([message], [context], False).verdicts[0]


def settings(**model: Any) -> Settings:
    return load_settings(model={"kind": "lexical", **model})


def stored_decision(
    verdict: Verdict, decision: Decision, before: int = 1, **changes: Any
) -> StoredDecision:
    """The decisions row the actioner writes for ``decision``, with ``changes``."""
    row = decision_row(verdict, decision, active_strikes=before, shadow_strikes=0)
    kinds = tuple(sorted(a.kind.value for a in decision.actions))
    return StoredDecision(replace(row, **changes), kinds)


def test_the_scorers_verdict_records_how_it_was_scored() -> None:
    verdict = scored("you idiot, you worthless idiot", medium=0.4, flag=Severity.LOW)
    assert verdict.scoring is not None
    assert verdict.scoring.backend == "none" and verdict.scoring.device == "cpu"
    assert verdict.scoring.medium_threshold == 0.4
    # The lexical model's own thresholds are the defaults: settings moved MEDIUM.
    assert verdict.scoring.thresholds_overridden == ["medium"]
    assert verdict.scoring.flag_severity is Severity.LOW


def test_a_score_made_again_matches_within_the_tolerance() -> None:
    verdict = scored("you idiot, you worthless idiot")
    score = Score(
        p_toxic=verdict.p_toxic + 0.0004,
        severity=verdict.severity,
        labels=tuple(verdict.labels),
        features=dict(verdict.features),
        label_scores=dict(verdict.label_scores),
    )
    items = compare_model(verdict, score, Severity.MEDIUM)
    assert all(i.ok for i in items), items
    off = compare_model(verdict, replace(score, p_toxic=verdict.p_toxic + 0.01), Severity.MEDIUM)
    assert [i.name for i in off if not i.ok] == ["p_toxic"]


def test_stream_detector_labels_are_not_asked_of_the_model() -> None:
    verdict = scored("you idiot, you worthless idiot")
    with_spam = verdict.model_copy(update={"labels": [*verdict.labels, "spam"], "flagged": True})
    score = Score(verdict.p_toxic, verdict.severity, tuple(verdict.labels), dict(verdict.features))
    assert all(i.ok for i in compare_model(with_spam, score, Severity.MEDIUM))
    wrong = replace(score, labels=("threat",), features={**score.features, "mild_words": 9.0})
    failed = {i.name for i in compare_model(verdict, wrong, Severity.MEDIUM) if not i.ok}
    assert failed == {"labels", "text features (3)"}


def test_the_model_part_scores_the_stored_text_with_the_stored_thresholds() -> None:
    verdict = scored("you idiot, you worthless idiot", medium=0.4)
    recorded = Recorded(verdict, "decisions", None)
    # This machine's settings differ (MEDIUM at 0.9): the stored thresholds are used.
    part, flagged = model_part(recorded, settings(medium_threshold=0.9))
    assert part.status == MATCH, part
    assert flagged is verdict.model_flagged
    assert "thresholds 0.300/0.400/0.700 (settings)" in part.summary
    # A stored score the model does not give again is found out.
    tampered = verdict.model_copy(update={"p_toxic": 0.05, "severity": Severity.SAFE})
    part, _ = model_part(Recorded(tampered, "decisions", None), settings())
    assert part.status == DIFFERS
    assert {i.name for i in part.items if not i.ok} >= {"p_toxic", "severity"}


def test_an_unknown_model_version_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="model hybrid-nowhere-123"):
        model_dir("hybrid-nowhere-123", tmp_path, settings())


def test_flagged_follows_the_model_and_the_applied_flag_labels() -> None:
    verdict = golden(labels=["spam"], flagged=True, model_flagged=False)
    assert detector_part(verdict, False, ("spam", "flood")).status == MATCH
    assert detector_part(verdict, False, ("flood",)).status == DIFFERS
    # Thresholds not known here: the labels are reported as stored.
    unknown = detector_part(verdict, False, None)
    assert unknown.status == STORED and "spam" in unknown.summary


def test_a_decision_made_again_matches_its_row_and_a_tampered_row_differs() -> None:
    verdict = golden(labels=["insult"], reasons={}, severity="MEDIUM", p_toxic=0.6)
    version = "preset:balanced@3"
    decision = evaluate(preset("balanced"), verdict, policy_version=version, active_strikes=1)
    assert decision is not None
    assert all(i.ok for i in compare_decision(stored_decision(verdict, decision), decision))
    # The row keeps the verdict as it was read: the replay starts from it.
    assert Verdict.model_validate(stored_decision(verdict, decision).row.verdict) == verdict
    tampered = stored_decision(
        verdict, decision, strikes_added=decision.strikes_added + 1, rule="none"
    )
    failed = {i.name for i in compare_decision(tampered, decision) if not i.ok}
    assert failed == {"rule", "strikes_added"}
    assert compare_decision(None, None)[0].ok
    assert not compare_decision(None, decision)[0].ok
    assert not compare_decision(stored_decision(verdict, decision), None)[0].ok


def test_the_policy_part_replays_with_the_stored_strikes() -> None:
    verdict = golden(labels=["insult"], reasons={}, severity="MEDIUM", p_toxic=0.6)
    policy = StoredPolicy("discord", "g1", preset("balanced"), 0, "preset:balanced@3")
    decision = evaluate(policy.policy, verdict, policy_version=policy.version_id, active_strikes=1)
    assert decision is not None
    row = stored_decision(verdict, decision)
    recorded = Recorded(verdict, "decisions", row, policy, strikes=(1, 0), strikes_note="recorded")
    assert policy_part(recorded).status == MATCH
    # With no strikes before, the ladder gives a warning, not the timeout that was recorded.
    fewer = replace(recorded, strikes=(0, 0))
    assert policy_part(fewer).status == DIFFERS
    # A policy that cannot be found cannot be replayed: that is not a match.
    lost = replace(recorded, policy=None, policy_note="policy discord:g1@v9 is not stored")
    assert not policy_part(lost).matches


def test_rows_from_before_the_migration_derive_the_strikes_before() -> None:
    verdict = golden(labels=["insult"], reasons={}, severity="MEDIUM", p_toxic=0.6)
    decision = evaluate(preset("balanced"), verdict, policy_version="p", active_strikes=2)
    assert decision is not None
    old = stored_decision(verdict, decision, strikes_before=None, shadow_strikes_before=None)
    assert old.strikes()[:2] == (2, 0)


def test_policy_versions_name_their_policy() -> None:
    assert builtin("preset:strict@3") == preset("strict")
    first_day = builtin("first-day:livestream@3")
    assert first_day is not None and first_day.first_day
    assert builtin("discord:g1@v3") is None
    assert stored_number("discord:g1@v3") == ("discord", "g1", 3)
    assert stored_number("defaults") is None
    with pytest.raises(ValueError, match="presets of version 3"):
        builtin("preset:balanced@1")
    with pytest.raises(ValueError, match="unknown preset"):
        builtin("preset:gentle@3")


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("24h", 86400), ("14d", 1209600)])
def test_ages_parse(text: str, seconds: int) -> None:
    assert Age().convert(text, None, None).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "0d", "3w", "-1h", "1.5h"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        Age().convert(text, None, None)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["a\x01b"], "a message id is 1-200 characters without control characters"),
        (["m1", "--since", "3w"], "expected a number and m, h or d"),
        (["m1", "--scan", "0"], "--scan"),
    ],
)
def test_bad_input_is_a_usage_error(args: list[str], said: str) -> None:
    from click.testing import CliRunner

    from warden.cli import main

    result = CliRunner().invoke(main, ["replay-decision", *args])
    assert result.exit_code == 2 and said in result.output

"""Policies: presets, severity grading, the strike ladder, exemptions, shadow mode, changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actioners.policy import (
    PRESETS,
    Policy,
    PolicyChangeError,
    action_id,
    apply_changes,
    evaluate,
    preset,
    requests_for,
)
from schemas.events import ActionKind, Severity, Verdict

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "verdict.v1.json"


def verdict(**overrides: Any) -> Verdict:
    record = json.loads(GOLDEN.read_text())
    record.update(overrides)
    # As the scorer writes them: the model's own flag is the flag, unless a test says otherwise.
    if "flagged" in overrides and "model_flagged" not in overrides:
        record["model_flagged"] = overrides["flagged"]
    return Verdict.model_validate(record)


def kinds(decision: Any) -> list[tuple[str, int | None]]:
    return [(a.kind.value, a.duration_s) for a in decision.actions]


BALANCED = preset("balanced")


def test_presets_are_valid_and_distinct() -> None:
    assert set(PRESETS) == {"lenient", "balanced", "strict", "livestream"}
    for name, policy in PRESETS.items():
        assert Policy.model_validate(policy.to_document()) == policy
        assert Policy.model_validate_json(json.dumps(policy.to_document())) == policy
        assert policy.preset == name and policy.live
    assert PRESETS["strict"].strike_decay_s > PRESETS["lenient"].strike_decay_s
    # Fast chat forgets within a stream: hours, not weeks.
    assert PRESETS["livestream"].strike_decay_s == 6 * 3600
    assert PRESETS["livestream"].decay_text == "6 h"


def test_balanced_medium_deletes_and_warns_on_the_first_strike() -> None:
    v = verdict(severity="MEDIUM", p_toxic=0.6, flagged=True)
    decision = evaluate(BALANCED, v, policy_version="preset:balanced@1", active_strikes=0)
    assert decision is not None
    assert kinds(decision) == [("delete", None), ("warn", None)]
    assert decision.strikes_added == 1 and decision.strikes_after == 1
    # The reason names the policy, the rule, the threshold and the strike count.
    assert "preset:balanced@1" in decision.reason
    assert "model severity MEDIUM" in decision.reason
    assert "strikes 0 -> 1" in decision.reason
    warn = decision.actions[1]
    assert warn.notice is not None and "1 active strike" in warn.notice
    assert "timeout 10 min" in warn.notice  # what comes next


@pytest.mark.parametrize(
    ("before", "severity", "expected"),
    [
        (1, "MEDIUM", ("timeout", 600)),
        (2, "MEDIUM", ("timeout", 3600)),
        (3, "MEDIUM", ("timeout", 86400)),
        (4, "MEDIUM", ("kick", None)),
        (5, "MEDIUM", ("ban", None)),
        (9, "MEDIUM", ("ban", None)),
        (0, "HIGH", ("timeout", 600)),  # two strikes at once skip the warning
        (2, "HIGH", ("timeout", 86400)),
    ],
)
def test_the_ladder_climbs_with_active_strikes(
    before: int, severity: str, expected: tuple[str, int | None]
) -> None:
    # A verdict from a scorer that names no label: the ladder as it always was.
    v = verdict(severity=severity, flagged=True, labels=[], label_scores={}, reasons={})
    decision = evaluate(BALANCED, v, policy_version="v", active_strikes=before)
    assert decision is not None
    assert decision.labels == ("unlabelled",)
    assert kinds(decision) == [("delete", None), expected]


def test_unflagged_verdicts_are_left_alone_when_trusting_the_model() -> None:
    v = verdict(severity="MEDIUM", flagged=False, p_toxic=0.6, labels=["insult"])
    assert evaluate(BALANCED, v, policy_version="v", active_strikes=0) is None
    low = verdict(severity="LOW", flagged=True, p_toxic=0.35, labels=["insult"])
    assert evaluate(BALANCED, low, policy_version="v", active_strikes=0) is None


def test_hard_slurs_always_act_at_high() -> None:
    v = verdict(severity="LOW", flagged=False, p_toxic=0.2, labels=["hard_slur"])
    for policy in PRESETS.values():
        decision = evaluate(policy, v, policy_version="v", active_strikes=0)
        assert decision is not None and decision.severity is Severity.HIGH
        assert "hard_slur" in decision.reason
        assert decision.actions[0].kind is ActionKind.DELETE


def test_community_thresholds_grade_p_toxic_themselves() -> None:
    strict = preset("strict")
    # The scorer did not flag it, but a strict community acts from 0.25.
    v = verdict(severity="LOW", flagged=False, p_toxic=0.3, labels=["insult"])
    decision = evaluate(strict, v, policy_version="v", active_strikes=0)
    assert decision is not None and decision.severity is Severity.LOW
    assert kinds(decision) == [("delete", None)] and decision.strikes_added == 0
    assert ">= community LOW threshold 0.25" in decision.reason
    # A lenient community ignores what the model called HIGH at 0.75.
    lenient = preset("lenient")
    v = verdict(severity="HIGH", flagged=True, p_toxic=0.75, labels=["insult"])
    assert evaluate(lenient, v, policy_version="v", active_strikes=0) is None


def test_exempt_roles_and_channels_get_no_strike_and_no_action() -> None:
    policy = apply_changes(BALANCED, {"exempt_roles": ["moderator"], "exempt_channels": ["c9"]})
    by_role = evaluate(
        policy, verdict(user_roles=["member", "moderator"]), policy_version="v", active_strikes=0
    )
    assert by_role is not None
    assert by_role.strikes_added == 0
    assert all(a.skip == "exempt role moderator" for a in by_role.actions)
    by_channel = evaluate(policy, verdict(channel="c9"), policy_version="v", active_strikes=0)
    assert by_channel is not None
    assert all(a.skip == "exempt channel c9" for a in by_channel.actions)


def test_shadow_mode_decides_everything_and_acts_on_nothing() -> None:
    policy = apply_changes(BALANCED, {"shadow": True})
    decision = evaluate(policy, verdict(), policy_version="v", active_strikes=1, shadow_strikes=2)
    assert decision is not None and decision.shadow
    # Shadow decisions count shadow strikes too: 1 real + 2 shadow + 2 new = 5 -> kick.
    assert kinds(decision) == [("delete", None), ("kick", None)]
    assert all(a.skip == "shadow mode" for a in decision.actions)
    assert decision.strikes_added == 2


def test_monitored_channels_and_channel_overrides() -> None:
    policy = apply_changes(
        BALANCED,
        {
            "monitored_channels": ["watch"],
            "channels.quiet.thresholds": {"low": 0.1, "medium": 0.2, "high": 0.3},
            "channels.live.shadow": False,
        },
    )
    watched = evaluate(policy, verdict(channel="watch"), policy_version="v", active_strikes=0)
    assert watched is not None and watched.shadow
    assert all(a.skip == "monitored-only channel" for a in watched.actions)
    quiet = evaluate(
        policy,
        verdict(channel="quiet", p_toxic=0.35, severity="LOW", flagged=False),
        policy_version="v",
        active_strikes=0,
    )
    assert quiet is not None and quiet.severity is Severity.HIGH
    assert "channel HIGH threshold 0.30" in quiet.reason
    shadowed = apply_changes(policy, {"shadow": True})
    live = evaluate(shadowed, verdict(channel="live"), policy_version="v", active_strikes=0)
    assert live is not None and not live.shadow  # the channel opts out of shadow mode


def test_templates_fill_in_the_decision() -> None:
    policy = apply_changes(
        BALANCED,
        {"templates.timeout": "Muted {duration} in {community} ({strikes}, {policy_version})"},
    )
    decision = evaluate(policy, verdict(), policy_version="g@v7", active_strikes=0)
    assert decision is not None
    assert decision.actions[1].notice == "Muted 10 min in 981234567890123456 (2, g@v7)"
    with pytest.raises(PolicyChangeError, match="unknown field"):
        apply_changes(BALANCED, {"templates.warn": "hi {password}"})


def test_requests_carry_deterministic_ids_and_the_decision() -> None:
    v = verdict()
    decision = evaluate(BALANCED, v, policy_version="g@v3", active_strikes=3)
    assert decision is not None
    now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    requests = requests_for(v, decision, now)
    ids = [r.action_id for r, _ in requests]
    assert ids == [action_id(v.message_id, ActionKind.DELETE), f"{v.message_id}:kick"]
    assert requests_for(v, decision, now) == requests  # the same verdict, the same requests
    kick = requests[1][0]
    assert kick.policy_version == "g@v3" and kick.model_version == v.model_version
    assert "strikes 3 -> 5" in kick.reason and kick.reason.endswith("action kick")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"thresholds": {"low": 0.9, "medium": 0.5, "high": 0.7}}, "low <= medium <= high"),
        ({"ladder": [{"strikes": 2, "action": "warn"}, {"strikes": 1, "action": "ban"}]}, "ascend"),
        ({"ladder": [{"strikes": 1, "action": "timeout"}]}, "duration_s"),
        ({"strike_decay_days": 0}, "strike_decay_days"),
        ({"actions.HIGH.strikes": -1}, "actions.HIGH.strikes"),
        ({"shadoww": True}, "shadoww"),
    ],
)
def test_invalid_changes_are_refused_naming_the_field(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(PolicyChangeError, match=problem.replace(".", r"\.")):
        apply_changes(BALANCED, changes)


def test_list_changes_append_and_remove() -> None:
    staff = ["broadcaster", "moderator", "vip"]
    assert BALANCED.exempt_roles == staff
    policy = apply_changes(BALANCED, {"exempt_roles+": "mod"})
    policy = apply_changes(policy, {"exempt_roles+": ["admin", "mod"]})
    assert policy.exempt_roles == [*staff, "mod", "admin"]
    policy = apply_changes(policy, {"exempt_roles-": ["mod", "vip"]})
    assert policy.exempt_roles == ["broadcaster", "moderator", "admin"]
    assert staff == BALANCED.exempt_roles  # presets are never changed in place

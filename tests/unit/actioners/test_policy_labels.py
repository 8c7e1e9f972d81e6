"""Label-aware policies: which labels act, how hard, when a ban is allowed, review holds, strike
decay in hours, raid answers and first-day mode (issue #12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actioners.policy import (
    PRESET_VERSION,
    RAID_USER,
    Policy,
    PolicyChangeError,
    apply_changes,
    evaluate,
    first_day,
    first_day_version,
    preset,
    raid_request,
    requests_for,
)
from actioners.policystore import PolicyStore
from schemas.events import ActionKind, RaidEvent, RaidMode, Severity, Verdict

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BALANCED = preset("balanced")
LIVESTREAM = preset("livestream")


def verdict(
    text: str = "some line",
    *,
    labels: tuple[str, ...] = (),
    scores: dict[str, float] | None = None,
    severity: str = "MEDIUM",
    **overrides: Any,
) -> Verdict:
    record = json.loads((GOLDEN / "verdict.v1.json").read_text())
    record.update(
        text=text,
        labels=list(labels),
        label_scores=scores if scores is not None else dict.fromkeys(labels, 0.9),
        reasons={},
        severity=severity,
        p_toxic={"LOW": 0.35, "MEDIUM": 0.6, "HIGH": 0.9}.get(severity, 0.05),
        flagged=severity in ("MEDIUM", "HIGH"),
        **overrides,
    )
    if "model_flagged" not in overrides:
        record["model_flagged"] = record["flagged"]
    for label in labels:
        if label not in ("insult", "threat", "self_harm", "identity_attack", "profanity"):
            record["label_scores"].pop(label, None)
    return Verdict.model_validate(record)


def kinds(decision: Any) -> list[tuple[str, int | None]]:
    return [(a.kind.value, a.duration_s) for a in decision.actions]


def decide(policy: Policy, v: Verdict, strikes: int = 0) -> Any:
    return evaluate(policy, v, policy_version="t@v1", active_strikes=strikes)


@pytest.mark.parametrize("name", ["lenient", "balanced", "livestream"])
def test_profanity_alone_is_not_actioned_but_a_threat_still_is(name: str) -> None:
    policy = preset(name)
    swearing = verdict("holy shit that was clean", labels=("profanity",), severity="HIGH")
    assert decide(policy, swearing) is None
    threat = verdict("i know where you live", labels=("threat", "profanity"), severity="HIGH")
    decision = decide(policy, threat)
    assert decision is not None and decision.labels[0] == "threat"
    assert decision.actions[0].kind is ActionKind.DELETE


def test_strict_acts_on_profanity_but_never_beyond_a_timeout() -> None:
    strict = preset("strict")
    swearing = verdict("what the hell", labels=("profanity",), severity="MEDIUM")
    decision = decide(strict, swearing, strikes=10)
    assert decision is not None
    assert kinds(decision) == [("delete", None), ("timeout", 86400)]
    assert "capped at timeout" in decision.reason


def test_a_threat_strikes_harder_than_an_insult() -> None:
    insult = decide(BALANCED, verdict("you are an idiot", labels=("insult",)))
    threat = decide(BALANCED, verdict("i will find you and hurt you", labels=("threat",)))
    assert insult.strikes_added == 1 and kinds(insult) == [("delete", None), ("warn", None)]
    assert threat.strikes_added == 3
    assert kinds(threat) == [("delete", None), ("timeout", 3600)]
    assert "threat (0.90)" in threat.reason


@pytest.mark.parametrize("text", ["KEKW KEKW KEKW", "LMAO", "F", "lol W", "PogChamp"])
@pytest.mark.parametrize("name", ["lenient", "balanced", "strict", "livestream"])
def test_an_emote_line_after_many_strikes_never_acts(text: str, name: str) -> None:
    # The reported bug: a viewer with strikes sends an emote that the model flags HIGH, and the
    # ladder carries them to a ban. Whatever the model says, an emote line brings nothing.
    for labels in [(), ("insult",), ("profanity",)]:
        line = verdict(text, labels=labels, severity="HIGH")
        assert decide(preset(name), line, strikes=5) is None


def test_an_emote_wall_is_left_alone_except_in_strict() -> None:
    wall = verdict("KEKW " * 30, labels=("emote_flood",), severity="SAFE")
    for name in ("lenient", "balanced", "livestream"):
        assert decide(preset(name), wall, strikes=5) is None
    strict = decide(preset("strict"), wall, strikes=5)
    assert strict is not None and kinds(strict) == [("delete", None)]
    assert strict.strikes_added == 0  # deleted, and no step up the ladder


def test_only_a_new_violation_climbs_the_ladder() -> None:
    # With strikes on record, a line that adds none (a delete-only label) is not escalated.
    caps_delete = apply_changes(BALANCED, {"labels.caps": {"delete": True, "strikes": 0}})
    shouting = verdict("WHAT A PLAY THAT WAS", labels=("caps",), severity="SAFE")
    decision = decide(caps_delete, shouting, strikes=5)
    assert decision is not None and kinds(decision) == [("delete", None)]


def test_spam_deletes_with_a_light_strike_and_never_bans() -> None:
    spam = verdict("buy followers at cheap dot com", labels=("spam",), severity="SAFE")
    first = decide(BALANCED, spam)
    assert first is not None and kinds(first) == [("delete", None), ("warn", None)]
    worst = decide(BALANCED, spam, strikes=9)
    assert kinds(worst) == [("delete", None), ("timeout", 86400)]
    lenient = decide(preset("lenient"), spam, strikes=9)
    assert kinds(lenient) == [("delete", None)] and lenient.strikes_added == 0


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (("insult",), ("kick", None)),
        (("sexual_harassment",), ("kick", None)),
        (("threat",), ("ban", None)),
        (("identity_attack",), ("ban", None)),
        (("hard_slur",), ("ban", None)),
        (("insult", "threat"), ("ban", None)),  # the strongest label decides
    ],
)
def test_balanced_bans_only_for_threats_identity_attacks_and_hard_slurs(
    labels: tuple[str, ...], expected: tuple[str, None]
) -> None:
    decision = decide(BALANCED, verdict("a line", labels=labels, severity="HIGH"), strikes=5)
    assert decision is not None and kinds(decision)[-1] == expected


def test_livestream_insults_stop_at_a_timeout_and_hard_slurs_ban_at_once() -> None:
    insult = decide(LIVESTREAM, verdict("ur trash", labels=("insult",), severity="HIGH"), 9)
    assert kinds(insult) == [("delete", None), ("timeout", 86400)]
    slur = decide(LIVESTREAM, verdict("(slur)", labels=("hard_slur",), severity="LOW"))
    assert kinds(slur) == [("delete", None), ("ban", None)]


def test_a_raid_account_posting_a_harm_is_banned_at_once_a_raid_line_alone_is_not() -> None:
    harmful = verdict("go kys streamer", labels=("raid", "self_harm"), severity="HIGH")
    decision = decide(LIVESTREAM, harmful)
    assert kinds(decision) == [("delete", None), ("ban", None)]
    assert "ban at once" in decision.reason
    friendly = verdict("VelvetVortex raid! <3 <3", labels=("raid",), severity="SAFE")
    for name in ("lenient", "balanced", "livestream"):
        assert decide(preset(name), friendly) is None
    assert kinds(decide(preset("strict"), friendly)) == [("delete", None)]


def test_ban_requires_review_turns_a_ban_into_a_hold() -> None:
    policy = apply_changes(BALANCED, {"ban_requires_review": True})
    threat = verdict("i will find you", labels=("threat",), severity="HIGH")
    decision = decide(policy, threat, strikes=5)
    assert kinds(decision) == [("delete", None), ("hold", None)]
    assert decision.held is not None and decision.held.held == "ban"
    assert "ban held for a moderator's review" in decision.reason
    requests = requests_for(threat, decision, NOW)
    hold = requests[1][0]
    assert hold.kind is ActionKind.HOLD and hold.action_id == f"{threat.message_id}:hold"
    # Below the ban rung nothing is held.
    assert kinds(decide(policy, threat)) == [("delete", None), ("timeout", 3600)]


def test_borderline_lines_are_held_for_review_instead_of_acted_on() -> None:
    borderline = verdict("you're so bad at this game", labels=("insult",), severity="MEDIUM")
    decision = decide(LIVESTREAM, borderline, strikes=4)
    assert kinds(decision) == [("hold", None)]
    assert decision.strikes_added == 0 and decision.held.held == "review"
    assert "held for review: insult" in decision.reason
    clear = verdict("you are worthless trash", labels=("insult",), severity="HIGH")
    assert kinds(decide(LIVESTREAM, clear)) == [("delete", None), ("timeout", 60)]
    # A borderline insult that also spams: the spam is acted on, the insult waits for review.
    both = verdict("you're bad", labels=("insult", "spam"), severity="MEDIUM")
    assert kinds(decide(LIVESTREAM, both)) == [("delete", None), ("warn", None), ("hold", None)]


def test_a_label_rule_can_hold_always_or_ask_for_a_minimum_score() -> None:
    policy = apply_changes(
        BALANCED, {"labels.link": {"hold": True}, "labels.insult": {"min_score": 0.8}}
    )
    link = decide(policy, verdict("see my site", labels=("link",), severity="SAFE"))
    assert kinds(link) == [("hold", None)]
    weak = verdict("meh", labels=("insult",), scores={"insult": 0.5}, severity="MEDIUM")
    assert decide(policy, weak) is None
    strong = verdict("idiot", labels=("insult",), scores={"insult": 0.85}, severity="MEDIUM")
    assert decide(policy, strong) is not None
    # A score at min_score counts even where the scorer named no label.
    unnamed = verdict("idiot", labels=(), scores={"insult": 0.85}, severity="MEDIUM")
    assert decide(policy, unnamed).labels == ("insult",)


def test_strikes_decay_in_hours_and_old_documents_keep_their_days() -> None:
    policy = apply_changes(BALANCED, {"strike_decay_hours": 3})
    assert policy.strike_decay_days is None and policy.strike_decay_s == 3 * 3600
    decision = decide(policy, verdict("idiot", labels=("insult",)))
    assert "decay 3 h" in decision.reason
    back = apply_changes(policy, {"strike_decay_days": 2})
    assert back.strike_decay_hours is None and back.strike_decay_s == 2 * 86400
    with pytest.raises(ValueError, match="not both"):
        Policy.model_validate(
            {**policy.to_document(), "strike_decay_days": 1, "strike_decay_hours": 1}
        )
    with pytest.raises(PolicyChangeError, match="strike_decay_hours"):
        apply_changes(BALANCED, {"strike_decay_hours": 0})
    # A document stored before labels, holds, raids and detectors existed loads as it was.
    old = {
        "preset": "balanced",
        "shadow": False,
        "thresholds": None,
        "actions": {"MEDIUM": {"delete": True, "strikes": 1}},
        "ladder": [{"strikes": 1, "action": "warn", "duration_s": None}],
        "strike_decay_days": 30,
        "exempt_roles": [],
    }
    loaded = Policy.model_validate(old)
    assert loaded.strike_decay_s == 30 * 86400 and loaded.labels == {} and loaded.live
    # ... and every harm label acts through the severity rules, as it did then.
    assert decide(loaded, verdict("what the hell", labels=("profanity",))) is not None


def test_detector_thresholds_are_part_of_each_preset_and_validated() -> None:
    assert preset("strict").detectors.spam_repeats < BALANCED.detectors.spam_repeats
    assert LIVESTREAM.detectors.raid_min_accounts > BALANCED.detectors.raid_min_accounts
    changed = apply_changes(BALANCED, {"detectors.spam_repeats": 4})
    assert changed.detectors.spam_repeats == 4
    with pytest.raises(PolicyChangeError, match=r"detectors\.spam_repeats"):
        apply_changes(BALANCED, {"detectors.spam_repeats": 1})
    with pytest.raises(PolicyChangeError, match="unknown detector"):
        apply_changes(BALANCED, {"detectors.enabled": {"shouting": False}})


def raid(**overrides: Any) -> RaidEvent:
    record = json.loads((GOLDEN / "raid_event.v1.json").read_text())
    record.update(overrides)
    return RaidEvent.model_validate(record)


def test_a_harmful_raid_asks_for_one_raid_mode_with_the_platforms_modes() -> None:
    event = raid(harmful=True)
    answer = raid_request(LIVESTREAM, event, policy_version="p@v1", requested_at=NOW)
    assert answer is not None
    request, skip = answer
    assert skip is None
    assert request.kind is ActionKind.RAID_MODE and request.user == RAID_USER
    assert request.modes == [RaidMode.FOLLOWERS, RaidMode.SLOW] and request.duration_s == 600
    assert request.message_id == event.raid_id
    assert request.action_id == f"{event.raid_id}:raid_mode"
    again = raid_request(LIVESTREAM, event, policy_version="p@v1", requested_at=NOW)
    assert again == answer  # the same raid, the same request
    discord = raid(harmful=True, platform="discord", community="42", channel="43")
    on_discord = raid_request(BALANCED, discord, policy_version="p", requested_at=NOW)
    assert on_discord is not None
    assert on_discord[0].modes == [RaidMode.SLOW, RaidMode.VERIFICATION]


def test_a_friendly_raid_gets_nothing_unless_the_community_answers_all() -> None:
    friendly = raid(harmful=False, labels=["raid"])
    assert raid_request(LIVESTREAM, friendly, policy_version="p", requested_at=NOW) is None
    everyone = apply_changes(LIVESTREAM, {"raid.act_on": "all"})
    answer = raid_request(everyone, friendly, policy_version="p", requested_at=NOW)
    assert answer is not None and answer[0].severity is Severity.LOW
    never = apply_changes(LIVESTREAM, {"raid.act_on": "never"})
    assert raid_request(never, raid(harmful=True), policy_version="p", requested_at=NOW) is None


def test_a_long_raid_id_still_gives_a_valid_deterministic_action_id() -> None:
    event = raid(raid_id="r" * 200)
    answer = raid_request(BALANCED, event, policy_version="p", requested_at=NOW)
    assert answer is not None and len(answer[0].action_id) <= 200
    assert answer[0].action_id.endswith(":raid_mode")
    assert raid_request(BALANCED, event, policy_version="p", requested_at=NOW) == answer


def test_first_day_mode_decides_and_records_but_acts_on_nothing() -> None:
    policy = first_day("balanced")
    assert policy.first_day and not policy.live
    threat = verdict("i will hurt you", labels=("threat",), severity="HIGH")
    decision = decide(policy, threat)
    assert decision is not None and decision.shadow
    assert all(a.skip and a.skip.startswith("first-day mode") for a in decision.actions)
    answer = raid_request(policy, raid(harmful=True), policy_version="p", requested_at=NOW)
    assert answer is not None and answer[1] is not None and "first-day" in answer[1]
    live = apply_changes(policy, {"first_day": False})
    assert all(a.skip is None for a in decide(live, threat).actions)


def test_a_community_without_a_stored_policy_starts_in_first_day_mode() -> None:
    store = PolicyStore(db=None, default_preset="livestream", first_day=True)  # type: ignore[arg-type]
    default = store.default("twitch", "somechannel")
    assert default.is_default and default.policy.first_day
    assert default.version_id == first_day_version("livestream")
    assert default.version_id == f"first-day:livestream@{PRESET_VERSION}"
    off = PolicyStore(db=None, default_preset="balanced", first_day=False)  # type: ignore[arg-type]
    assert off.default("twitch", "c").policy.live


def test_a_detector_flag_never_climbs_the_model_severity_ladder() -> None:
    # A LOW line flagged only by a stream detector (spam) acts through the spam rule; the LOW
    # severity rule (here one that strikes) reads the model's own flag, which it is not.
    policy = apply_changes(BALANCED, {"actions.LOW": {"delete": False, "strikes": 2}})
    spam = verdict("buy followers at cheap dot com", labels=("spam",), severity="LOW")
    by_detector = spam.model_copy(update={"flagged": True, "model_flagged": False})
    decision = decide(policy, by_detector)
    assert decision is not None and decision.strikes_added == 1  # the spam rule's strike
    # A verdict from before model_flagged existed reads flagged, as it always did.
    legacy = decide(policy, spam.model_copy(update={"flagged": True, "model_flagged": None}))
    assert legacy is not None and legacy.strikes_added == 2

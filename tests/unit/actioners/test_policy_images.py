"""Image verdicts under the presets: explicit pictures are removed with strikes, suggestive ones
are allowed (strict: deleted), NSFW channels allow both, a caption that is only an emote does
not shield a picture, and an image verdict's decision and actions never collide with its
message's text verdict (issue #17)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actioners.ledger import decision_row
from actioners.policy import Policy, apply_changes, evaluate, preset, requests_for
from schemas.events import ActionKind, ImageFinding, Severity, Verdict, VerdictKind

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def image_verdict(
    explicit: float, suggestive: float, *, text: str = "look at this", **overrides: Any
) -> Verdict:
    record = json.loads((GOLDEN / "verdict.v1.json").read_text())
    labels = [
        name
        for name, value, cut in (
            ("sexual_explicit", explicit, 0.35),
            ("sexual_suggestive", suggestive, 0.5),
        )
        if value >= cut
    ]
    severity = (
        "HIGH" if explicit >= 0.5 else "MEDIUM" if explicit >= 0.35 else "LOW" if labels else "SAFE"
    )
    record.update(
        text=text,
        kind="image",
        p_toxic=max(explicit, suggestive),
        severity=severity,
        flagged=severity != "SAFE",
        model_flagged=severity != "SAFE",
        labels=labels,
        label_scores={"sexual_explicit": explicit, "sexual_suggestive": suggestive},
        reasons={},
        features={},
        images=[
            ImageFinding(url="https://cdn.discordapp.com/a/b.png", index=0).model_dump(mode="json")
        ],
        **overrides,
    )
    return Verdict.model_validate(record)


def decide(policy: Policy, verdict: Verdict, strikes: int = 0) -> Any:
    return evaluate(policy, verdict, policy_version="t@v1", active_strikes=strikes)


@pytest.mark.parametrize("name", ["lenient", "balanced", "strict", "livestream"])
def test_an_explicit_picture_is_deleted_with_strikes_under_every_preset(name: str) -> None:
    decision = decide(preset(name), image_verdict(0.9, 0.1))
    assert decision is not None and decision.labels == ("sexual_explicit",)
    assert decision.severity is Severity.HIGH and decision.strikes_added >= 2
    assert decision.actions[0].kind is ActionKind.DELETE
    assert "image model severity HIGH" in decision.reason


@pytest.mark.parametrize("name", ["lenient", "balanced", "livestream"])
def test_a_suggestive_picture_is_allowed_except_under_strict(name: str) -> None:
    assert decide(preset(name), image_verdict(0.05, 0.8)) is None
    strict = decide(preset("strict"), image_verdict(0.05, 0.8))
    assert strict is not None and strict.strikes_added == 0
    assert [a.kind for a in strict.actions] == [ActionKind.DELETE]


def test_a_picture_with_nothing_found_gets_nothing_even_under_strict_thresholds() -> None:
    # Strict grades text p_toxic from 0.25: an image's worst-label score is not graded so.
    assert decide(preset("strict"), image_verdict(0.2, 0.3)) is None


def test_nsfw_channels_allow_both_labels_unless_the_community_says_otherwise() -> None:
    balanced = preset("balanced")
    nsfw = image_verdict(0.9, 0.6, channel_nsfw=True)
    assert decide(balanced, nsfw) is None
    assert decide(balanced, image_verdict(0.9, 0.6, channel_nsfw=False)) is not None
    strict_nsfw = apply_changes(balanced, {"nsfw_channel_allows": ["sexual_suggestive"]})
    decision = decide(strict_nsfw, nsfw)
    assert decision is not None and decision.labels == ("sexual_explicit",)


def test_a_channel_override_allows_pictures_where_the_platform_has_no_nsfw_flag() -> None:
    art = apply_changes(
        preset("balanced"),
        {"channels": {"C-art": {"labels": {"sexual_explicit": {"act": False}}}}},
    )
    assert decide(art, image_verdict(0.9, 0.1, channel="C-art")) is None
    assert decide(art, image_verdict(0.9, 0.1, channel="C-general")) is not None


def test_an_emote_caption_does_not_shield_the_picture() -> None:
    decision = decide(preset("balanced"), image_verdict(0.9, 0.1, text="KEKW"))
    assert decision is not None and decision.labels == ("sexual_explicit",)


def test_image_and_text_verdicts_of_one_message_decide_and_act_apart() -> None:
    image = image_verdict(0.9, 0.1)
    text = image.model_copy(update={"kind": VerdictKind.TEXT, "images": []})
    assert image.message_id == text.message_id
    assert image.decision_id == f"{image.message_id}~image" and text.decision_id == text.message_id
    decision = decide(preset("balanced"), image)
    assert decision is not None
    requests = [request for request, _ in requests_for(image, decision, NOW)]
    # The action, its strikes and its review belong to the image decision; the platform deletes
    # the message itself.
    assert requests[0].message_id == image.decision_id
    assert requests[0].target_message_id == image.message_id
    assert requests[0].action_id == f"{image.message_id}~image:delete"
    insult = text.model_copy(
        update={"labels": ["insult"], "label_scores": {"insult": 0.9}, "severity": Severity.HIGH}
    )
    (text_request, _) = requests_for(insult, decide(preset("balanced"), insult), NOW)[0]
    assert text_request.message_id == text.message_id and text_request.platform_message_id is None
    assert decision_row(image, decision).message_id == image.decision_id

"""The payload contracts: strict where it matters, tolerant of new optional fields."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.events import (
    ActionResult,
    ChatMessage,
    DeadLetter,
    DriftEvent,
    Event,
    Feedback,
    RaidEvent,
    Severity,
    Verdict,
    raw_text,
)
from schemas.export import JSON_DIR, rendered, schema_file_name

GOLDEN = Path(__file__).resolve().parents[2] / "golden"

CHAT = {
    "message_id": "m1",
    "platform": "twitch",
    "community": "stream-demo",
    "channel": "#main",
    "user": "u42",
    "user_roles": ["subscriber"],
    "text": "hello chat",
    "sent_at": "2026-11-21T10:00:00+00:00",
    "received_at": "2026-11-21T10:00:00.120000+00:00",
}


def test_chat_message_round_trips_through_json() -> None:
    message = ChatMessage.model_validate(CHAT)
    again = ChatMessage.model_validate_json(message.to_json_bytes())
    assert again == message
    assert message.key == "twitch:stream-demo:u42"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message_id", ""),  # empty id
        ("platform", "myspace"),  # unknown platform
        ("text", 42),  # not coerced to str
        ("user_roles", "moderator"),  # not a list
        ("sent_at", "2026-11-21T10:00:00"),  # no time zone
    ],
)
def test_chat_message_rejects_bad_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ChatMessage.model_validate_json(json.dumps({**CHAT, field: value}))
    assert field in str(info.value)


@pytest.mark.parametrize("missing", ["message_id", "platform", "text", "sent_at", "user"])
def test_chat_message_requires_fields(missing: str) -> None:
    payload = {k: v for k, v in CHAT.items() if k != missing}
    with pytest.raises(ValidationError):
        ChatMessage.model_validate_json(json.dumps(payload))


def test_unknown_optional_fields_are_ignored_for_forward_compatibility() -> None:
    message = ChatMessage.model_validate_json(json.dumps({**CHAT, "new_optional": 1}))
    assert message.message_id == "m1"


def test_verdict_probability_is_bounded() -> None:
    golden = json.loads((GOLDEN / "verdict.v1.json").read_text())
    Verdict.model_validate(golden)
    with pytest.raises(ValidationError):
        Verdict.model_validate({**golden, "p_toxic": 1.5})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "maybe"),  # not an ActionStatus
        ("kind", "mute"),  # not an ActionKind
        ("duration_s", 0),  # a timeout lasts at least a second
        ("p_toxic", 1.5),
        ("action_id", "a\x00b"),  # control character in an id
    ],
)
def test_golden_action_result_refuses_a_bad_field(field: str, value: object) -> None:
    golden = json.loads((GOLDEN / "action_result.v1.json").read_text())
    result = ActionResult.model_validate(golden)
    # Consumers key and de-duplicate results by these; a change here breaks them.
    assert result.key == "discord:981234567890123456:771234567890123458"
    assert result.action_id == f"{result.message_id}:{result.kind.value}"
    with pytest.raises(ValidationError):
        ActionResult.model_validate({**golden, field: value})


def test_review_feedback_needs_a_label() -> None:
    base = {
        "feedback_id": "f1",
        "kind": "review",
        "message_id": "m1",
        "platform": "discord",
        "community": "g1",
        "user": "mod7",
        "created_at": "2026-11-21T10:00:00+00:00",
    }
    with pytest.raises(ValidationError, match="label_toxic"):
        Feedback.model_validate(base)
    assert Feedback.model_validate({**base, "label_toxic": False}).label_toxic is False
    assert Feedback.model_validate({**base, "kind": "dispute"}).label_toxic is None


def test_severity_ranks_in_order() -> None:
    assert [s.rank for s in Severity] == [0, 1, 2, 3]
    assert Severity.HIGH.rank > Severity.MEDIUM.rank


def test_raw_text_keeps_utf8_and_escapes_garbage() -> None:
    assert raw_text("héllo".encode()) == "héllo"
    assert raw_text(b"\xff\xfeok") == "\\xff\\xfeok"
    assert raw_text(None) == ""


@pytest.mark.parametrize("golden", sorted(GOLDEN.glob("*.v1.json")), ids=lambda p: p.name)
def test_golden_payloads_round_trip_and_match_exported_schema(golden: Path) -> None:
    classes: dict[str, type[Event]] = {
        "chat_message": ChatMessage,
        "verdict": Verdict,
        "dead_letter": DeadLetter,
        "action_result": ActionResult,
        "raid_event": RaidEvent,
        "drift_event": DriftEvent,
    }
    payload_type = classes[golden.name.removesuffix(".v1.json")]
    payload = json.loads(golden.read_text())
    parsed = payload_type.model_validate(payload)
    assert json.loads(parsed.model_dump_json()) == payload
    schema = json.loads((JSON_DIR / schema_file_name(payload_type)).read_text())
    jsonschema.validate(payload, schema)


def test_exported_json_schemas_are_current() -> None:
    stale = [
        name
        for name, text in rendered().items()
        if not (JSON_DIR / name).exists() or (JSON_DIR / name).read_text() != text
    ]
    assert not stale, f"run `python -m schemas.export`: stale {stale}"


def test_a_verdict_from_before_scoring_and_policy_version_still_parses() -> None:
    golden = json.loads((GOLDEN / "verdict.v1.json").read_text())
    older = {k: v for k, v in golden.items() if k not in ("scoring", "policy_version")}
    verdict = Verdict.model_validate_json(json.dumps(older))
    assert verdict.scoring is None and verdict.policy_version is None
    current = Verdict.model_validate(golden)
    assert current.scoring is not None and current.scoring.flag_severity is Severity.MEDIUM
    with pytest.raises(ValidationError):  # a back end is a label, an identity is hex
        Verdict.model_validate({**golden, "scoring": {**golden["scoring"], "encoder_sha256": "x"}})

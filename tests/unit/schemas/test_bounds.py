"""What strings may hold: ids without control characters, free text without NUL, and dead
letters that stay far below the broker's 1,000,000-byte record limit whatever they carry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.events import (
    ERROR_LIMIT,
    RAW_LIMIT,
    ActionRequest,
    ChatMessage,
    DeadLetter,
    Verdict,
    json_prefix,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
BROKER_LIMIT = 1_000_000

CHAT = json.loads((GOLDEN / "chat_message.v1.json").read_text())


def letter(raw: bytes, error: Exception | str = "bad") -> DeadLetter:
    return DeadLetter.from_error(
        error, raw, service="scorer", source_topic="chat.messages.v1", partition=1, offset=7
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * 1_000_000,  # a 1 MB text
        b'"' * 300_000,  # 2 bytes each once JSON-escaped
        b"\x01" * 300_000,  # 6 bytes each (\u0001)
        "é😀".encode() * 150_000,  # multi-byte UTF-8
        b"\xff" * 300_000,  # not UTF-8: escaped as \xff text (4 characters each)
    ],
    ids=["1MB-text", "quotes", "controls", "utf8", "garbage"],
)
def test_a_dead_letter_for_a_huge_payload_is_bounded_and_keeps_size_and_hash(raw: bytes) -> None:
    dead = letter(raw)
    wire = dead.to_json_bytes()
    assert len(wire) < RAW_LIMIT + ERROR_LIMIT + 4096 < BROKER_LIMIT
    assert dead.raw_truncated
    assert dead.raw_bytes == len(raw)
    assert dead.raw_sha256 == hashlib.sha256(raw).hexdigest()
    # What is kept is a true prefix of the payload's text, as long as the limit allows.
    again = DeadLetter.model_validate_json(wire)
    assert again == dead
    full = raw.decode("utf-8", "backslashreplace")
    assert full.startswith(again.raw)
    assert len(json.dumps(again.raw, ensure_ascii=False).encode()) - 2 > RAW_LIMIT - 8


def test_a_small_dead_letter_is_kept_whole_with_a_known_hash() -> None:
    dead = letter(b"abc")
    assert (dead.raw, dead.raw_bytes, dead.raw_truncated) == ("abc", 3, False)
    # Known answer (FIPS 180-2 example), not our own function run twice.
    assert dead.raw_sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_dead_letter_built_directly_is_bounded_too() -> None:
    huge = "\x00" * 500_000
    dead = DeadLetter.model_validate(
        {
            "source_topic": "t",
            "key": "k" * 10_000,
            "raw": huge,
            "error": "e" * 100_000,
            "error_type": "X",
            "service": "actioner",
            "failed_at": "2026-11-21T10:00:01Z",
        }
    )
    assert len(dead.to_json_bytes()) < 100_000
    assert dead.raw_truncated and dead.raw_bytes == 500_000
    assert dead.raw_sha256 == hashlib.sha256(huge.encode()).hexdigest()
    assert dead.key is not None and len(dead.key) == 1024
    assert len(dead.error) == ERROR_LIMIT


def test_a_dead_letter_written_before_the_size_fields_still_parses() -> None:
    old = json.loads((GOLDEN / "dead_letter.v1.json").read_text())
    for field in ("raw_bytes", "raw_sha256", "raw_truncated"):
        del old[field]
    parsed = DeadLetter.model_validate_json(json.dumps(old))
    assert (parsed.raw_bytes, parsed.raw_sha256, parsed.raw_truncated) == (None, None, False)


def test_a_long_validation_error_is_cut() -> None:
    payload = json.dumps({**CHAT, "user_roles": ["\x01"] * 250}).encode()
    with pytest.raises(ValidationError) as info:
        ChatMessage.model_validate_json(payload)
    dead = letter(payload, info.value)
    assert len(str(info.value)) > ERROR_LIMIT  # one line per bad role
    assert len(dead.error.encode()) <= ERROR_LIMIT
    assert dead.error_type == "ValidationError"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abc", 10, ("abc", False)),
        ("a" * 20, 10, ("a" * 10, True)),
        ('a"b' * 10, 4, ('a"b', True)),  # a"b is 4 bytes encoded; the next "a" would be a 5th
        ("\x01\x01", 7, ("\x01", True)),  # never half an escape
        ("éé", 3, ("é", True)),  # never half a UTF-8 sequence
        ("\ud800" * 10, 14, ("\\ud800\\ud800", True)),  # lone surrogates: text, 7 bytes
    ],
)
def test_json_prefix_cuts_at_encoded_bytes(
    text: str, limit: int, expected: tuple[str, bool]
) -> None:
    assert json_prefix(text, limit) == expected


@pytest.mark.parametrize("field", ["message_id", "community", "channel", "user", "reply_to"])
@pytest.mark.parametrize("char", ["\x00", "\x1f", "\n", "\x7f", "\x85", "\x9f"])
def test_ids_reject_control_characters(field: str, char: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatMessage.model_validate_json(json.dumps({**CHAT, field: f"a{char}b"}))
    assert field in str(info.value)


@pytest.mark.parametrize("field", ["community", "user"])
def test_key_parts_reject_the_key_separator(field: str) -> None:
    # twitch:a:b:c could be community "a:b", user "c" or community "a", user "b:c".
    with pytest.raises(ValidationError, match=field):
        ChatMessage.model_validate_json(json.dumps({**CHAT, field: "a:b"}))


def test_ids_keep_printable_unicode_and_their_length_limit() -> None:
    message = ChatMessage.model_validate_json(
        json.dumps({**CHAT, "message_id": "é😀#-_.:/ ok", "channel": "x" * 200})
    )
    assert message.message_id == "é😀#-_.:/ ok"
    with pytest.raises(ValidationError, match="message_id"):
        ChatMessage.model_validate_json(json.dumps({**CHAT, "message_id": "x" * 201}))


def test_roles_are_labels_and_lists_are_bounded() -> None:
    with pytest.raises(ValidationError, match="user_roles"):
        ChatMessage.model_validate_json(json.dumps({**CHAT, "user_roles": ["mod\x00"]}))
    with pytest.raises(ValidationError, match="user_roles"):
        ChatMessage.model_validate_json(json.dumps({**CHAT, "user_roles": ["r"] * 257}))


def test_free_text_keeps_control_characters_but_replaces_nul() -> None:
    message = ChatMessage.model_validate_json(
        json.dumps({**CHAT, "text": "a\x00b\tc\x01", "user_name": "n\x00"})
    )
    assert message.text == "a\ufffdb\tc\x01"
    assert message.user_name == "n\ufffd"
    # Whatever is built from it downstream carries no NUL either (Postgres refuses it).
    assert "\\u0000" not in message.model_dump_json()
    verdict = json.loads((GOLDEN / "verdict.v1.json").read_text())
    assert Verdict.model_validate({**verdict, "text": "\x00"}).text == "\ufffd"


def test_action_reasons_replace_nul() -> None:
    request = ActionRequest.model_validate(
        {
            "action_id": "m1:delete",
            "message_id": "m1",
            "platform": "discord",
            "community": "g",
            "channel": "c",
            "user": "u",
            "kind": "delete",
            "reason": "bad\x00",
            "severity": "HIGH",
            "p_toxic": 0.9,
            "model_version": "v1",
            "policy_version": "p1",
            "sent_at": "2026-11-21T10:00:00+00:00",
            "requested_at": "2026-11-21T10:00:00+00:00",
            "notice": "\x00",
        }
    )
    assert (request.reason, request.notice) == ("bad\ufffd", "\ufffd")


def test_the_largest_valid_message_makes_a_verdict_under_the_broker_limit() -> None:
    worst = {
        **CHAT,
        "text": "\x01" * 40_000,  # 6 bytes each once escaped
        "user_roles": ["\u20ac" * 100] * 256,  # 3 bytes each in UTF-8
    }
    message = ChatMessage.model_validate_json(json.dumps(worst))
    verdict = json.loads((GOLDEN / "verdict.v1.json").read_text())
    built = Verdict.model_validate(
        {**verdict, "text": message.text, "user_roles": message.user_roles}
    )
    assert len(built.to_json_bytes()) < BROKER_LIMIT // 2

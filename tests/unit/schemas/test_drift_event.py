"""The DriftEvent contract (moderation.drift.v1): the golden payload, its key, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.events import DriftEvent
from schemas.topics import DRIFT, TOPICS

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "drift_event.v1.json"


def test_the_golden_drift_event_is_keyed_by_community_on_its_own_topic() -> None:
    event = DriftEvent.model_validate(json.loads(GOLDEN.read_text()))
    assert event.key == "twitch:somechannel"
    assert DRIFT in TOPICS and DRIFT.value_type is DriftEvent and DRIFT.name.endswith(".v1")
    assert set(event.drifted) <= set(event.scores)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("drift_share", 1.5),  # a share
        ("flag_rate", -0.1),
        ("rows", 0),
        ("community", "a:b"),  # the key separator
        ("platform", "myspace"),
        ("scores", {"p_toxic": "high"}),  # not coerced
        ("window_start", "2026-11-30T11:40:00"),  # no time zone
    ],
)
def test_a_drift_event_refuses_a_bad_field(field: str, value: object) -> None:
    golden = json.loads(GOLDEN.read_text())
    with pytest.raises(ValidationError):
        DriftEvent.model_validate({**golden, field: value})

"""The shared verdict rules: the grade of a score, the flag rule, the label services read."""

from __future__ import annotations

import pytest

from schemas.events import Severity
from schemas.rules import HARD_SLUR, is_flagged, severity_for


@pytest.mark.parametrize(
    ("p_toxic", "expected"),
    [
        (0.0, Severity.SAFE),
        (0.2999, Severity.SAFE),
        (0.3, Severity.LOW),  # each cut-off is inclusive
        (0.4999, Severity.LOW),
        (0.5, Severity.MEDIUM),
        (0.7, Severity.HIGH),
        (1.0, Severity.HIGH),
    ],
)
def test_severity_for_grades_with_inclusive_cut_offs(p_toxic: float, expected: Severity) -> None:
    assert severity_for(p_toxic, 0.3, 0.5, 0.7) is expected


def test_equal_cut_offs_give_the_highest_grade() -> None:
    assert severity_for(0.5, 0.5, 0.5, 0.5) is Severity.HIGH
    assert severity_for(0.49, 0.5, 0.5, 0.5) is Severity.SAFE


@pytest.mark.parametrize("flag_severity", [Severity.LOW, Severity.MEDIUM, Severity.HIGH])
def test_a_verdict_is_flagged_at_the_flag_severity_and_above(flag_severity: Severity) -> None:
    flagged = [s for s in Severity if is_flagged(s, flag_severity)]
    assert flagged == list(Severity)[list(Severity).index(flag_severity) :]
    assert not is_flagged(Severity.SAFE, flag_severity)


def test_the_hard_slur_label_is_its_wire_value() -> None:
    # Downstream consumers and stored policies match this exact string.
    assert HARD_SLUR == "hard_slur"

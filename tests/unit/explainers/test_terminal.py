"""``warden explain``'s output: words marked by weight (colour on a terminal, brackets
otherwise), the weights table, JSON; and one clear line for input it cannot read."""

from __future__ import annotations

from click.testing import CliRunner

from explainers.terminal import as_json, highlighted, report
from schemas.events import Explanation, Severity
from toxicity.explanation import Explained
from warden.cli import main

EXPLAINED = Explained(
    model_version="m1",
    p_toxic=0.93,
    severity=Severity.HIGH,
    labels=("threat",),
    weights=[("kill", 0.35), ("you", 0.3), ("tonight", -0.09), ("i", 0.01)],
    intercept=0.2,
    fit=0.8,
    samples=300,
    cache_hits=270,
    words=4,
    truncated=False,
    reasons={"spam": "the same line 5 times"},
)


def test_plain_text_marks_the_words_that_moved_the_score() -> None:
    line = highlighted("i will kill you tonight", EXPLAINED, color=False)
    assert line == "i will kill[+0.35] you[+0.30] tonight[-0.09]"
    text = report("i will kill you tonight", EXPLAINED, color=False)
    assert "\x1b[" not in text
    rows = [r.split() for r in text.splitlines() if r.strip().startswith(("+", "-"))]
    assert rows == [["+0.350", "kill"], ["+0.300", "you"], ["+0.010", "i"], ["-0.090", "tonight"]]
    assert "300 perturbed texts scored, 270 without the encoder" in text
    assert "spam: the same line 5 times" in text


def test_colour_is_red_towards_toxic_and_green_towards_safe() -> None:
    line = highlighted("i will kill you tonight", EXPLAINED, color=True)
    assert "\x1b[31m\x1b[1mkill\x1b[0m" in line  # red, bold: moved it by 0.1 or more
    assert "\x1b[32mtonight\x1b[0m" in line  # green
    assert line.startswith("i will ")  # under 0.02: left plain


def test_json_is_an_explanation_with_the_cli_extras() -> None:
    document = as_json(EXPLAINED)
    assert document["weights"][0] == {"token": "kill", "weight": 0.35}
    assert document["cache_hits"] == 270 and document["labels"] == ["threat"]
    Explanation.model_validate({**document, "message_id": "x"})


def test_unreadable_input_is_one_line_and_a_non_zero_exit() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["explain", "-"], input=b"ok \xff\xfe")
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "warden: standard input is not UTF-8 (byte 0xff at offset 3)"
    ]
    result = runner.invoke(main, ["explain", "x" * 40_001])
    assert result.exit_code != 0
    assert "at most 40000" in result.output

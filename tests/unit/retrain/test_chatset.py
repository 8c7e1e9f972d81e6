"""The chat evaluation set: it loads, every category is measurable in both splits, labels come
from the taxonomy, no line appears twice, and a broken line fails naming its line number."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from retrain.chatset import (
    CATEGORIES,
    SPLITS,
    ChatSetError,
    cases_path,
    load_cases,
    parse_cases,
)
from schemas.labels import HARM_LABELS
from toxicity.normalize import normalize

ROOT = Path(__file__).resolve().parents[3]


def _line(**overrides: Any) -> str:
    row = {
        "id": "threat-001",
        "text": "i will find you",
        "harmful": True,
        "category": "threat",
        "labels": ["threat"],
        "split": "test",
    }
    row.update(overrides)
    return json.dumps(row)


def test_set_loads_with_both_splits_partitioning_it() -> None:
    cases = load_cases()
    dev, test = load_cases("dev"), load_cases("test")
    assert len(cases) >= 700
    assert len(dev) + len(test) == len(cases)
    assert {case.split for case in dev} == {"dev"}
    assert {case.split for case in test} == {"test"}
    # About 40/60: dev is never the larger split.
    assert 0.3 < len(dev) / len(cases) < 0.5


def test_every_category_has_ten_cases_in_each_split() -> None:
    counts = Counter((case.category, case.split) for case in load_cases())
    short = {
        (category, split): counts[(category, split)]
        for category in CATEGORIES
        for split in SPLITS
        if counts[(category, split)] < 10
    }
    assert not short


def test_labels_come_from_the_taxonomy_and_match_harmfulness() -> None:
    for case in load_cases():
        assert case.harmful is CATEGORIES[case.category].harmful, case.id
        assert set(case.labels) <= set(HARM_LABELS), case.id
        assert bool(case.labels) is case.harmful, case.id


def test_harmful_categories_cover_the_harm_labels_the_issue_names() -> None:
    seen = {label for case in load_cases() for label in case.labels}
    assert {"insult", "threat", "self_harm", "identity_attack", "sexual_harassment"} <= seen


def test_no_text_appears_twice_once_normalised() -> None:
    # Read the raw file, not through the loader, so that this does not trust its own check.
    texts = [json.loads(line)["text"] for line in cases_path().read_text("utf-8").splitlines()]
    counts = Counter(normalize(text) for text in texts)
    assert [text for text, count in counts.items() if count > 1] == []


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown split 'train'"):
        load_cases("train")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (_line(category="threats", id="threats-001"), "unknown category 'threats'"),
        (_line(labels=["threat", "violence"]), "unknown label.*violence"),
        (_line(labels=[]), "harmful but has no labels"),
        (_line(harmful=False), "harmful=False but threat is harmful"),
        (_line(id="insult_direct-001"), "is not 'threat-<nnn>'"),
        (_line(split="train"), "unknown split 'train'"),
        ('{"id": "threat-001"}', "expected the fields"),
        ("not json", "not JSON"),
    ],
)
def test_a_bad_line_names_its_line_number(line: str, message: str) -> None:
    good = _line(id="threat-002", text="watch your back irl")
    with pytest.raises(ChatSetError, match=f"cases.jsonl line 2: .*{message}"):
        parse_cases([good, line])


def test_duplicate_ids_and_normalised_texts_are_refused() -> None:
    first = _line(id="threat-001", text="KYS")
    with pytest.raises(ValueError, match="line 2: duplicate id 'threat-001'"):
        parse_cases([first, _line(id="threat-001", text="other")])
    # "k.y.s" normalises to "kys", the same line with an evasion: a leak between splits.
    with pytest.raises(ValueError, match="line 2: threat-002 duplicates the text of line 1"):
        parse_cases([first, _line(id="threat-002", text="k.y.s", split="dev")])


def test_bad_file_fails_on_load(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(_line() + "\n" + _line(labels=["profanity", "gore"]) + "\n", "utf-8")
    with pytest.raises(ChatSetError, match=r"cases.jsonl line 2: .*gore"):
        load_cases(path=path)


def test_package_data_ships_the_set_and_its_readme() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["retrain"]
    package = ROOT / "retrain"
    shipped = {
        path.relative_to(package).as_posix()
        for pattern in patterns
        for path in package.glob(pattern)
    }
    assert {"chatset/cases.jsonl", "chatset/README.md"} <= shipped

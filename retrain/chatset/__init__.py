"""The chat-domain evaluation set: livestream chat lines by functional category.

``cases.jsonl`` (beside this module) holds hand-written chat lines, one JSON object a line, each
in one functional category in the spirit of HateCheck (Roettger et al., 2021): a behaviour a
moderation model must get right, such as leaving an emote wall alone or catching ``k y s``. The
README beside it says how the set was made and labelled.

The ``test`` split is never used for training, calibration or thresholds; ``dev`` may be used for
calibration and thresholds. :func:`load_cases` validates every line, so a hand edit that breaks
the file fails loudly with the line number instead of skewing a per-category table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import WardenError
from schemas.labels import HARM_LABELS
from toxicity.normalize import normalize

SPLITS: tuple[str, ...] = ("dev", "test")
_FIELDS = frozenset({"id", "text", "harmful", "category", "labels", "split"})
_ID = re.compile(r"(?P<category>[a-z_]+)-\d{3}")


class ChatSetError(WardenError, ValueError):
    """A line of the chat evaluation set is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Category:
    """A functional category: whether its lines are harmful, and the behaviour it tests."""

    harmful: bool
    description: str


CATEGORIES: dict[str, Category] = {
    # Benign: a moderation model must not flag these at the default flag severity.
    "emote_only": Category(False, "a single emote or emoji, global, channel or Discord custom"),
    "emote_wall": Category(False, "the same emote or a few emotes repeated across a line"),
    "reaction_short": Category(False, "one-word and one-letter reactions: F, W, L, gg, LMAOOO"),
    "game_violence": Category(False, "violent words about the game being played, not a person"),
    "profanity_praise": Category(False, "swearing as an intensifier of praise or surprise"),
    "banter_friendly": Category(False, "teasing that is clearly affectionate or self-aware"),
    "meme_phrases": Category(False, "harmless memes and copypasta phrases of chat"),
    "self_deprecation": Category(False, "chatters running themselves down, hyperbole included"),
    "identity_neutral": Category(False, "identity groups mentioned neutrally or positively"),
    "counter_speech": Category(False, "quoting or denouncing abuse in order to oppose it"),
    "questions_chat": Category(False, "ordinary questions and statements of chat"),
    "negated": Category(False, "an insult or harm word negated or denied"),
    # Harmful: a moderation model must catch these.
    "self_harm_incitement": Category(True, "telling someone to kill or hurt themselves"),
    "threat": Category(True, "threats of violence against a streamer or chatter"),
    "doxxing_hint": Category(True, "showing or threatening knowledge of where someone is"),
    "sexist_chat": Category(True, "sexist put-downs of women in chat idiom"),
    "sexual_harassment": Category(True, "unwanted sexual comments and demands"),
    "identity_attack_chat": Category(True, "hate against a protected group, without hard slurs"),
    "slur_evasion": Category(True, "slurs disguised by leetspeak, spacing, masks, homoglyphs"),
    "insult_direct": Category(True, "direct insults at the streamer or a chatter"),
    "harassment_pile_on": Category(True, "mocking a chatter or hounding them out of chat"),
}
"""Every category of ``cases.jsonl``, by name."""


@dataclass(frozen=True)
class ChatCase:
    """One line of the chat evaluation set."""

    id: str
    text: str
    harmful: bool
    category: str
    labels: tuple[str, ...]
    split: str


def cases_path() -> Path:
    """Where the packaged ``cases.jsonl`` lives."""
    return Path(str(resources.files(__name__).joinpath("cases.jsonl")))


def load_cases(split: str | None = None, *, path: Path | None = None) -> list[ChatCase]:
    """The validated cases of one split (``"dev"`` or ``"test"``), or of both when ``None``.

    Every line of the file is validated whichever split is asked for, so that a duplicate across
    splits (a test line leaking into dev) is an error too. ``ChatSetError`` (a ``ValueError``)
    names the file and line of the first problem.
    """
    if split is not None and split not in SPLITS:
        raise ChatSetError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    source = path if path is not None else cases_path()
    with source.open(encoding="utf-8") as handle:
        cases = parse_cases(handle, source=str(source))
    return [case for case in cases if split is None or case.split == split]


def parse_cases(lines: Iterable[str], *, source: str = "cases.jsonl") -> list[ChatCase]:
    """Every case of ``lines`` (JSON Lines), validated as a whole file."""
    cases: list[ChatCase] = []
    ids: dict[str, int] = {}
    texts: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        case = _case(line, where)
        if case.id in ids:
            raise ChatSetError(f"{where}: duplicate id {case.id!r} (first on line {ids[case.id]})")
        key = normalize(case.text)
        if key in texts:
            raise ChatSetError(
                f"{where}: {case.id} duplicates the text of line {texts[key]} once normalised"
            )
        ids[case.id] = texts[key] = number
        cases.append(case)
    return cases


def _case(line: str, where: str) -> ChatCase:
    try:
        row: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ChatSetError(f"{where}: not JSON ({exc.msg})") from exc
    if not isinstance(row, dict) or set(row) != _FIELDS:
        got = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise ChatSetError(f"{where}: expected the fields {sorted(_FIELDS)}, got {got}")
    case_id, text, harmful = row["id"], row["text"], row["harmful"]
    category, labels, split = row["category"], row["labels"], row["split"]
    if not isinstance(category, str) or category not in CATEGORIES:
        raise ChatSetError(f"{where}: unknown category {category!r}")
    match = _ID.fullmatch(case_id) if isinstance(case_id, str) else None
    if match is None or match["category"] != category:
        raise ChatSetError(f"{where}: id {case_id!r} is not '{category}-<nnn>'")
    if not isinstance(text, str) or not text.strip():
        raise ChatSetError(f"{where}: {case_id} has no text")
    if harmful is not CATEGORIES[category].harmful:
        raise ChatSetError(
            f"{where}: {case_id} has harmful={harmful!r} but {category} is "
            f"{'harmful' if CATEGORIES[category].harmful else 'benign'}"
        )
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ChatSetError(f"{where}: {case_id} labels must be a list of strings")
    unknown = [label for label in labels if label not in HARM_LABELS]
    if unknown:
        raise ChatSetError(f"{where}: {case_id} has unknown label(s) {', '.join(unknown)}")
    if len(set(labels)) != len(labels):
        raise ChatSetError(f"{where}: {case_id} repeats a label")
    if harmful and not labels:
        raise ChatSetError(f"{where}: {case_id} is harmful but has no labels")
    if not harmful and labels:
        raise ChatSetError(f"{where}: {case_id} is benign but has labels {labels}")
    if split not in SPLITS:
        raise ChatSetError(f"{where}: {case_id} has unknown split {split!r}")
    return ChatCase(case_id, text, harmful, category, tuple(labels), split)

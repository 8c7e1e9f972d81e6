"""Chat-domain training data: hand-written lines and slot-filling templates for livestream chat.

The public training pool (Wikipedia comments, tweets, HateXplain) has almost no chat language,
so the model flags ``F``, ``LMAO`` and "kill the boss" and misses ``kys``. This module turns the
files in ``retrain/chatdata/`` (written for this project; see its README for each family, how it
was made and where its label boundaries lie) into labelled examples.

Each family file is a contrast set: benign lines a comment-trained model gets wrong next to the
chat-native harms that look like them, so that no surface cue (an emote, a game word, a swear
word, shortness) decides the label on its own. A file holds sections::

    [incitement] 1 self_harm *4     <- section name, label 0/1, harm labels, fills per line
    go {kys~} {at}                   <- a template
    # a comment

Templates fill ``{slot}`` from ``slots.txt`` (or a built-in slot: ``emote``, ``emote_wall``,
``react``, ``slur``), ``{a|b|}`` picks one alternative (possibly empty), and ``{slot~}`` disguises
the filled word (leetspeak, spacing, asterisks, homoglyphs) with some probability. Every
example then gets a surface variation (casing, end punctuation, a typo, an emote before or
after) so that length, case and emotes vary within both classes, and the same share of each
class (:data:`MENTION_SHARE`) addresses someone by ``@name`` (addressed copies of lines are
added where a class has too few).

Labels: ``label`` is the section's; ``labels`` are the section's harm labels, plus
``profanity`` wherever :class:`toxicity.lexicon.Lexicon` finds a listed word (a weak label:
"holy shit that was clean" is label 0 with ``("profanity",)``), plus, in a harmful line,
``self_harm`` wherever ``{kys}`` was filled and ``identity_attack`` wherever ``{slur}`` was.
Texts are unique by :func:`normalised_key`; a key that comes out of both classes is dropped,
and so are the longer example sentences quoted in issue #12 (they are the lead's spot checks,
so they stay unseen). The benign share is then brought into :data:`BENIGN_SHARE` by dropping
examples at random within each family.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib import resources

from schemas.labels import HARM_LABELS, IDENTITY_ATTACK, PROFANITY, SELF_HARM
from toxicity.emotes import EMOTE_CODES
from toxicity.lexicon import LISTED_SLURS, Lexicon
from toxicity.normalize import MENTION, model_text, normalize

logger = logging.getLogger(__name__)

DATA_PACKAGE = "retrain"
DATA_FOLDER = "chatdata"
SLOTS_FILE = "slots.txt"
EMPTY = "<empty>"
BENIGN_SHARE: tuple[float, float] = (0.60, 0.70)
"""The share of label-0 examples :func:`chat_examples` returns (min, max)."""
_BENIGN_TARGET = 0.65
MENTION_SHARE = 0.2
"""The share of examples that address someone (``@name`` first or last), the same in both
classes: in chat a reply is as often friendly as not, so a mention must not read as harm."""

# Quoted in issue #12 as what the shipped model gets wrong: kept out of training so that they
# remain a fair spot check. (One- and two-word forms like "kys" are the point of the data and
# stay in.)
ISSUE_SPOT_CHECKS: frozenset[str] = frozenset(
    {
        "kill the boss",
        "holy shit that was clean",
        "what the hell",
        "i know where you live",
        "i will find you and hurt you",
        "go back to the kitchen",
    }
)

_SECTION = re.compile(r"^\[(?P<name>[a-z0-9_]+)\]\s+(?P<label>[01])(?P<rest>.*)$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# A harmful line that tells someone to kill themselves is self-harm incitement whatever else
# it is; one with a slur is an identity attack (benign lines only ever quote them).
_SLOT_LABELS = {"kys": SELF_HARM, "slur": IDENTITY_ATTACK}


class ChatDataError(ValueError):
    """A chat data file that does not parse (names the file and line)."""


@dataclass(frozen=True)
class ChatExample:
    """One chat line: ``label`` 1 is harmful; ``labels`` are harm labels from
    :data:`schemas.labels.HARM_LABELS` (``profanity`` also on benign lines that swear);
    ``kind`` is ``family/section``; ``origin`` is ``file:line`` of its template, for splits
    that keep every fill of one template on one side."""

    text: str
    label: int
    labels: tuple[str, ...]
    kind: str
    origin: str = ""

    @property
    def family(self) -> str:
        return self.kind.split("/", 1)[0]


@dataclass(frozen=True)
class _Section:
    family: str
    name: str
    label: int
    labels: tuple[str, ...]
    fills: int
    templates: tuple[tuple[int, str], ...]  # (line number, template)


def normalised_key(text: str) -> str:
    """What makes two lines the same line to the model: mentions folded, then normalised."""
    return normalize(model_text(text))


def _read(name: str) -> str:
    return resources.files(DATA_PACKAGE).joinpath(DATA_FOLDER, name).read_text(encoding="utf-8")


def family_files() -> list[str]:
    """The family files in ``retrain/chatdata/`` (every ``*.txt`` but the slot file), sorted."""
    folder = resources.files(DATA_PACKAGE).joinpath(DATA_FOLDER)
    names = [item.name for item in folder.iterdir() if item.name.endswith(".txt")]
    return sorted(name for name in names if name != SLOTS_FILE)


def load_slots() -> dict[str, tuple[str, ...]]:
    """The slot lists of ``slots.txt``: ``[name]`` headers, one value a line."""
    slots: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, raw in enumerate(_read(SLOTS_FILE).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = slots.setdefault(line[1:-1], [])
            continue
        if current is None:
            raise ChatDataError(f"{SLOTS_FILE}:{number}: value before any [slot] header")
        current.append("" if line == EMPTY else line)
    return {name: tuple(values) for name, values in slots.items()}


def parse_family(name: str, text: str) -> list[_Section]:
    """The sections of one family file (``name`` is its file name)."""
    family = name.removesuffix(".txt")
    sections: list[_Section] = []
    header: tuple[str, int, tuple[str, ...], int] | None = None
    templates: list[tuple[int, str]] = []

    def close() -> None:
        if header is not None:
            if not templates:
                raise ChatDataError(f"{name}: section [{header[0]}] has no lines")
            sections.append(_Section(family, *header, templates=tuple(templates)))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            if match is None:
                raise ChatDataError(f"{name}:{number}: bad section header {line!r}")
            close()
            templates = []
            fills = 1
            labels: list[str] = []
            for word in match["rest"].split():
                if word.startswith("*") and word[1:].isdigit():
                    fills = int(word[1:])
                elif word in HARM_LABELS and word != PROFANITY:
                    labels.append(word)
                else:
                    # profanity is a weak label from the lexicon, never a section's claim.
                    raise ChatDataError(f"{name}:{number}: unknown label or option {word!r}")
            label = int(match["label"])
            if label == 1 and not labels:
                raise ChatDataError(f"{name}:{number}: a harmful section needs a harm label")
            if label == 0 and labels:
                raise ChatDataError(f"{name}:{number}: a benign section names harm labels")
            header = (match["name"], label, tuple(labels), fills)
            continue
        if header is None:
            raise ChatDataError(f"{name}:{number}: line before any [section] header")
        templates.append((number, line))
    close()
    return sections


# --- disguises: how chat slips a word past a filter ------------------------------------------

_LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "$5", "t": "7", "g": "9", "l": "1"}
# Cyrillic and Greek look-alikes of Latin letters (escaped: they are the point, not typos).
_HOMOGLYPH = {
    "a": "\u0430",
    "e": "\u0435",
    "o": "\u043e",
    "p": "\u0440",
    "c": "\u0441",
    "y": "\u0443",
    "x": "\u0445",
    "i": "\u0456",
    "s": "\u0455",
    "k": "\u03ba",
}


def disguise(word: str, rng: random.Random) -> str:
    """``word`` spelt the way evaders spell it: one of leetspeak, letters spaced or dotted,
    asterisks, look-alike letters, a zero-width space, or stretched letters; never as it was."""
    for _ in range(8):
        out = _disguise_once(word, rng)
        if out != word:
            return out
    return word[:1] + "*" * max(1, len(word) - 1)


def _disguise_once(word: str, rng: random.Random) -> str:
    how = rng.randrange(7)
    letters = [c for c in word]
    if how == 0:
        out = [rng.choice(_LEET[c]) if c in _LEET and rng.random() < 0.6 else c for c in letters]
        return "".join(out)
    if how == 1:
        return rng.choice((" ", ".", "-", "_", " . ")).join(letters)
    if how == 2:
        if len(word) <= 3:
            return word[0] + "*" * (len(word) - 1)
        inner = "".join("*" if c in "aeiou" or rng.random() < 0.3 else c for c in word[1:-1])
        return word[0] + inner + word[-1]
    if how == 3:
        return "".join(
            _HOMOGLYPH[c] if c in _HOMOGLYPH and rng.random() < 0.5 else c for c in letters
        )
    if how == 4 and len(word) > 2:
        cut = rng.randrange(1, len(word))
        return word[:cut] + "\u200b" + word[cut:]
    vowels = [i for i, c in enumerate(word) if c in "aeiouy"]
    if not vowels:
        return word.upper()
    at = rng.choice(vowels)
    return word[: at + 1] + word[at] * rng.randrange(1, 5) + word[at + 1 :]


# --- filling templates -------------------------------------------------------------------------


class _Filler:
    def __init__(self, slots: dict[str, tuple[str, ...]], rng: random.Random) -> None:
        self.slots = slots
        self.rng = rng
        self.emotes = tuple(sorted(EMOTE_CODES)) + slots.get("channel_emote", ())
        self.extra_emotes = slots.get("emoji", ()) + slots.get("discord_emote", ())
        self.slurs = tuple(sorted(LISTED_SLURS))
        self.used: set[str] = set()  # slot names filled since the last reset

    def emote(self) -> str:
        if self.rng.random() < 0.3 and self.extra_emotes:
            return self.rng.choice(self.extra_emotes)
        return self.rng.choice(self.emotes)

    def emote_wall(self) -> str:
        if self.rng.random() < 0.5:
            one = self.emote()
            return " ".join([one] * self.rng.randrange(3, 14))
        return " ".join(self.emote() for _ in range(self.rng.randrange(3, 10)))

    def react(self) -> str:
        word = self.rng.choice(self.slots["react"])
        roll = self.rng.random()
        if roll < 0.3 and word[-1].isalpha():
            word = word + word[-1] * self.rng.randrange(1, 6)
        elif roll < 0.5:
            word = word.upper()
        return word

    def slot(self, name: str) -> str:
        self.used.add(name)
        if name == "emote":
            return self.emote()
        if name == "emote_wall":
            return self.emote_wall()
        if name == "react":
            return self.react()
        if name == "slur":
            return self.rng.choice(self.slurs)
        if name not in self.slots:
            raise ChatDataError(f"unknown slot {{{name}}}")
        return self.rng.choice(self.slots[name])

    def fill(self, template: str, depth: int = 0) -> str:
        if depth > 4:
            raise ChatDataError(f"slots nest too deep in {template!r}")

        def one(match: re.Match[str]) -> str:
            inner = match.group(1)
            if "|" in inner:
                return self.fill(self.rng.choice(inner.split("|")), depth + 1)
            name, evade = inner.rstrip("~"), inner.endswith("~")
            value = self.fill(self.slot(name), depth + 1)
            # Slurs always come disguised: the data files never spell one out.
            if name == "slur" or (evade and self.rng.random() < 0.45):
                value = " ".join(disguise(word, self.rng) for word in value.split())
            return value

        return _PLACEHOLDER.sub(one, template)


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long:
        return text
    i = rng.choice(long)
    word = words[i]
    at = rng.randrange(1, len(word) - 2)
    if rng.random() < 0.5:
        words[i] = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    else:
        words[i] = word[:at] + word[at + 1 :]
    return " ".join(words)


def _surface(text: str, filler: _Filler) -> str:
    """Chat surface: casing, end punctuation, a typo, an emote; as often in either class."""
    rng = filler.rng
    roll = rng.random()
    if roll < 0.25:
        text = text.lower()
    elif roll < 0.32 and len(text) <= 48:
        text = text.upper()
    elif roll < 0.42:
        text = text[:1].upper() + text[1:]
    if rng.random() < 0.15 and text[-1:].isalnum():
        text += rng.choice(("!", "!!", "?", "??", "...", " !!", "!!!", " ?"))
    if rng.random() < 0.08:
        text = _typo(text, rng)
    roll = rng.random()
    if roll < 0.18:
        text = f"{text} {filler.emote()}"
    elif roll < 0.22:
        text = f"{text} {filler.emote()} {filler.emote()}"
    elif roll < 0.26:
        text = f"{filler.emote()} {text}"
    return text


def _expand(section: _Section, filler: _Filler) -> Iterable[tuple[str, frozenset[str], str]]:
    """(text, harm labels its slots imply, origin) for every fill of the section's lines."""
    for number, template in section.templates:
        origin = f"{section.family}.txt:{number}"
        # A template without slots is one line: its extra fills can only differ in surface.
        fills = section.fills if _PLACEHOLDER.search(template) else min(section.fills, 3)
        for fill in range(fills):
            filler.used.clear()
            text = filler.fill(template)
            # The first fill of a plain line keeps the line as written.
            if fill or _PLACEHOLDER.search(template):
                text = _surface(text, filler)
            text = " ".join(text.split())
            if text:
                implied = {_SLOT_LABELS[n] for n in filler.used if n in _SLOT_LABELS}
                yield text, frozenset(implied) if section.label else frozenset(), origin


def _even_mentions(examples: list[ChatExample], filler: _Filler) -> list[ChatExample]:
    """``examples`` plus addressed copies (``@name`` in front or after) of randomly chosen
    lines, until :data:`MENTION_SHARE` of each class addresses someone."""
    rng = filler.rng
    out = list(examples)
    keys = {normalised_key(e.text) for e in out}
    for label in (0, 1):
        rows = [e for e in examples if e.label == label]
        bare = [e for e in rows if MENTION not in model_text(e.text)]
        addressed = len(rows) - len(bare)
        # Copies needed so that (addressed + k) / (len(rows) + k) reaches the share.
        missing = round((MENTION_SHARE * len(rows) - addressed) / (1 - MENTION_SHARE))
        rng.shuffle(bare)
        for example in bare:
            if missing <= 0:
                break
            name, text = f"@{filler.slot('chatter')}", example.text
            roll = rng.random()
            if roll < 0.7:
                text = f"{name} {text}"
            elif roll < 0.8:
                text = f"{name}, {text}"
            else:
                text = f"{text} {name}"
            key = normalised_key(text)
            if key in keys:
                continue
            keys.add(key)
            out.append(replace(example, text=text))
            missing -= 1
    return out


def _balance(examples: list[ChatExample], rng: random.Random) -> list[ChatExample]:
    """Drop examples at random from the larger class, in proportion in every family, until
    the benign share is :data:`_BENIGN_TARGET` (families keep both classes)."""
    benign = sum(1 for e in examples if e.label == 0)
    harmful = len(examples) - benign
    if not examples or BENIGN_SHARE[0] <= benign / len(examples) <= BENIGN_SHARE[1]:
        return examples
    if benign / len(examples) < BENIGN_SHARE[0]:
        drop_label, keep_share = 1, (benign / _BENIGN_TARGET - benign) / harmful
    else:
        drop_label, keep_share = 0, (harmful / (1 - _BENIGN_TARGET) - harmful) / benign
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        if example.label == drop_label:
            by_family[example.family].append(i)
    dropped: set[int] = set()
    for family in sorted(by_family):
        rows = by_family[family]
        keep = max(1, round(len(rows) * keep_share))
        dropped.update(rng.sample(rows, len(rows) - keep))
    return [e for i, e in enumerate(examples) if i not in dropped]


def chat_examples(seed: int = 0) -> list[ChatExample]:
    """Every chat training example for ``seed`` (the same list for the same seed)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    filler = _Filler(load_slots(), rng)
    lexicon = Lexicon.default()
    seen: dict[str, ChatExample] = {}
    conflicted: set[str] = set()
    spot_checks = {normalised_key(text) for text in ISSUE_SPOT_CHECKS}
    for name in family_files():
        for section in parse_family(name, _read(name)):
            for text, implied, origin in _expand(section, filler):
                key = normalised_key(text)
                if not key or key in spot_checks or key in conflicted:
                    continue
                labels = set(section.labels) | implied
                if lexicon.scan(normalize(text)).profanity:
                    labels.add(PROFANITY)
                example = ChatExample(
                    text=text,
                    label=section.label,
                    labels=tuple(label for label in HARM_LABELS if label in labels),
                    kind=f"{section.family}/{section.name}",
                    origin=origin,
                )
                first = seen.get(key)
                if first is None:
                    seen[key] = example
                elif first.label != example.label:
                    # The same line in both classes teaches nothing: keep neither.
                    conflicted.add(key)
                    del seen[key]
    if conflicted:
        logger.info("chat data: %d lines came out in both classes, dropped", len(conflicted))
    return _balance(_even_mentions(list(seen.values()), filler), rng)


def summary(examples: Iterable[ChatExample]) -> dict[str, dict[str, int]]:
    """Counts per kind (benign/harmful) and per harm label, for reports and the model card."""
    kinds: dict[str, int] = defaultdict(int)
    labels: dict[str, int] = defaultdict(int)
    for example in examples:
        kinds[f"{example.kind}:{example.label}"] += 1
        labels[f"label_{example.label}"] += 1
        for label in example.labels:
            labels[f"{label}:{example.label}"] += 1
    return {"kinds": dict(sorted(kinds.items())), "labels": dict(sorted(labels.items()))}

"""Labelled texts from the fetched sources, deduplicated and split.

Labels are binary: HateXplain's ``hatespeech`` and ``offensive`` are 1, ``normal`` is 0; the
pool's ``is_offensive`` is used as is. Harm labels (``schemas.labels``) for the label heads are
weak where the source has none: HateXplain's ``hatespeech`` is an ``identity_attack`` (its posts
target groups), ``offensive`` an ``insult``; the pool's offensive rows an ``insult``. The chat
training data (``retrain.chat_training``) carries its own.

Chat-domain data: the training families of ``retrain.chat_training`` train; the evaluation
set's ``dev`` split (``retrain.chatset``) joins HateXplain dev for calibration and thresholds;
its ``test`` split is never read here. Every evaluation line is removed from training first.

The pool's tweets (Davidson et al.) come with Twitter's addressing, ``RT @name:`` and ``@name``,
and most of them are offensive, so a leading mention would teach "a reply is abuse": chat is
full of benign replies ("@ana same"). The addressing is removed from pool rows; the chat data
puts mentions into both classes at the same rate instead.

Duplicates are found on the normalised text (the same folding the lexical features use), so
``Y0U SUCK`` and ``you suck`` count once; HateXplain dev and test and both chat evaluation splits
win over training rows, so no benchmark text leaks into training.
"""

from __future__ import annotations

import ast
import csv
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from retrain.sources import source_path
from schemas.labels import IDENTITY_ATTACK, INSULT
from toxicity.normalize import MENTION, model_text, normalize

HATEXPLAIN_LABELS = {"hatespeech": 1, "offensive": 1, "normal": 0}
HATEXPLAIN_HARMS = {"hatespeech": (IDENTITY_ATTACK,), "offensive": (INSULT,), "normal": ()}
POOL_FILE = "profanity_check/data/clean_data.csv"
# Twitter addressing in the pool's tweets: a retweet marker, quoted or plain mentions.
_TWITTER_ADDRESS = re.compile(r"(?<!\w)(?:RT\s+)?@\w+:?", re.IGNORECASE)


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    source: str
    labels: tuple[str, ...] = ()  # harm labels (schemas.labels), weak for public data
    # Reviewed feedback (``retrain.feedback``): the context features the scorer read for the
    # message (in toxicity.features.CONTEXT_FEATURES order; None = missing) and a row weight.
    context: tuple[float | None, ...] | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Splits:
    """train = pool (less the held-back slice) + HateXplain train + chat training data; the
    rest never trains (``chat_dev`` calibrates with ``hx_dev``)."""

    train: list[Example]
    hx_dev: list[Example]
    hx_test: list[Example]
    pool_dev: list[Example]
    chat_dev: list[Example]


def strip_addressing(text: str) -> str:
    """``text`` without Twitter's retweet markers and mentions, whitespace collapsed."""
    return " ".join(_TWITTER_ADDRESS.sub(" ", text).split())


def read_pool(path: Path) -> list[Example]:
    csv.field_size_limit(1 << 24)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [
            (strip_addressing(row["text"] or ""), row["is_offensive"])
            for row in csv.DictReader(handle)
        ]
    return [
        Example(
            text=text,
            label=int(offensive),
            source="pool",
            labels=(INSULT,) if int(offensive) else (),
        )
        for text, offensive in rows
        if text
    ]


def read_hatexplain(path: Path, split: str) -> list[Example]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        out = []
        for row in reader:
            tokens = ast.literal_eval(row["post_tokens"])
            out.append(
                Example(
                    text=" ".join(str(token) for token in tokens),
                    label=HATEXPLAIN_LABELS[row["post_label"]],
                    source=f"hatexplain_{split}",
                    labels=HATEXPLAIN_HARMS[row["post_label"]],
                )
            )
        return out


def hatexplain_path(cache_dir: Path, split: str) -> Path:
    return source_path(cache_dir, "hatexplain", f"mad_fw-0.1.12/datasets/hatexplain_{split}.csv")


def unaddressed_key(text: str) -> str:
    """The normalised text with its mentions left out."""
    return normalize(" ".join(model_text(text).replace(MENTION, " ").split()))


def dedupe(examples: Iterable[Example], seen: set[str] | None = None) -> list[Example]:
    """First occurrence of each normalised text; texts already in ``seen`` are dropped."""
    seen = set() if seen is None else seen
    out = []
    for example in examples:
        key = normalize(example.text)
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(example)
    return out


def load_splits(
    cache_dir: Path,
    *,
    sample: int | None = None,
    seed: int = 0,
    pool_dev_fraction: float = 0.05,
    pool_csv: Path | None = None,
    hatexplain_dir: Path | None = None,
    chat: bool = True,
    extra: Sequence[Example] = (),
) -> Splits:
    """The training pool, HateXplain dev/test and the pool's held-back slice.

    ``sample`` keeps that many training rows (and proportionally fewer dev rows) for quick runs.
    ``pool_csv``/``hatexplain_dir`` point at other files of the same formats (test fixtures).
    ``chat=False`` leaves the chat-domain data out. ``extra`` rows (reviewed feedback) join the
    training split whatever ``sample`` is, less any text of a reserved or dev split.
    """
    pool_file = pool_csv or source_path(cache_dir, "pool", POOL_FILE)

    def hx(split: str) -> list[Example]:
        if hatexplain_dir is not None:
            return read_hatexplain(hatexplain_dir / f"hatexplain_{split}.csv", split)
        return read_hatexplain(hatexplain_path(cache_dir, split), split)

    seen: set[str] = set()
    hx_test = dedupe(hx("test"), seen)
    hx_dev = dedupe(hx("dev"), seen)
    # Both chat evaluation splits are reserved before any training row is taken.
    chat_test = dedupe(chat_cases("test") if chat else [], seen)
    chat_dev = dedupe(chat_cases("dev") if chat else [], seen)
    # Chat training lines come with and without a mention: "@ana gg" is held out with "gg".
    held_bare = {unaddressed_key(e.text) for e in (*hx_test, *hx_dev, *chat_test, *chat_dev)}
    del chat_test  # reserved: never trained on, calibrated on or read again here
    held_out = set(seen)  # every test and dev text: feedback rows must not teach them
    hx_train = dedupe(hx("train"), seen)
    chat_rows = chat_training(seed) if chat else []
    chat_train = dedupe((e for e in chat_rows if unaddressed_key(e.text) not in held_bare), seen)
    pool = dedupe(read_pool(pool_file), seen)
    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    rng.shuffle(pool)
    # At least a handful of rows even for tiny fixture pools, so dev metrics are defined.
    n_dev = max(min(10, len(pool) // 4), int(len(pool) * pool_dev_fraction))
    pool_dev, pool_train = pool[:n_dev], pool[n_dev:]
    train = pool_train + hx_train
    if sample is not None:
        # A quick model: the chat rows are cut to a sample too, even when the public rows are
        # fewer than asked (the fixture files of tests).
        if sample < len(train):
            train = rng.sample(train, sample)
        keep = max(50, sample // 4)
        hx_dev = hx_dev[:keep]
        pool_dev = pool_dev[:keep]
        # A random sample of them: the chat families come file by file, and the first few
        # hundred lines of one family (counter-speech quotes abuse) would teach it backwards.
        chat_train = rng.sample(chat_train, min(len(chat_train), max(300, sample // 4)))
    train = train + chat_train + dedupe(extra, held_out)
    rng.shuffle(train)
    return Splits(train=train, hx_dev=hx_dev, hx_test=hx_test, pool_dev=pool_dev, chat_dev=chat_dev)


def chat_cases(split: str) -> list[Example]:
    """One split of the chat-domain evaluation set, as examples (source ``chat_<split>``)."""
    from retrain.chatset import load_cases

    return [
        Example(
            text=case.text,
            label=int(case.harmful),
            source=f"chat_{split}",
            labels=tuple(case.labels),
        )
        for case in load_cases(split)
    ]


def chat_training(seed: int) -> list[Example]:
    """The chat-domain training families (``retrain.chat_training``), source ``chat``."""
    from retrain.chat_training import chat_examples

    return [
        Example(text=e.text, label=int(e.label), source="chat", labels=tuple(e.labels))
        for e in chat_examples(seed)
    ]

"""A model on chat it never trained on: generated livestream lines, and its harm labels.

``python -m benchmarks.model_quality [MODEL_DIR ...]`` (default: the shipped model)

Generated chat: ``--lines`` (20,000) lines from ``devkit.chatgen`` (seed 1234; its phrases were
written apart from the training data and are never trained on), about 10 % toxic by the
generator's ground truth. Flagged = MEDIUM or above, text alone (no context features): toxic
lines caught, benign lines flagged, and benign replies (lines that start with a mention)
flagged, with the generator's kinds of the benign lines flagged most.

Labels: for each harmful line of the chat-domain test split (``retrain/chatset``; reporting
only, never tuned on), the labels a verdict carries among the five the model's heads give
(``insult``, ``threat``, ``self_harm``, ``identity_attack``, ``sexual_harassment``;
``profanity`` and ``hard_slur`` come from word lists, not the model) are compared with the
labels the set's author gave the line: precision (labels given that are right), recall (right
labels given) and wrong labels per line.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from core.settings import load_settings
from devkit.chatgen import iter_generated
from retrain.chatset import load_cases
from schemas.labels import IDENTITY_ATTACK, INSULT, SELF_HARM, SEXUAL_HARASSMENT, THREAT
from toxicity.base import TextScorer
from toxicity.loading import load_scorer

MODEL_LABELS = frozenset({INSULT, THREAT, SELF_HARM, IDENTITY_ATTACK, SEXUAL_HARASSMENT})


FLAGGED = frozenset({"MEDIUM", "HIGH"})


def load(model_dir: Path | None) -> TextScorer:
    settings = load_settings()
    if model_dir is None:
        return load_scorer(settings.model)
    return load_scorer(settings.model.model_copy(update={"path": model_dir}))


def generated_chat(scorer: TextScorer, lines: int, seed: int = 1234) -> dict[str, Any]:
    items = list(iter_generated(seed=seed, count=lines))
    texts = sorted({item.message["text"] for item in items})
    flagged = {
        text: score.severity.value in FLAGGED
        for text, score in zip(texts, scorer.score(texts), strict=True)
    }
    caught = toxic = benign_flagged = replies = replies_flagged = 0
    kinds: Counter[str] = Counter()
    for item in items:
        text = item.message["text"]
        if item.toxic:
            toxic += 1
            caught += flagged[text]
            continue
        benign_flagged += flagged[text]
        replies += text.startswith("@")
        replies_flagged += text.startswith("@") and flagged[text]
        if flagged[text]:
            kinds[item.kind] += 1
    benign = len(items) - toxic
    return {
        "toxic_caught": caught / max(1, toxic),
        "benign_flagged": benign_flagged / max(1, benign),
        "replies_flagged": replies_flagged / max(1, replies),
        "counts": f"{caught}/{toxic} toxic, {benign_flagged}/{benign} benign, "
        f"{replies_flagged}/{replies} benign replies",
        "benign_flagged_kinds": dict(kinds.most_common(6)),
    }


def label_quality(scorer: TextScorer) -> dict[str, float]:
    cases = [case for case in load_cases("test") if case.harmful]
    right = wrong = missed = 0
    for case, score in zip(cases, scorer.score([c.text for c in cases]), strict=True):
        given, wanted = set(score.labels) & MODEL_LABELS, set(case.labels) & MODEL_LABELS
        right += len(given & wanted)
        wrong += len(given - wanted)
        missed += len(wanted - given)
    return {
        "lines": len(cases),
        "precision": right / max(1, right + wrong),
        "recall": right / max(1, right + missed),
        "wrong_per_line": wrong / max(1, len(cases)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    for model_dir in args.models or [None]:
        scorer = load(model_dir)
        g = generated_chat(scorer, args.lines)
        q = label_quality(scorer)
        print(  # noqa: T201 - a benchmark's report
            f"{scorer.version}\n"
            f"  generated chat: toxic caught {g['toxic_caught']:.1%}, benign flagged "
            f"{g['benign_flagged']:.2%}, benign replies flagged {g['replies_flagged']:.1%} "
            f"({g['counts']}); benign flagged by kind {g['benign_flagged_kinds']}\n"
            f"  labels on chat test's {q['lines']:.0f} harmful lines: precision "
            f"{q['precision']:.2f}, recall {q['recall']:.2f}, {q['wrong_per_line']:.2f} wrong "
            "labels a line"
        )


if __name__ == "__main__":
    main()

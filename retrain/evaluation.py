"""``warden evaluate``: our model and the two public comparison models on HateXplain dev and test,
and on the chat-domain evaluation set per functional category.

Every model gets one decision threshold chosen on HateXplain dev and applied unchanged to test:
ours uses the one stored with it; each comparison model gets its own F1-best dev threshold.

The chat-domain table (``retrain.chatset``) grades each line as the pipeline does: flagged when its
severity reaches the flag severity (``WARDEN_SCORER__FLAG_SEVERITY``, MEDIUM by default). Benign
categories report the share wrongly flagged, harmful ones the share caught; the test split is the
one no training, calibration or threshold ever saw. A livestream replay (JSONL chat messages, the
bundled sample stream by default) adds the flag rate of its emote- and reaction-only lines.
Results go into ``model.json`` (``metrics.evaluation``) and the model card's tables, and the
per-line results on the reserved sets into ``reserved_scores.npz`` (``retrain.gating``: what a
promotion compares).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrain.classification_metrics import best_f1_threshold, binary_metrics
from retrain.datasets import dedupe, hatexplain_path, read_hatexplain
from retrain.embeddings import EmbeddingCache, cache_folder
from retrain.gating import save_reserved, texts_sha
from schemas.events import Severity
from schemas.rules import is_flagged
from toxicity.artifacts import METADATA_FILE, load_meta
from toxicity.encoder import encoder_build_of
from toxicity.hybrid import HybridScorer

if TYPE_CHECKING:
    from core.settings import ModelSettings

logger = logging.getLogger(__name__)

DATASETS = ("dev", "test")
SAMPLE_REPLAY = Path(__file__).resolve().parent.parent / "ingest" / "samples" / "livestream.jsonl"


def chat_evaluation(
    scorer: HybridScorer,
    cache_dir: Path,
    flag_severity: Severity,
    keep: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Per split and category of the chat set: lines, flagged, and the rate that matters.
    ``keep`` receives the test split's per-line results (``chat_test``, for promotion gating)."""
    from retrain.chatset import CATEGORIES, load_cases

    out: dict[str, Any] = {"flag_severity": flag_severity.value, "splits": {}}
    for split in DATASETS:
        cases = load_cases(split)
        p = our_probabilities(scorer, [case.text for case in cases], cache_dir)
        flagged = [is_flagged(scorer.thresholds.severity(float(v)), flag_severity) for v in p]
        if keep is not None and split == "test":
            keep["chat_test"] = {
                "sha": np.array(texts_sha([case.text for case in cases])),
                "p": np.asarray(p, dtype=np.float32),
                "flagged": np.array(flagged, dtype=bool),
                "harmful": np.array([case.harmful for case in cases], dtype=bool),
            }
        rows = []
        for category, spec in CATEGORIES.items():
            hits = [f for case, f in zip(cases, flagged, strict=True) if case.category == category]
            if not hits:
                continue
            rows.append(
                {
                    "category": category,
                    "harmful": spec.harmful,
                    "n": len(hits),
                    "flagged": sum(hits),
                    "rate": sum(hits) / len(hits),
                }
            )
        benign = [f for case, f in zip(cases, flagged, strict=True) if not case.harmful]
        harmful = [f for case, f in zip(cases, flagged, strict=True) if case.harmful]
        y = np.array([int(case.harmful) for case in cases])
        out["splits"][split] = {
            "rows": rows,
            "benign_flagged": sum(benign) / max(1, len(benign)),
            "harmful_caught": sum(harmful) / max(1, len(harmful)),
            "n_benign": len(benign),
            "n_harmful": len(harmful),
            "roc_auc": binary_metrics(y, p, scorer.meta.decision_threshold)["roc_auc"]
            if len(set(y.tolist())) == 2
            else None,
        }
    return out


def replay_texts(paths: Sequence[Path]) -> list[str]:
    """The ``text`` of every JSON line in ``paths`` (chat messages as ``warden ingest replay``
    reads them)."""
    texts = []
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    texts.append(str(json.loads(line).get("text", "")))
    return texts


def replay_evaluation(
    scorer: HybridScorer, texts: Sequence[str], cache_dir: Path, flag_severity: Severity
) -> dict[str, Any]:
    """Flag rate of a replay's lines overall and of its emote- and reaction-only lines."""
    from toxicity.emotes import emote_shape

    distinct = sorted(set(texts))
    p = dict(zip(distinct, our_probabilities(scorer, distinct, cache_dir), strict=True))
    flagged = {
        t: is_flagged(scorer.thresholds.severity(float(v)), flag_severity) for t, v in p.items()
    }
    emote_lines = [t for t in texts if emote_shape(t).only_emotes_or_reactions]
    return {
        "lines": len(texts),
        "flagged": sum(flagged[t] for t in texts) / max(1, len(texts)),
        "emote_or_reaction_lines": len(emote_lines),
        "emote_or_reaction_flagged": sum(flagged[t] for t in emote_lines)
        / max(1, len(emote_lines)),
        "emote_or_reaction_flagged_examples": sorted({t for t in emote_lines if flagged[t]})[:10],
    }


def _load_hatexplain(
    cache_dir: Path, hatexplain_dir: Path | None
) -> dict[str, tuple[list[str], np.ndarray]]:
    seen: set[str] = set()
    out = {}
    # Same order as training's dedupe (test first), so the rows are the ones training held out.
    for split in ("test", "dev"):
        path = (
            hatexplain_dir / f"hatexplain_{split}.csv"
            if hatexplain_dir is not None
            else hatexplain_path(cache_dir, split)
        )
        examples = dedupe(read_hatexplain(path, split), seen)
        out[split] = ([e.text for e in examples], np.array([e.label for e in examples]))
    return out


def our_probabilities(
    scorer: HybridScorer, texts: list[str], cache_dir: Path, *, rules: bool = True
) -> np.ndarray:
    """P(toxic) through the scorer's own steps, reusing cached embeddings when the scorer's
    encoder is the one they were computed with. ``rules=False``: the calibrated model alone,
    without the hard-slur rule."""
    cache = EmbeddingCache(cache_folder(cache_dir, scorer.encoder))
    embeddings = cache.embed(texts, scorer.encoder)
    side = scorer.text_side(texts, embeddings)
    if not rules:
        return np.asarray(scorer.meta.calibrator(scorer.raw_probability(side, None)))
    return np.array([score.p_toxic for score in scorer.combine(side)])


def evaluate(
    model_dir: Path,
    cache_dir: Path,
    *,
    baselines: bool = True,
    hatexplain_dir: Path | None = None,
    model_settings: ModelSettings | None = None,
    flag_severity: Severity = Severity.MEDIUM,
    replays: Sequence[Path] = (SAMPLE_REPLAY,),
    chat: bool = True,
    echo: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Run the comparison, store it with the model, rewrite the card; returns the results."""
    import torch

    from retrain.card import model_card

    torch.set_num_threads(2)
    data = _load_hatexplain(cache_dir, hatexplain_dir)
    scorer = HybridScorer.load(model_dir, model_settings, cache_dir=cache_dir)
    meta = scorer.meta
    models: dict[str, Callable[[list[str]], np.ndarray]] = {
        f"ChatWarden {meta.version}": lambda texts: our_probabilities(scorer, texts, cache_dir),
        "ChatWarden, model alone (no hard-slur rule)": lambda texts: our_probabilities(
            scorer, texts, cache_dir, rules=False
        ),
    }
    if baselines:
        from retrain.baselines import AltProfanityCheck, JigsawBiLSTM

        apc = AltProfanityCheck(cache_dir)
        bilstm = JigsawBiLSTM(cache_dir)
        models[apc.name] = apc.predict
        models[bilstm.name] = bilstm.predict
    rows = []
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    reserved: dict[str, dict[str, np.ndarray]] = {}
    for name, predict in models.items():
        echo(f"scoring HateXplain dev and test with {name}")
        p_dev = predict(data["dev"][0])
        p_test = predict(data["test"][0])
        if not reserved:  # the first is the full scorer: what promotion gating compares
            reserved["hatexplain_test"] = {
                "sha": np.array(texts_sha(data["test"][0])),
                "p": np.asarray(p_test, dtype=np.float32),
                "y": np.asarray(data["test"][1], dtype=np.int8),
            }
        ours = name.startswith("ChatWarden")  # both of our rows use the stored threshold
        threshold = meta.decision_threshold if ours else best_f1_threshold(data["dev"][1], p_dev)
        by_model[name] = {}
        for split, p in (("dev", p_dev), ("test", p_test)):
            m = binary_metrics(data[split][1], p, threshold)
            by_model[name][split] = m
            rows.append({"model": name, "data": f"HateXplain {split}", **_row(m)})
    ours_name = next(iter(models))
    margins = [
        {
            "baseline": name,
            "data": "HateXplain test",
            "roc_auc": by_model[ours_name]["test"]["roc_auc"] - by_model[name]["test"]["roc_auc"],
            "f1": by_model[ours_name]["test"]["f1"] - by_model[name]["test"]["f1"],
        }
        for name in models
        if not name.startswith("ChatWarden")
    ]
    evaluation: dict[str, Any] = {
        "rows": rows,
        "margins": margins,
        "n": {k: len(v[0]) for k, v in data.items()},
    }
    build = encoder_build_of(scorer.encoder)
    if build:  # which int8 file these scores came from (the model's own, or not: the card says)
        evaluation["encoder_build"] = build
    if chat:
        echo("scoring the chat-domain set")
        evaluation["chat"] = chat_evaluation(scorer, cache_dir, flag_severity, reserved)
    if replays:
        echo(f"scoring the replay {', '.join(path.name for path in replays)}")
        evaluation["replay"] = replay_evaluation(
            scorer, replay_texts(replays), cache_dir, flag_severity
        )
    meta.metrics["evaluation"] = evaluation
    save_reserved(model_dir, reserved)
    raw = json.loads((model_dir / METADATA_FILE).read_text())
    raw["metrics"] = meta.metrics
    (model_dir / METADATA_FILE).write_text(json.dumps(raw, indent=2) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(model_card(load_meta(model_dir)))
    return evaluation


def _row(m: dict[str, Any]) -> dict[str, Any]:
    return {key: m[key] for key in ("roc_auc", "pr_auc", "f1", "precision", "recall", "threshold")}

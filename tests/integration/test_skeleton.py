"""The walking skeleton on the real stack: replay -> scorer -> verdicts -> actioner -> actions."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import psycopg
from aiokafka import AIOKafkaProducer
from kit import REPO, Service, consume, service_env, settled_actions

from actioners.policy.presets import PRESET_VERSION
from core.settings import Settings
from core.topic_admin import topic_size
from schemas.events import ChatMessage, Verdict
from schemas.export import JSON_DIR
from schemas.topics import ACTIONS, CHAT_MESSAGES, DEADLETTER, VERDICTS

SAMPLE = REPO / "ingest" / "samples" / "livestream.jsonl"


def sample_messages(count: int, prefix: str) -> list[ChatMessage]:
    """The first ``count`` lines of the bundled sample, with ids unique to this test."""
    lines = SAMPLE.read_text().splitlines()[:count]
    messages = []
    for line in lines:
        record = json.loads(line)
        record["message_id"] = prefix + record["message_id"]
        messages.append(ChatMessage.model_validate(record))
    return messages


def audit_rows(settings: Settings, prefix: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        rows = conn.execute(
            "SELECT action_id, message_id, status FROM action_audit WHERE message_id LIKE %s",
            (prefix + "%",),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def test_every_message_gets_a_verdict_and_flagged_ones_an_action(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Callable[..., Service]
) -> None:
    suffix = settings.kafka.topic_suffix
    prefix = f"sk{suffix}-"
    messages = sample_messages(300, prefix)
    scorer: Service = service_factory("scorer")
    actioner: Service = service_factory("actioner")

    source = CHAT_MESSAGES.name_for(suffix)
    for i, message in enumerate(messages):
        await producer.send(source, message.to_json_bytes(), key=message.key.encode())
        if i == 100:
            # Garbage in the middle of the stream: neither JSON nor a ChatMessage.
            await producer.send(source, b'{"message_id": "broken', key=b"x")
            await producer.send(source, b'{"message_id": "m-no-text", "platform": "twitch"}')
    await producer.flush()

    verdicts = await consume(
        settings, VERDICTS.name_for(suffix), count=len(messages), services=[scorer]
    )
    by_id = {v["message_id"]: v for v in verdicts}
    assert set(by_id) == {m.message_id for m in messages}

    schema = json.loads((JSON_DIR / "Verdict.v1.json").read_text())
    # One validator for every record (jsonschema.validate checks the schema itself on each
    # call: 50 ms apiece, half a minute for 600 records).
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for verdict in verdicts:
        validator.validate(verdict)
        Verdict.model_validate(verdict)

    # Any Kafka client reads them: kcat, as a data team would.
    kcat = await asyncio.create_subprocess_exec(
        *("kcat", "-b", settings.kafka.bootstrap_servers, "-C", "-e", "-q"),
        *("-t", VERDICTS.name_for(suffix)),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(kcat.communicate(), timeout=60)
    lines = out.decode().splitlines()
    assert len(lines) == len(messages)
    for line in lines:
        validator.validate(json.loads(line))

    dead = await consume(settings, DEADLETTER.name_for(suffix), count=2, services=[scorer])
    assert len(dead) == 2
    assert {d["source_topic"] for d in dead} == {source}
    assert all(d["error"] and d["offset"] is not None and d["service"] == "scorer" for d in dead)
    assert any('"broken' in d["raw"] for d in dead)

    flagged = {v["message_id"] for v in verdicts if v["flagged"]}
    assert flagged, "the sample stream has toxic lines; some must be flagged"
    assert len(flagged) < len(messages) / 2, "most livestream chat is fine"
    # The default policy (the balanced preset): a flagged message is deleted and its author gets
    # the strike ladder's next step (warn, timeout, ...), unless its labels say the preset does
    # not act on them (profanity alone): at most two actions per flagged message, none for
    # the rest.
    # How many actions there are depends on the labels: wait until the actioner has settled
    # every verdict, then read exactly what it decided (and check below nothing is missing).
    decided = await settled_actions(settings, actioner, message_prefix=prefix)
    actions = await consume(settings, ACTIONS.name_for(suffix), count=decided, services=[actioner])
    assert len(actions) == decided
    acted = {a["message_id"] for a in actions}
    assert acted and acted <= flagged
    deletes = [a["message_id"] for a in actions if a["kind"] == "delete"]
    ladder = [a["message_id"] for a in actions if a["kind"] != "delete"]
    assert len(deletes) == len(set(deletes)) and len(ladder) == len(set(ladder))
    assert set(ladder) <= set(deletes) == acted
    assert len(acted) >= len(flagged) / 2, "most flagged lines in the sample are acted on"
    # Done, except for staff: the preset exempts moderators and VIPs (recorded as skipped).
    assert {a["policy_version"] for a in actions} == {f"preset:balanced@{PRESET_VERSION}"}
    assert {a["status"] for a in actions} <= {"done", "skipped"}
    assert "done" in {a["status"] for a in actions}
    assert all("exempt role" in a["detail"] for a in actions if a["status"] == "skipped")

    rows = audit_rows(settings, prefix)
    assert {r[1] for r in rows} == acted
    assert len(rows) == len(actions)
    assert scorer.alive() and actioner.alive()


async def test_a_verdict_delivered_twice_is_acted_on_once(
    settings: Settings, producer: AIOKafkaProducer, service_factory: Callable[..., Service]
) -> None:
    suffix = settings.kafka.topic_suffix
    prefix = f"dup{suffix}-"
    golden = json.loads((REPO / "tests" / "golden" / "verdict.v1.json").read_text())
    verdicts = [
        # An insult graded by the model: flagged ones are acted on, the others are not.
        Verdict.model_validate(
            {
                **golden,
                "message_id": f"{prefix}{i}",
                "flagged": i % 2 == 0,
                "model_flagged": i % 2 == 0,
                "labels": ["insult"],
                "reasons": {},
            }
        )
        for i in range(20)
    ]
    topic = VERDICTS.name_for(suffix)
    for _ in range(2):  # the same verdicts twice, as after a scorer restart
        for verdict in verdicts:
            await producer.send(topic, verdict.to_json_bytes(), key=verdict.key.encode())
    await producer.send(topic, b"not a verdict")
    await producer.flush()
    actioner = service_factory("actioner")

    dead = await consume(settings, DEADLETTER.name_for(suffix), count=1, services=[actioner])
    assert dead[0]["service"] == "actioner"
    # Ten flagged verdicts, each: delete + the author's strike-ladder step.
    actions = await consume(settings, ACTIONS.name_for(suffix), count=20, services=[actioner])
    assert len(actions) == 20
    assert {a["message_id"] for a in actions if a["kind"] == "delete"} == {
        v.message_id for v in verdicts if v.flagged
    }
    # Let the actioner catch up on everything, then check nothing more was produced.
    actioner.stop()
    assert await topic_size(settings.kafka, ACTIONS) == 20
    assert len(audit_rows(settings, prefix)) == 20


async def test_replay_publishes_valid_lines_and_dead_letters_the_rest(
    settings: Settings, tmp_path: Path
) -> None:
    suffix = settings.kafka.topic_suffix
    lines = SAMPLE.read_text().splitlines()[:50]
    log = tmp_path / "chat.jsonl"
    log.write_text("\n".join([*lines[:25], "{not json", '{"text": "no ids"}', *lines[25:]]) + "\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "warden", "ingest", "replay", str(log), "--speed", "0"),
        env=service_env(settings),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(process.communicate(), timeout=120))[0].decode()
    assert process.returncode == 0, output
    assert "replayed 50 messages (2 rejected)" in output
    assert await topic_size(settings.kafka, CHAT_MESSAGES) == 50
    dead = await consume(settings, DEADLETTER.name_for(suffix), count=2)
    assert sorted(d["source_topic"] for d in dead) == [
        "replay:chat.jsonl:26",
        "replay:chat.jsonl:27",
    ]

"""The loop, measured: one retrain from reviewed feedback, judged on held-out feedback.

``python -m benchmarks.feedback_loop [--count N] [--seed S] [--spot-checks 0.03]``

1. Generated livestream chat (``devkit.chatgen``, which knows which lines are toxic) goes
   through a real scorer on the local stack, on topics of a suffix of its own, so every verdict
   carries the context features the scorer read from Redis, as in production.
2. Moderators' reviews are simulated the way a review queue produces them: every flagged line
   is reviewed, plus a random share of unflagged ones (spot checks), each labelled with the
   generator's ground truth, published on the feedback topic.
3. ``retrain`` (``warden retrain``) trains a candidate from the base data plus those reviews,
   evaluates it on the reserved sets and on the held-out 20 % of the reviewed texts next to the
   active model, and registers it (in a registry of its own name: nothing is promoted).

The result goes to ``benchmarks/results/feedback_loop.json``. The generator was written by this
project, like the chat training data, so this measures the mechanism on in-domain synthetic
chat, not on a real community.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.clients import kafka_consumer, kafka_producer
from core.net import free_port
from core.settings import Settings, get_settings
from core.topic_admin import create_topics
from devkit.chatgen import iter_generated
from devkit.processes import ServiceProcess, stop_all, wait_ready
from schemas.events import ChatMessage, Feedback, FeedbackKind
from schemas.topics import CHAT_MESSAGES, FEEDBACK, VERDICTS


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


RESULTS = Path(__file__).resolve().parent / "results" / "feedback_loop.json"


async def score_through_the_pipeline(
    settings: Settings, messages: list[ChatMessage]
) -> list[dict[str, Any]]:
    suffix = settings.kafka.topic_suffix
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    port = free_port()
    env.update(
        {
            "WARDEN_KAFKA__TOPIC_SUFFIX": suffix,
            "WARDEN_MODEL__FOLLOW_REGISTRY": "false",
            "WARDEN_METRICS__SCORER_PORT": str(port),
        }
    )
    log = settings.stack.dir / "logs" / "feedback-loop-scorer.log"
    scorer = ServiceProcess.spawn("scorer", env=env, log=log, metrics_port=port, new_session=True)
    try:
        await wait_ready([scorer], 180)
        producer = kafka_producer(settings.kafka)
        await producer.start()
        try:
            for message in messages:
                await producer.send(
                    CHAT_MESSAGES.name_for(suffix),
                    message.to_json_bytes(),
                    key=message.key.encode(),
                )
            await producer.flush()
        finally:
            await producer.stop()
        consumer = kafka_consumer(settings.kafka, VERDICTS.name_for(suffix), group_id=None)
        await consumer.start()
        verdicts: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 600
        try:
            while len(verdicts) < len(messages) and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in batch:
                        verdict = json.loads(record.value or b"{}")
                        verdicts[verdict["message_id"]] = verdict
                scorer.check_alive()
        finally:
            await consumer.stop()
        return list(verdicts.values())
    finally:
        stop_all([scorer])


async def publish_reviews(
    settings: Settings,
    verdicts: list[dict[str, Any]],
    truth: dict[str, bool],
    spot_checks: float,
    seed: int,
) -> dict[str, int]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    producer = kafka_producer(settings.kafka)
    await producer.start()
    counts = {"flagged_reviewed": 0, "spot_checked": 0}
    try:
        for verdict in verdicts:
            if verdict["flagged"]:
                counts["flagged_reviewed"] += 1
            elif rng.random() < spot_checks:
                counts["spot_checked"] += 1
            else:
                continue
            review = Feedback(
                feedback_id=f"sim-{verdict['message_id']}",
                kind=FeedbackKind.REVIEW,
                message_id=verdict["message_id"],
                platform=verdict["platform"],
                community=verdict["community"],
                user="simulated-moderator",
                label_toxic=truth[verdict["message_id"]],
                created_at=datetime.now(UTC),
                source="review",
            )
            await producer.send(
                FEEDBACK.name_for(settings.kafka.topic_suffix), review.to_json_bytes()
            )
        await producer.flush()
    finally:
        await producer.stop()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--spot-checks", type=float, default=0.03)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from retrain.retraining import retrain

    run = uuid.uuid4().hex[:8]
    base = get_settings()
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topic_suffix": f".loop{run}"}),
            "model": base.model.model_copy(update={"registry": f"loop-{run}"}),
        }
    )
    asyncio.run(create_topics(settings.kafka, settings.kafka.topic_suffix))
    community = f"loop{run}"
    items = list(iter_generated(args.seed, args.count, community=community))
    messages = [ChatMessage.model_validate(item.message) for item in items]
    truth = {m.message_id: item.toxic for m, item in zip(messages, items, strict=True)}
    started = time.monotonic()
    verdicts = asyncio.run(score_through_the_pipeline(settings, messages))
    scored_s = time.monotonic() - started
    counts = asyncio.run(publish_reviews(settings, verdicts, truth, args.spot_checks, args.seed))
    say(f"{len(verdicts)} verdicts in {scored_s:.0f}s; reviews: {counts}")
    done = retrain(settings, echo=say)
    summary = {
        "count": args.count,
        "seed": args.seed,
        "spot_checks": args.spot_checks,
        "verdicts": len(verdicts),
        "toxic_share": sum(truth.values()) / len(truth),
        "reviews": counts,
        "feedback": dict(done.data.stats),
        "candidate": done.record.version,
        "parent": done.record.parent,
        "holdout": done.holdout,
        "candidate_reserved": done.record.metrics,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    say(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()

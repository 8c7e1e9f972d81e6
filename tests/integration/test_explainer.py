"""The explainer on the real broker: a flagged verdict gets an Explanation on
moderation.explanations.v1 (keyed by message id), a SAFE one gets none until it is disputed,
and a record that is not a verdict goes to the dead-letter topic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from kit import Service, consume

from core.net import free_port
from core.settings import Settings
from core.topic_admin import topic_size
from schemas.events import Feedback, FeedbackKind, Platform, Severity, Verdict
from schemas.topics import DEADLETTER, EXPLANATIONS, FEEDBACK, VERDICTS


def verdict(message_id: str, text: str, severity: Severity, p_toxic: float) -> Verdict:
    now = datetime.now(UTC)
    return Verdict(
        message_id=message_id,
        platform=Platform.TWITCH,
        community="streamer",
        channel="streamer",
        user="viewer1",  # one user: one partition, so the records arrive in this order
        text=text,
        p_toxic=p_toxic,
        severity=severity,
        flagged=severity is not Severity.SAFE,
        labels=["threat"] if severity is Severity.HIGH else [],
        model_version="hybrid-minilm-xgb-82f3311fbb",
        features={"user_bad_ratio_7d": 0.5, "violation_count_7d": 2.0},
        sent_at=now,
        received_at=now,
        scored_at=now,
    )


async def test_flagged_verdicts_are_explained_safe_ones_only_when_disputed(
    settings: Settings,
    service_factory: Callable[..., Service],
    producer: AIOKafkaProducer,
) -> None:
    port = free_port()
    explainer = service_factory(
        "explainer",
        WARDEN_METRICS__EXPLAINER_PORT=str(port),
        WARDEN_EXPLAINER__SAMPLES="40",
    )
    explainer.metrics_port = port
    await explainer.wait_ready(120)

    suffix = settings.kafka.topic_suffix
    verdicts = VERDICTS.name_for(suffix)
    safe = verdict("safe-1", "gg wp that was a great round", Severity.SAFE, 0.01)
    flagged = verdict("high-1", "i hope you die in a fire tonight", Severity.HIGH, 0.97)
    for item in (safe, flagged):
        await producer.send_and_wait(verdicts, item.to_json_bytes(), key=item.key.encode())
    await producer.send_and_wait(verdicts, b"{not a verdict", key=safe.key.encode())

    (explanation,) = await consume(
        settings, EXPLANATIONS.name_for(suffix), count=1, timeout_s=60, services=[explainer]
    )
    assert explanation["message_id"] == "high-1"
    assert explanation["on_demand"] is False
    assert explanation["severity"] == "HIGH" and explanation["platform"] == "twitch"
    assert explanation["samples"] == 40
    # LIME with 40 samples is noisy: the threat's word is among the two heaviest ("you", the
    # one it is aimed at, may outweigh it in a draw).
    heaviest = sorted(explanation["weights"], key=lambda w: -w["weight"])[:2]
    assert "die" in {w["token"] for w in heaviest}
    assert "user_bad_ratio_7d" in explanation["reasons"]
    assert explanation["verdict_scored_at"] is not None
    (letter,) = await consume(
        settings, DEADLETTER.name_for(suffix), count=1, timeout_s=30, services=[explainer]
    )
    assert letter["service"] == "explainer" and letter["source_topic"] == verdicts
    # The SAFE verdict came before the flagged one on the same partition: it was passed over.
    assert await topic_size(settings.kafka, EXPLANATIONS) == 1

    dispute = Feedback(
        feedback_id="d-1",
        kind=FeedbackKind.DISPUTE,
        message_id="safe-1",
        platform=Platform.TWITCH,
        community="streamer",
        user="viewer1",
        created_at=datetime.now(UTC),
    )
    await producer.send_and_wait(FEEDBACK.name_for(suffix), dispute.to_json_bytes(), key=b"safe-1")
    records = await consume(
        settings, EXPLANATIONS.name_for(suffix), count=2, timeout_s=60, services=[explainer]
    )
    on_demand = [r for r in records if r["message_id"] == "safe-1"]
    assert len(on_demand) == 1 and on_demand[0]["on_demand"] is True
    assert on_demand[0]["severity"] == "SAFE"

    page = explainer.metrics()
    assert 'warden_explanations_total{on_demand="false",severity="HIGH"} 1.0' in page
    assert 'warden_explanations_total{on_demand="true",severity="SAFE"} 1.0' in page
    assert "warden_explanation_latency_seconds_count 2.0" in page
    assert explainer.stop() == 0

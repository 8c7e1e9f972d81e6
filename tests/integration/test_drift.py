"""The drift monitor on the real broker: two communities pin their first verdicts as references;
one goes on as before, the other changes (more toxic, longer, louder lines). Only the changed
one gets a DriftEvent on moderation.drift.v1, an HTML report and warden_drift_detected 1; then
`warden drift report` and `warden drift pin` work on the same topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from driftkit import START, verdicts
from kit import Service, consume, run_warden
from prometheus_client.parser import text_string_to_metric_families

from core.net import free_port
from core.settings import Settings
from core.topic_admin import topic_size
from retrain.drift import ReferenceStore
from schemas.events import DriftEvent
from schemas.topics import DRIFT, VERDICTS

ROWS = 300
# The second half of each stream is scored an hour after the first (the commands order the
# verdicts they read by scored_at).
LATER = START + timedelta(hours=1)
DRIFT_ENV = {
    "WARDEN_DRIFT__WINDOW_ROWS": str(ROWS),
    "WARDEN_DRIFT__REFERENCE_ROWS": str(ROWS),
    "WARDEN_DRIFT__MIN_ROWS": str(ROWS),
    "WARDEN_DRIFT__CHECK_EVERY_S": "1",
}


def sample(page: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(page):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return item.value
    return None


async def wait_for(monitor: Service, name: str, value: float, timeout_s: float, **labels: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        monitor.check_alive()
        if sample(monitor.metrics(), name, **labels) == value:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name}{labels} never reached {value}:\n{monitor.log_tail()}")


async def publish(producer: AIOKafkaProducer, topic: str, items: list) -> None:
    sent = [await producer.send(topic, v.to_json_bytes(), key=v.key.encode()) for v in items]
    await asyncio.gather(*sent)


def warden(settings: Settings, drift_dir: Path, *args: str) -> str:
    done = run_warden(settings, "drift", *args, WARDEN_DRIFT__DIR=str(drift_dir), **DRIFT_ENV)
    assert done.returncode == 0, done.stderr
    return done.stdout


def report_then_pin(settings: Settings, drift_dir: Path) -> None:
    out = warden(settings, drift_dir, "report", "--community", "changed")
    assert "twitch:changed: DRIFT" in out, out
    path = Path(out.split("report: ", 1)[1].strip())
    assert path.is_file() and path.parent == drift_dir / "reports"
    out = warden(settings, drift_dir, "pin", "--community", "twitch:changed")
    assert f"twitch:changed: pinned {ROWS} verdicts" in out, out
    reference = ReferenceStore(drift_dir / "references").load("twitch:changed")
    assert reference is not None and reference.source == "warden drift pin"
    index = reference.sample.columns.index("p_toxic")
    mean = sum(float(row[index]) for row in reference.sample.rows) / ROWS
    assert mean > 0.3  # the changed chat is the reference now


async def test_a_shifted_stream_drifts_and_an_unshifted_one_does_not(
    settings: Settings,
    service_factory: Callable[..., Service],
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    port = free_port()
    drift_dir = tmp_path / "drift"
    monitor = service_factory(
        "drift",
        "run",
        WARDEN_METRICS__DRIFT_PORT=str(port),
        WARDEN_DRIFT__DIR=str(drift_dir),
        **DRIFT_ENV,
    )
    monitor.metrics_port = port
    await monitor.wait_ready(120)

    suffix = settings.kafka.topic_suffix
    topic = VERDICTS.name_for(suffix)
    # The references: each community's first ROWS verdicts, ordinary chat for both.
    await publish(producer, topic, verdicts("calm", ROWS) + verdicts("changed", ROWS))
    await wait_for(monitor, "warden_drift_communities", 2.0, 60, state="pinned")
    await publish(
        producer,
        topic,
        verdicts("calm", ROWS, seed=1, start=LATER)
        + verdicts("changed", ROWS, seed=1, shifted=True, start=LATER),
    )

    (record,) = await consume(
        settings, DRIFT.name_for(suffix), count=1, timeout_s=60, services=[monitor]
    )
    event = DriftEvent.model_validate(record)
    assert event.community == "changed" and event.platform.value == "twitch"
    assert {"p_toxic", "text_length", "flagged"} <= set(event.drifted)
    assert event.flag_rate > event.reference_flag_rate + 0.2
    assert event.rows == ROWS and event.reference_rows == ROWS
    assert event.report is not None and (drift_dir / "reports" / event.report).is_file()

    # Every verdict read, then two more checks: the calm community was tested on its whole
    # new window and did not drift; the changed one drifted once (the cooldown holds).
    await wait_for(
        monitor,
        "warden_messages_in_total",
        4.0 * ROWS,
        60,
        service="drift",
        topic=VERDICTS.name,
    )
    await asyncio.sleep(2.5)
    page = monitor.metrics()
    assert sample(page, "warden_drift_detected", community="twitch:changed") == 1.0
    assert sample(page, "warden_drift_detected", community="twitch:calm") == 0.0
    shift = sample(page, "warden_flag_rate_shift", community="twitch:changed")
    assert shift is not None and shift > 0.2
    calm_score = sample(page, "warden_drift_score", community="twitch:calm", feature="p_toxic")
    assert calm_score is not None and calm_score < 0.2
    assert sample(page, "warden_drift_events_total") == 1.0
    assert await topic_size(settings.kafka, DRIFT) == 1
    assert monitor.stop() == 0

    # The one-shot commands on the same topic: a report now, then a new reference.
    await asyncio.to_thread(report_then_pin, settings, drift_dir)

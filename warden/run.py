"""``warden run``: the whole pipeline on the local stack with the bundled sample stream.

Starts a scorer, an actioner, an explainer and the image scorer (unless WARDEN_IMAGES__ENABLED
is false; each its own process, as in production), waits
until all have joined their consumer groups, replays the sample chat through ingest's publisher
(this process serves its metrics on WARDEN_METRICS__INGEST_PORT, adapter ``replay``, as
``warden ingest replay`` would), and prints a live summary
read from the verdict, action and explanation topics: messages/s, flagged, actions, dead
letters, latency p50/p99. It ends with a final report when every replayed message has its
verdict (and, within the drain time, every verdict to explain its explanation), or on Ctrl-C,
and stops the services it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from core import metrics
from core.commandline import settings_from
from core.metrics import percentile
from core.settings import Settings
from devkit.processes import ServiceProcess, stop_all, wait_ready
from schemas.detection import DEFAULT_VERSION, DetectorThresholds
from schemas.events import Severity

SAMPLE = Path(__file__).resolve().parent.parent / "ingest" / "samples" / "livestream.jsonl"


@dataclass
class Tally:
    """What the monitor has seen of this run on the output topics."""

    prefix: str
    verdicts: int = 0
    flagged: int = 0
    actions: int = 0
    dead_letters: int = 0
    dead_letter_kinds: dict[str, int] = field(default_factory=dict)
    # Image verdicts (the image scorer's, for messages with pictures), counted apart.
    image_verdicts: int = 0
    image_flagged: int = 0
    severities: dict[str, int] = field(default_factory=dict)
    action_kinds: dict[str, int] = field(default_factory=dict)
    verdict_ms: list[float] = field(default_factory=list)
    action_ms: list[float] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    seen_images: set[str] = field(default_factory=set)
    # Explanations (of verdicts at or above explain_severity) and their latency after the verdict.
    explain_severity: str = "MEDIUM"
    explainable: int = 0
    explanations: int = 0
    explanation_ms: list[float] = field(default_factory=list)
    explained: set[str] = field(default_factory=set)

    def add_verdict(self, payload: dict[str, Any]) -> None:
        if not payload.get("message_id", "").startswith(self.prefix):
            return
        if payload.get("kind", "text") != "text":
            if payload["message_id"] not in self.seen_images:
                self.seen_images.add(payload["message_id"])
                self.image_verdicts += 1
                self.image_flagged += bool(payload["flagged"])
            return
        if payload["message_id"] in self.seen:  # at-least-once delivery: count each once
            return
        self.seen.add(payload["message_id"])
        self.verdicts += 1
        self.flagged += bool(payload["flagged"])
        self.severities[payload["severity"]] = self.severities.get(payload["severity"], 0) + 1
        if Severity(payload["severity"]).rank >= Severity(self.explain_severity).rank:
            self.explainable += 1
        received = datetime.fromisoformat(payload["received_at"])
        scored = datetime.fromisoformat(payload["scored_at"])
        self.verdict_ms.append((scored - received).total_seconds() * 1000)

    def add_action(self, payload: dict[str, Any]) -> None:
        if not payload.get("message_id", "").startswith(self.prefix):
            return
        self.actions += 1
        kind = f"{payload['kind']} {payload['status']}"
        self.action_kinds[kind] = self.action_kinds.get(kind, 0) + 1
        sent = datetime.fromisoformat(payload["sent_at"])
        completed = datetime.fromisoformat(payload["completed_at"])
        self.action_ms.append((completed - sent).total_seconds() * 1000)

    def add_explanation(self, payload: dict[str, Any]) -> None:
        message_id = payload.get("message_id", "")
        if not message_id.startswith(self.prefix) or message_id in self.explained:
            return
        self.explained.add(message_id)
        self.explanations += 1
        if payload.get("verdict_scored_at"):
            created = datetime.fromisoformat(payload["created_at"])
            scored = datetime.fromisoformat(payload["verdict_scored_at"])
            self.explanation_ms.append((created - scored).total_seconds() * 1000)


class Monitor:
    """Reads the verdict, action, dead-letter and explanation topics from their current end."""

    def __init__(self, settings: Settings, tally: Tally) -> None:
        from core.clients import kafka_consumer
        from schemas.topics import ACTIONS, DEADLETTER, EXPLANATIONS, VERDICTS

        suffix = settings.kafka.topic_suffix
        self.topics = {
            VERDICTS.name_for(suffix): tally.add_verdict,
            ACTIONS.name_for(suffix): tally.add_action,
            DEADLETTER.name_for(suffix): self._dead_letter,
            EXPLANATIONS.name_for(suffix): tally.add_explanation,
        }
        self.tally = tally
        self.consumer = kafka_consumer(
            settings.kafka, *self.topics, group_id=None, auto_offset_reset="latest"
        )

    def _dead_letter(self, payload: dict[str, Any]) -> None:
        self.tally.dead_letters += 1
        kind = str(payload.get("error_type") or "unknown")
        self.tally.dead_letter_kinds[kind] = self.tally.dead_letter_kinds.get(kind, 0) + 1

    async def start(self) -> None:
        await self.consumer.start()
        # Resolve the end offsets now, so that nothing published after start() is missed.
        for partition in self.consumer.assignment():
            await self.consumer.position(partition)

    async def poll(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=250, max_records=5000)
        for partition, records in batches.items():
            handler = self.topics[partition.topic]
            for record in records:
                if record.value is not None:
                    handler(json.loads(record.value))

    async def stop(self) -> None:
        await self.consumer.stop()


def summary_line(tally: Tally, published: int, elapsed: float) -> str:
    rate = tally.verdicts / elapsed if elapsed > 0 else 0.0
    return (
        f"[{elapsed:6.1f}s] in {published:5d}  verdicts {tally.verdicts:5d} ({rate:6.1f} msg/s)  "
        f"flagged {tally.flagged:4d}  actions {tally.actions:4d}  dead {tally.dead_letters:2d}  "
        f"latency p50 {percentile(tally.verdict_ms, 50):6.1f} ms  "
        f"p99 {percentile(tally.verdict_ms, 99):6.1f} ms"
    )


def final_report(tally: Tally, published: int, rejected: int, elapsed: float) -> str:
    severities = ", ".join(f"{k} {v}" for k, v in sorted(tally.severities.items()))
    lines = [
        "",
        "=== ChatWarden run report ===",
        f"messages replayed     {published} ({rejected} rejected to the dead-letter topic)",
        f"verdicts              {tally.verdicts} in {elapsed:.1f} s "
        f"({tally.verdicts / elapsed if elapsed else 0:.1f} msg/s)",
        f"severities            {severities}",
        f"flagged               {tally.flagged} "
        f"({100 * tally.flagged / max(tally.verdicts, 1):.1f}%)",
        f"actions               {tally.actions} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(tally.action_kinds.items()))})",
        f"image verdicts        {tally.image_verdicts} ({tally.image_flagged} flagged)",
        f"dead letters          {tally.dead_letters}"
        + (
            f" ({', '.join(f'{k} {v}' for k, v in sorted(tally.dead_letter_kinds.items()))};"
            " image_*: attachments the image scorer refused, docs/images.md)"
            if any(k.startswith("image_") for k in tally.dead_letter_kinds)
            else ""
        ),
        f"verdict latency       p50 {percentile(tally.verdict_ms, 50):.1f} ms, "
        f"p99 {percentile(tally.verdict_ms, 99):.1f} ms (received -> scored)",
        f"action latency        p50 {percentile(tally.action_ms, 50):.1f} ms, "
        f"p99 {percentile(tally.action_ms, 99):.1f} ms (sent -> action done)",
        f"explanations          {tally.explanations} of {tally.explainable} verdicts at "
        f"{tally.explain_severity} or above, p50 {percentile(tally.explanation_ms, 50) / 1000:.1f}"
        f" s, p99 {percentile(tally.explanation_ms, 99) / 1000:.1f} s (scored -> explained)",
    ]
    return "\n".join(lines)


def compressed(thresholds: DetectorThresholds, factor: float) -> DetectorThresholds:
    """Detector thresholds for a replay ``factor`` times faster than the log's own clock.

    A replay re-stamps each line with the time it is published, so at 30x a viewer's line every
    few seconds arrives several times a second: the time-window detectors would call ordinary
    chat a flood. The same rates hold in windows ``factor`` times shorter; a window cut below
    its minimum (1 s; 5 s for raids) keeps the rate by raising the count instead.
    """
    if factor <= 1:
        return thresholds

    def scaled(window_s: int, count: int, minimum: int = 1) -> tuple[int, int]:
        window = max(minimum, round(window_s / factor))
        return window, max(count, math.ceil(count * window * factor / window_s))

    flood_window, flood_messages = scaled(thresholds.flood_window_s, thresholds.flood_messages)
    spam_window, spam_repeats = scaled(thresholds.spam_window_s, thresholds.spam_repeats)
    raid_window, raid_accounts = scaled(
        thresholds.raid_window_s, thresholds.raid_min_accounts, minimum=5
    )
    return thresholds.model_copy(
        update={
            "flood_window_s": flood_window,
            "flood_messages": flood_messages,
            "spam_window_s": spam_window,
            "spam_repeats": spam_repeats,
            "split_window_s": max(1, round(thresholds.split_window_s / factor)),
            "raid_window_s": raid_window,
            "raid_min_accounts": raid_accounts,
        }
    )


def communities(path: Path) -> set[tuple[str, str]]:
    """The (platform, community) pairs of a JSONL chat log (lines that do not parse: none)."""
    found = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line)
                found.add((str(record["platform"]), str(record["community"])))
    return found


async def mirror_compressed(settings: Settings, path: Path, factor: float) -> list[tuple[str, str]]:
    """Give the log's communities the default detector thresholds ``compressed`` by ``factor``
    (written where the scorer reads them, as ``warden policy`` does); returns them."""
    from actioners.detectors import DetectorMirror
    from core.clients import redis_client

    pairs = sorted(communities(path)) if factor > 1 and path.suffix == ".jsonl" else []
    if not pairs:
        return []
    client = redis_client(settings.redis)
    try:
        mirror = DetectorMirror(client)
        for platform, community in pairs:
            await mirror.publish(
                platform,
                community,
                compressed(DetectorThresholds(), factor),
                f"{DEFAULT_VERSION}-compressed-x{factor:g}",
            )
    finally:
        await client.aclose()
    return pairs


async def unmirror(settings: Settings, pairs: list[tuple[str, str]]) -> None:
    from core.clients import redis_client
    from schemas.detection import policy_key

    if not pairs:
        return
    client = redis_client(settings.redis)
    try:
        await client.delete(*(policy_key(platform, community) for platform, community in pairs))
    finally:
        await client.aclose()


async def run_pipeline(settings: Settings, path: Path, speed: float, rate: float | None) -> int:
    from ingest.publisher import Publisher
    from ingest.replay import ReplayStats, replay

    log_dir = settings.stack.dir / "logs"
    # The replay is this run's ingest: its metrics where an ingest adapter's would be, so the
    # dashboards' Ingest row shows it (a busy port fails here, before anything starts).
    metrics.serve(settings.metrics.ingest_port, settings.metrics.host)
    metrics.initialise("ingest", settings.metrics.communities)
    env = dict(os.environ)
    # The sample communities run live, as if a moderator had run `warden policy go-live`: a
    # new community would otherwise start in first-day mode and act on nothing.
    env.setdefault("WARDEN_ACTIONER__FIRST_DAY", "off")
    ports = {
        "scorer": settings.metrics.scorer_port,
        "actioner": settings.metrics.actioner_port,
        "explainer": settings.metrics.explainer_port,
    }
    if settings.images.enabled:
        ports["images"] = settings.metrics.images_port
    services = [
        ServiceProcess.spawn(
            name,
            env=env,
            log=log_dir / f"{name}.log",
            append_log=True,
            new_session=True,
            metrics_port=port,
            host=settings.metrics.host,
        )
        for name, port in ports.items()
    ]
    # At ``--speed`` the log's clock runs that much faster (``--rate`` and speed 0: unknown).
    mirrored = await mirror_compressed(settings, path, speed if rate is None else 1.0)
    prefix = f"run{int(time.time())}-"
    tally = Tally(prefix, explain_severity=settings.explainer.min_severity)
    monitor = Monitor(settings, tally)
    stats = ReplayStats()
    started = time.monotonic()
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    loop.add_signal_handler(signal.SIGTERM, interrupted.set)
    try:
        click.echo(f"services starting (logs in {log_dir}) ...")
        await wait_ready(services, 180)
        await monitor.start()
        click.echo(f"replaying {path.name} at speed {speed if not rate else f'{rate} msg/s'}")
        started = time.monotonic()
        async with Publisher(settings.kafka, ingest=settings.ingest) as publisher:
            replay_task = asyncio.create_task(
                replay(publisher, path, speed=speed, rate=rate, id_prefix=prefix)
            )
            last_print = 0.0
            last_actions, last_action_at = 0, time.monotonic()
            drain_deadline: float | None = None
            while not interrupted.is_set():
                await monitor.poll()
                now = time.monotonic()
                if now - last_print >= 2.0:
                    click.echo(summary_line(tally, publisher.published, now - started))
                    last_print = now
                if tally.actions != last_actions:
                    last_actions, last_action_at = tally.actions, now
                if replay_task.done():
                    stats = replay_task.result()
                    drain_deadline = drain_deadline or now + 60
                    # A flagged message may get more than one action (delete, then warn or
                    # time out): done once every verdict is in and actions have settled. The
                    # policy may also act on fewer lines than were flagged (profanity alone,
                    # an emote line, a held one): then after 10 s without a new action.
                    quiet = 3.0 if tally.actions >= tally.flagged else 10.0
                    settled = now - last_action_at > quiet
                    # Explanations trail the verdicts (best-effort, shed under load): waited
                    # for while the drain deadline allows, never for more.
                    explained = tally.explanations >= tally.explainable
                    if tally.verdicts >= stats.published and settled and explained:
                        break
                    if tally.verdicts >= stats.published and settled and now > drain_deadline:
                        click.echo("explanations still queued after 60 s", err=True)
                        break
                    if now > drain_deadline:
                        click.echo("gave up waiting for the last verdicts after 60 s", err=True)
                        break
                for service in services:
                    service.check_alive()
            if not replay_task.done():
                replay_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replay_task
                stats.published = publisher.published
            stats.rejected = publisher.rejected
        click.echo(final_report(tally, stats.published, stats.rejected, time.monotonic() - started))
        return 0 if tally.verdicts >= stats.published else 1
    finally:
        await monitor.stop()
        stop_all(services)
        with contextlib.suppress(OSError, RuntimeError):
            await unmirror(settings, mirrored)


@click.command()
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=SAMPLE
)
@click.option(
    "--speed",
    type=float,
    default=30.0,
    show_default=True,
    help="Replay speed against the log's own clock; 0 = as fast as possible.",
)
@click.option("--rate", type=float, default=None, help="Fixed messages per second instead.")
@click.pass_context
def run(ctx: click.Context, path: Path, speed: float, rate: float | None) -> None:
    """Run scorer + actioner, replay a chat log through them, and report live."""
    settings = settings_from(ctx)
    code = asyncio.run(run_pipeline(settings, path, speed, rate))
    ctx.exit(code)

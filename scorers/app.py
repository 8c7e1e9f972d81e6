"""The scoring stream: chat.messages.v1 -> micro-batches -> moderation.verdicts.v1.

A faust app built explicitly from Settings (never from faust's own environment names). The
model runs in a worker thread so the event loop keeps consuming while a batch is scored; offsets
are acknowledged only after the batch's verdicts and dead letters are delivered.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
from faust.streams import Stream

from schemas.events import Severity
from schemas.topics import CHAT_MESSAGES, DEADLETTER, VERDICTS
from scorers.batch import SERVICE, BatchScorer, RawEvent
from toxicity.base import TextScorer
from warden import metrics
from warden.clients import group_id
from warden.settings import Settings


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    kafka = settings.kafka
    options: dict[str, Any] = {
        "broker": [f"kafka://{host}" for host in kafka.bootstrap_list],
    }
    if kafka.sasl_mechanism and kafka.sasl_password is not None:
        options["broker_credentials"] = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            mechanism=kafka.sasl_mechanism,
            ssl_context=ssl.create_default_context()
            if kafka.security_protocol == "SASL_SSL"
            else None,
        )
    elif kafka.security_protocol == "SSL":
        options["broker_credentials"] = faust.SSLCredentials(ssl.create_default_context())
    return options


def build_app(settings: Settings, model: TextScorer) -> faust.App:
    suffix = settings.kafka.topic_suffix
    app = faust.App(
        group_id(settings.kafka, SERVICE),
        **faust_broker_options(settings),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,
        topic_allow_declare=False,  # topics come from schemas.topics via `warden topics create`
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=settings.kafka.linger_ms,
        web_enabled=False,
    )
    source = app.topic(CHAT_MESSAGES.name_for(suffix), value_serializer="raw")
    verdicts = app.topic(VERDICTS.name_for(suffix), value_serializer="raw")
    dead_letters = app.topic(DEADLETTER.name_for(suffix), value_serializer="raw")
    scorer = BatchScorer(model, Severity(settings.scorer.flag_severity))
    # One thread: batches are scored in order, and the model is never entered twice at once.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    max_wait = settings.scorer.max_wait_ms / 1000

    async def handle(events: Sequence[faust.EventT]) -> None:
        started = time.perf_counter()
        raw = [
            RawEvent(
                value=e.value,
                key=e.key,
                topic=e.message.topic,
                partition=e.message.partition,
                offset=e.message.offset,
            )
            for e in events
        ]
        metrics.MESSAGES_IN.labels(SERVICE, source.get_topic_name()).inc(len(raw))
        outcome = await asyncio.get_running_loop().run_in_executor(executor, scorer.process, raw)
        pending = [
            await verdicts.send(key=v.key.encode(), value=v.to_json_bytes())
            for v in outcome.verdicts
        ]
        pending += [
            await dead_letters.send(key=d.source_topic.encode(), value=d.to_json_bytes())
            for d in outcome.dead_letters
        ]
        # Delivered before the batch is acknowledged: a crash replays it, never loses it.
        await asyncio.gather(*pending)
        done = time.time()
        metrics.MESSAGES_OUT.labels(SERVICE, verdicts.get_topic_name()).inc(len(outcome.verdicts))
        metrics.DEAD_LETTERS.labels(SERVICE).inc(len(outcome.dead_letters))
        if outcome.dead_letters:
            metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(outcome.dead_letters))
        metrics.PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        for verdict in outcome.verdicts:
            metrics.END_TO_END_SECONDS.labels(SERVICE).observe(
                done - verdict.received_at.timestamp()
            )

    @app.on_rebalance_complete.connect
    async def ready(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        metrics.READY.labels(SERVICE).set(1)

    @app.on_partitions_revoked.connect
    async def rebalancing(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        metrics.READY.labels(SERVICE).set(0)

    @app.agent(source, name="score")
    async def score(stream: faust.StreamT[bytes]) -> None:
        # take_events is faust's Stream API, missing from its StreamT protocol.
        async for events in cast(Stream[bytes], stream).take_events(
            settings.scorer.max_batch, within=max_wait
        ):
            await handle(events)

    return app


def run_worker(settings: Settings) -> None:
    """Load the model, expose metrics and run the faust worker until SIGINT/SIGTERM."""
    from scorers.model import load_model

    model = load_model(settings.model)
    metrics.serve(settings.metrics.scorer_port, settings.metrics.host)
    app = build_app(settings, model)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()

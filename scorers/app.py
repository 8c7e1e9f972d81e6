"""The scoring stream: chat.messages.v1 -> micro-batches -> moderation.verdicts.v1.

A faust app built explicitly from Settings (never from faust's own environment names). Per
micro-batch (``max_batch`` messages or ``max_wait_ms``, whichever first): decode, read context
features from Redis in one pipelined round trip, score in a worker thread (the event loop keeps
consuming meanwhile), deliver verdicts and dead letters, update the Redis counters in one Lua
call, and only then acknowledge the batch. A crash replays a batch; it never loses one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
from faust.streams import Stream

from schemas.events import Severity
from schemas.topics import CHAT_MESSAGES, DEADLETTER, VERDICTS
from scorers.batch import SERVICE, BatchScorer, RawEvent, outcome
from scorers.cache import Row, TextSideCache, decode_row, encode_row, redis_key
from scorers.features import ContextReader, FeatureStore
from toxicity.base import TextScorer
from warden import metrics
from warden.clients import group_id, redis_client
from warden.settings import Settings

logger = logging.getLogger(__name__)


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


class SharedCache:
    """Text-side rows shared by all workers through Redis (optional)."""

    def __init__(self, settings: Settings, model_version: str) -> None:
        self.client = redis_client(settings.redis)
        self.ttl_s = settings.scorer.shared_cache_ttl_s
        self.version = model_version

    async def get(self, keys: Sequence[str]) -> dict[str, Row]:
        if not keys:
            return {}
        blobs = await self.client.mget([redis_key(self.version, k) for k in keys])
        return {k: decode_row(b) for k, b in zip(keys, blobs, strict=True) if b is not None}

    async def put(self, rows: dict[str, Row]) -> None:
        if not rows:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for key, row in rows.items():
                pipe.set(redis_key(self.version, key), encode_row(row), ex=self.ttl_s)
            await pipe.execute()


def build_scorer(settings: Settings, model: TextScorer) -> BatchScorer:
    cache = None
    if settings.scorer.cache_size and hasattr(model, "score_text_side"):
        cache = TextSideCache(cast(Any, model), settings.scorer.cache_size, SERVICE)
    return BatchScorer(model, Severity(settings.scorer.flag_severity), cache)


def build_app(settings: Settings, model: TextScorer) -> faust.App:
    suffix = settings.kafka.topic_suffix
    app_id = group_id(settings.kafka, SERVICE)
    datadir = settings.stack.dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        **faust_broker_options(settings),
        # faust keeps worker state on disk; never in the working directory.
        datadir=str(datadir),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,
        topic_allow_declare=False,  # topics come from schemas.topics via `warden topics create`
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=settings.kafka.linger_ms,
        producer_compression_type=(
            None if settings.kafka.compression == "none" else settings.kafka.compression
        ),
        web_enabled=False,
    )
    source = app.topic(CHAT_MESSAGES.name_for(suffix), value_serializer="raw")
    verdicts = app.topic(VERDICTS.name_for(suffix), value_serializer="raw")
    dead_letters = app.topic(DEADLETTER.name_for(suffix), value_serializer="raw")
    scorer = build_scorer(settings, model)
    contexts = ContextReader(
        FeatureStore(redis_client(settings.redis)), settings.scorer.redis_retry_after_s
    )
    shared = SharedCache(settings, model.version) if settings.scorer.shared_cache else None
    # One thread: batches are scored in order, and the model is never entered twice at once.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    max_wait = settings.scorer.max_wait_ms / 1000
    source_name, verdicts_name = source.get_topic_name(), verdicts.get_topic_name()

    async def shared_rows(texts: list[str]) -> dict[str, Row]:
        if shared is None or scorer.cache is None or not contexts.available:
            return {}
        try:
            return await shared.get(scorer.cache.missing(texts))
        except (OSError, TimeoutError, ValueError) as exc:
            logger.warning("shared cache read failed: %s", exc)
            return {}

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
        metrics.MESSAGES_IN.labels(SERVICE, source_name).inc(len(raw))
        metrics.BATCH_SIZE.labels(SERVICE).observe(len(raw))
        messages, dead = scorer.decode(raw)
        context, degraded = await contexts.read(messages)
        if degraded:
            metrics.DEGRADED.labels(SERVICE).inc(len(messages))
        found = await shared_rows([m.text for m in messages])
        model_started = time.perf_counter()
        scored = await asyncio.get_running_loop().run_in_executor(
            executor, scorer.score, messages, context, degraded, found
        )
        metrics.MODEL_SECONDS.labels(SERVICE).observe(time.perf_counter() - model_started)
        pending = [
            await verdicts.send(key=v.key.encode(), value=v.to_json_bytes())
            for v in scored.verdicts
        ]
        pending += [
            await dead_letters.send(key=d.source_topic.encode(), value=d.to_json_bytes())
            for d in dead
        ]
        # Delivered before the batch is acknowledged: a crash replays it, never loses it.
        await asyncio.gather(*pending)
        done = time.time()
        await contexts.update(messages, [outcome(v) for v in scored.verdicts])
        if shared is not None and scored.computed and contexts.available:
            try:
                await shared.put(scored.computed)
            except (OSError, TimeoutError) as exc:
                logger.warning("shared cache write failed: %s", exc)
        metrics.MESSAGES_OUT.labels(SERVICE, verdicts_name).inc(len(scored.verdicts))
        if dead:
            metrics.DEAD_LETTERS.labels(SERVICE).inc(len(dead))
            metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(dead))
        metrics.PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        for verdict in scored.verdicts:
            metrics.END_TO_END_SECONDS.labels(SERVICE).observe(done - verdict.sent_at.timestamp())
        last_offsets: dict[Any, int] = {}
        for event in events:
            last_offsets[event.message.tp] = event.message.offset
        for tp, offset in last_offsets.items():
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(SERVICE, tp.topic, str(tp.partition)).set(
                    max(0, highwater - offset - 1)
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
        batches = cast(Stream[bytes], stream).take_events(settings.scorer.max_batch, max_wait)
        async for events in batches:
            await handle(events)

    return app


def run_worker(settings: Settings) -> None:
    """Load the model, expose metrics and run the faust worker until SIGINT/SIGTERM."""
    from toxicity.loading import load_model

    model = load_model(settings.model)
    metrics.serve(settings.metrics.scorer_port, settings.metrics.host)
    app = build_app(settings, model)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()

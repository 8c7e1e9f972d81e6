"""The scoring stream: chat.messages.v1 -> micro-batches -> moderation.verdicts.v1.

A faust app built explicitly from Settings (never from faust's own environment names). It takes
micro-batches (``max_batch`` messages or ``max_wait_ms``, whichever first) without acknowledging
them, and hands them to ``scorers.stages``: decode and the encoder's work in a worker thread;
then, while the next batch is in the encoder, context features from Redis in one round trip, the
booster and the Redis counters; then, while the next batch is scored, the stream detectors (one
Lua call), delivery of the verdicts and dead letters, and only then the acknowledgement. A crash
replays a batch; it never loses one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import sys
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
from faust.streams import Stream
from redis.exceptions import RedisError

from core import metrics
from core.clients import group_id, install_lz4_level, install_reconnect_backoff, redis_client
from core.errors import WardenError
from core.model_pointer import ActiveModel, read_active
from core.paths import faust_data_dir, model_cache_dir
from core.settings import ModelSettings, Settings
from schemas.events import Severity
from schemas.topics import CHAT_MESSAGES, DEADLETTER, RAIDS, VERDICTS, VERDICTS_SHADOW
from scorers.batch import SERVICE, BatchScorer, RawEvent
from scorers.cache import (
    Row,
    TextSideCache,
    decode_row,
    encode_row,
    redis_digest,
    redis_key,
    redis_prefix,
)
from scorers.consumer import RawSchema, ScorerApp, StallWatch, ack_events, take_events
from scorers.context_store import ContextReader, FeatureStore
from scorers.detectors import StreamDetectors
from scorers.model_follow import ModelFollower
from scorers.readiness import Readiness, Worker, watch
from scorers.stages import Outgoing, Stages
from scorers.stream_state import PolicyCache, StreamState
from toxicity.artifacts import resolve_stored
from toxicity.base import TextScorer

logger = logging.getLogger(__name__)
# Python's collector thresholds in the worker (gen0 allocations, gen1 and gen2 collections);
# Python's own are (700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 20)
# How long a thread may hold the GIL while another waits for it (seconds; Python's is 0.005).
# The encoder's sessions drop the GIL for each text's run (~2 ms on a chat line) and need it
# back to take the next: at Python's interval, each waited up to 5 ms for the event loop, and
# a replay drain left 19-21 % of the two cores idle. At this, 13-16 %, and the replay drains
# ran 4-10 % faster (three alternating pairs each against 1 ms and 5 ms); unique texts moved
# within the noise.
SWITCH_INTERVAL_S = 0.0005
# Batches whose text side is computed at once (scorers.stages' text stage): see build_app.
MODEL_THREADS = 2
# The scorer's producer: how long a produce request waits for its answer (seconds).
PRODUCER_REQUEST_TIMEOUT_S = 30.0


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


# ARGV: the TTL in seconds, the key prefix, the rows' digests (32 hex digits each, one after
# another), their lengths (comma-separated), then the rows one after another. One script call
# a batch: through a pipeline, redis-py's bookkeeping took about 20 us a row.
_PUT_ROWS = """
local ttl, prefix, digests, blob = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local at, i = 1, 0
for size in string.gmatch(ARGV[4], '%d+') do
  local n = tonumber(size)
  redis.call('SET', prefix .. string.sub(digests, 32 * i + 1, 32 * i + 32),
             string.sub(blob, at, at + n - 1), 'EX', ttl)
  at = at + n
  i = i + 1
end
return i
"""


class SharedCache:
    """Text-side rows shared by all workers through Redis (optional)."""

    def __init__(self, settings: Settings, model_version: str) -> None:
        self.client = redis_client(settings.redis)
        self.ttl_s = settings.scorer.shared_cache_ttl_s
        self.version = model_version
        self._put = self.client.register_script(_PUT_ROWS)

    async def get(self, keys: Sequence[str]) -> dict[str, Row]:
        if not keys:
            return {}
        blobs = await self.client.mget([redis_key(self.version, k) for k in keys])
        return {k: decode_row(b) for k, b in zip(keys, blobs, strict=True) if b is not None}

    async def put(self, rows: dict[str, Row]) -> None:
        if not rows:
            return
        blobs = [encode_row(row) for row in rows.values()]
        await self._put(
            args=[
                self.ttl_s,
                redis_prefix(self.version),
                "".join(map(redis_digest, rows)),
                ",".join(str(len(blob)) for blob in blobs),
                b"".join(blobs),
            ]
        )

    async def clear(self, batch: int = 1_000) -> int:
        """Drop this model version's shared rows (they are a cache); how many there were."""
        dropped, keys = 0, []
        async for key in self.client.scan_iter(match=redis_prefix(self.version) + "*", count=batch):
            keys.append(key)
            if len(keys) >= batch:
                dropped += await self.client.unlink(*keys)
                keys = []
        if keys:
            dropped += await self.client.unlink(*keys)
        return dropped

    async def close(self) -> None:
        await self.client.aclose()


class BatchSender:
    """Sends a delivery's records as one Kafka record batch per topic partition.

    Per record, aiokafka's ``send`` (a metadata wait, partitioning, a future and the
    accumulator's bookkeeping) cost more CPU than scoring a cached text. Here each partition's
    records are appended to one batch builder and handed over with ``send_batch``: the same
    partitioner as a keyed ``send`` (faust's ``key_partition``), the same producer (acks,
    compression, idempotence), one future per batch. A batch is at most the producer's batch
    size (``WARDEN_SCORER__RECORD_BATCH_BYTES``); a full one is sent and the next one started.

    A key's partition is remembered while the topic's partitions stay the same: the keys
    (users) repeat, and the partitioner hashes in pure Python (about 6 us a record).
    """

    def __init__(self, app: faust.App, remember: int = 100_000) -> None:
        self.app = app
        self.remember = remember
        self._partitions: dict[str, Any] = {}  # topic -> its partitions when memo was filled
        self._memo: dict[str, dict[bytes, int]] = {}  # topic -> key -> partition

    async def __call__(self, records: Sequence[Outgoing]) -> list[Awaitable[Any] | Exception]:
        faust_producer = self.app.producer
        # faust's producer has no batch API: its aiokafka producer has (faust starts it).
        producer = cast(Any, faust_producer)._ensure_producer()
        results: list[Awaitable[Any] | Exception | None] = [None] * len(records)
        groups: dict[tuple[str, int], list[int]] = {}
        try:
            for topic in {record.topic for record in records}:
                # Metadata, as send would wait for; new partitions make every key hash again.
                partitions = await producer.partitions_for(topic)
                if self._partitions.get(topic) != partitions:
                    self._partitions[topic] = partitions
                    self._memo[topic] = {}
            for index, record in enumerate(records):
                memo = self._memo[record.topic]
                partition = memo.get(record.key)
                if partition is None:
                    partition = faust_producer.key_partition(record.topic, record.key).partition
                    if len(memo) >= self.remember:
                        memo.clear()
                    memo[record.key] = partition
                groups.setdefault((record.topic, partition), []).append(index)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broker away: every record gets it, to sort
            return [exc] * len(records)

        async def send(batch: Any, topic: str, partition: int, members: list[int]) -> None:
            future = await producer.send_batch(batch, topic, partition=partition)
            for member in members:
                results[member] = future

        for (topic, partition), indexes in groups.items():
            batch, members = producer.create_batch(), list[int]()
            try:
                for index in indexes:
                    record = records[index]
                    if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                        await send(batch, topic, partition, members)
                        batch, members = producer.create_batch(), list[int]()
                        batch.append(key=record.key, value=record.value, timestamp=None)
                    members.append(index)
                await send(batch, topic, partition, members)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the records not yet handed over get it
                for index in indexes:
                    if results[index] is None:
                        results[index] = exc
        return cast(list[Awaitable[Any] | Exception], results)


def build_scorer(settings: Settings, model: TextScorer) -> BatchScorer:
    cache = None
    if settings.scorer.cache_size and hasattr(model, "score_text_side"):
        cache = TextSideCache(cast(Any, model), settings.scorer.cache_size, SERVICE)
    return BatchScorer(model, Severity(settings.scorer.flag_severity), cache)


def build_app(
    settings: Settings, model: TextScorer, readiness: Readiness | None = None
) -> faust.App:
    # faust builds its aiokafka clients itself, outside core.clients' factories: give them
    # the same back-off while the broker is away (no tight reconnect loop, no log flood), and
    # the same lz4 level for the verdict batches.
    install_reconnect_backoff(settings.kafka)
    install_lz4_level(settings.kafka)
    suffix = settings.kafka.topic_suffix
    shadow = settings.scorer.shadow
    # A challenger has a group of its own per model: it reads every message, as the scorer does.
    app_id = group_id(settings.kafka, f"{SERVICE}-shadow-{model.version}" if shadow else SERVICE)
    datadir = faust_data_dir(settings) / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    # faust's app, with a consumer whose hand-off of each message costs no tasks (consumer.py).
    app = ScorerApp(
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
        broker_session_timeout=settings.kafka.session_timeout_s,
        broker_heartbeat_interval=settings.kafka.session_timeout_s / 3,
        producer_acks=-1,
        # faust's default is 20 minutes, which is also how long aiokafka holds a batch whose
        # request got no answer: the deliver stage (and every batch behind it) would wait that
        # long. At this, such a batch is retried or failed, and the stage sends it again.
        producer_request_timeout=PRODUCER_REQUEST_TIMEOUT_S,
        # No linger: BatchSender hands over each delivery's records as whole record batches
        # already, so waiting for more would only add latency (5 ms at the default).
        producer_linger_ms=0,
        producer_max_batch_size=settings.scorer.record_batch_bytes,
        producer_compression_type=(
            None if settings.kafka.compression == "none" else settings.kafka.compression
        ),
        web_enabled=False,
    )
    source = app.topic(CHAT_MESSAGES.name_for(suffix), schema=RawSchema())
    verdicts = app.topic(
        (VERDICTS_SHADOW if shadow else VERDICTS).name_for(suffix), value_serializer="raw"
    )
    dead_letters = app.topic(DEADLETTER.name_for(suffix), value_serializer="raw")
    raids_topic = RAIDS.name_for(suffix)
    contexts = ContextReader(
        FeatureStore(redis_client(settings.redis)),
        settings.scorer.redis_retry_after_s,
        writes=not shadow,
    )
    # The model in use, and the stages scoring with it: a promotion swaps both (model_follow).
    current = _InUse(settings, model)
    live: set[Stages] = set()
    detectors = None
    if settings.scorer.detectors and not shadow:
        client = redis_client(settings.redis)
        detectors = StreamDetectors(
            StreamState(client),
            PolicyCache(client, settings.scorer.detector_policy_cache_s),
            settings.scorer.redis_retry_after_s,
        )
    # Two threads: one batch's texts are prepared (tokens, features, the cache) while the
    # encoder's sessions run the texts of the one before. The score stage still takes the
    # batches in order.
    executor = ThreadPoolExecutor(max_workers=MODEL_THREADS, thread_name_prefix="model")
    max_wait = settings.scorer.max_wait_ms / 1000

    async def send(topic: str, key: bytes, value: bytes) -> Any:
        # Straight to the producer: faust's Topic.send bookkeeping cost more per verdict than
        # decoding, scoring a cached text and serialising it together (~130 us, measured).
        return await app.producer.send(topic, key, value, None, None, None)

    state = readiness or Readiness(SERVICE)

    @app.on_rebalance_complete.connect
    async def ready(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        state.set(joined=True)

    @app.on_partitions_revoked.connect
    async def rebalancing(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        state.set(joined=False)

    @app.task
    async def probe() -> None:
        await watch(state, settings.kafka.bootstrap_list, redis_client(settings.redis))

    # A challenger's model is not the one the scorers run: its own service label.
    metrics.MODEL_INFO.labels(f"{SERVICE}-shadow" if shadow else SERVICE, model.version).set(1)
    for result in ("swapped", "failed"):
        metrics.MODEL_SWAPS.labels(SERVICE, result)
    if following(settings):

        def install(new: TextScorer) -> None:
            current.use(new)
            for stages in live:
                stages.swap(current.scorer, current.shared)

        follower = ModelFollower(
            redis_client(settings.redis),
            settings.model.registry,
            model.version,
            load=lambda pointer: load_pointed(settings, pointer),
            install=install,
            poll_s=settings.model.poll_s,
            service=SERVICE,
        )

        @app.task
        async def follow() -> None:
            await follower.run()

    @app.agent(source, name="score")
    async def score(stream: faust.StreamT[bytes]) -> None:
        # Batches whose events stay unacknowledged until the deliver stage has their verdicts
        # on the broker, taken below the Stream's per-event iteration (consumer.take_events).
        events_stream = cast(Stream[bytes], stream)

        async def ack(events: Sequence[Any]) -> None:
            ack_events(app, events)
            last: dict[Any, int] = {}
            for event in events:
                last[event.message.tp] = event.message.offset
            for tp, offset in last.items():
                highwater = app.consumer.highwater(tp)
                if highwater is not None:
                    metrics.CONSUMER_LAG.labels(SERVICE, tp.topic, str(tp.partition)).set(
                        max(0, highwater - offset - 1)
                    )

        stages = Stages(
            current.scorer,
            contexts,
            executor,
            send=send,
            send_many=BatchSender(app),
            ack=ack,
            verdicts_topic=verdicts.get_topic_name(),
            dead_letter_topic=dead_letters.get_topic_name(),
            source_topic=source.get_topic_name(),
            on_failure=app.crash,
            shared=current.shared,
            detectors=detectors,
            raids_topic=raids_topic,
            outcomes=not shadow,
        )
        stages.start()
        live.add(stages)

        def idle() -> bool:
            return stages.idle

        # A consumer that stops handing out waiting messages is started again (consumer.py).
        stall = StallWatch(app, source.get_topic_name(), idle)
        watching = asyncio.create_task(stall.run(), name="scorer-stall-watch")
        try:
            batches = take_events(events_stream, settings.scorer.max_batch, max_wait, idle, stall)
            async for events in batches:
                raw = [
                    RawEvent(
                        value=e.value,
                        key=e.key,
                        topic=e.message.topic,
                        partition=e.message.partition,
                        offset=e.message.offset,
                    )
                    for e in cast(Sequence[faust.EventT], events)
                ]
                await stages.put(events, raw)
        finally:
            watching.cancel()
            live.discard(stages)
            await stages.stop()

    return app


class _InUse:
    """The model a worker scores with, with its text-side and shared caches."""

    def __init__(self, settings: Settings, model: TextScorer) -> None:
        self.settings = settings
        self.use(model)

    def use(self, model: TextScorer) -> None:
        self.scorer = build_scorer(self.settings, model)
        self.shared = (
            SharedCache(self.settings, model.version) if self.settings.scorer.shared_cache else None
        )


def following(settings: Settings) -> bool:
    """Whether this worker follows the registry's active model (never a challenger)."""
    model = settings.model
    return model.follows_registry and model.kind == "hybrid" and not settings.scorer.shadow


def load_pointed(settings: Settings, pointer: ActiveModel) -> TextScorer:
    """The model the registry's pointer names, loaded with this worker's model settings."""
    from toxicity.loading import load_scorer

    path = resolve_stored(pointer.path)
    return load_scorer(
        worker_model_settings(settings).model_copy(update={"path": path}),
        cache_dir=model_cache_dir(settings),
    )


def worker_model_settings(settings: Settings) -> ModelSettings:
    """The model settings a worker loads with: unless told otherwise, the int8 encoder's
    sessions run in a process of their own (toxicity.encoder_process), off the interpreter
    lock that the event loop holds much of the time."""
    if settings.model.encoder_process is not None:
        return settings.model
    return settings.model.model_copy(update={"encoder_process": True})


def startup_model(settings: Settings) -> TextScorer:
    """The registry's active model when this worker follows one (and it loads), else the
    configured one: a worker started after a promotion scores with the promoted model."""

    from toxicity.loading import load_model

    if following(settings):

        async def pointed() -> ActiveModel | None:
            client = redis_client(settings.redis)
            try:
                return await read_active(client, settings.model.registry)
            finally:
                await client.aclose()

        try:
            pointer = asyncio.run(pointed())
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning(
                "cannot read the active-model pointer, using the configured model: %s", exc
            )
            pointer = None
        if pointer is not None:
            try:
                model = load_pointed(settings, pointer)
                logger.info("model %s loaded (the registry's active model)", model.version)
                return model
            except (WardenError, OSError, ValueError) as exc:
                logger.error(
                    "cannot load the active model %s (%s): using the configured one",
                    pointer.path,
                    exc,
                )
    return load_model(worker_model_settings(settings), cache_dir=model_cache_dir(settings))


def settle_heap() -> None:
    """Keep Python's collector off what the worker loaded for good (the model, faust, the
    libraries): a full collection walked all of it every few batches. Collections of the young
    generation come less often, in larger sweeps, since each batch leaves thousands of
    short-lived objects (events, verdicts) behind. On the replay this took the collector's share
    from about 75 to 2 us of CPU a message (``warden bench``'s ``gc`` row)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: Settings) -> None:
    """Load the model, expose metrics and run the faust worker until SIGINT/SIGTERM."""
    # Every folder the worker writes, checked before the model loads: a missing volume or one
    # owned by another user fails now, naming its variable (not as a crash loop later).
    faust_data_dir(settings, writable=True)
    if settings.model.kind == "hybrid":
        model_cache_dir(settings, writable=True)
    model = startup_model(settings)
    metrics.serve(settings.metrics.scorer_port, settings.metrics.host)
    metrics.initialise(SERVICE, settings.metrics.communities)
    readiness = Readiness(SERVICE)
    readiness.set()  # 0 until the first rebalance completes
    app = build_app(settings, model, readiness)
    # A promotion replaces the model (model_follow): nothing here may keep the old one alive,
    # nor its encoder's process (toxicity.encoder_process ends it once the model is let go).
    del model
    settle_heap()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # override_logging=False: keep core.logs.configure's handlers, which rate-limit repeated
    # records; faust would replace the root handlers with its own.
    worker = Worker(
        app, loglevel=settings.log_level, quiet=True, readiness=readiness, override_logging=False
    )
    worker.execute_from_commandline()

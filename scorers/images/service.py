"""The image scorer: chat.messages.v1 in (its own consumer group), image verdicts out on
moderation.verdicts.v1, beside the text verdicts.

A text verdict never waits for an image: this service reads the chat topic in its own group,
so a slow CDN or a burst of pictures backs up here and nowhere else. Per batch of records:

1. Messages with image attachments are picked (an attachment whose content type is ``image/*``,
   or, with none given, whose file name or URL path ends in an image extension; Twitch emotes
   are not scored: Twitch vets them). At most ``WARDEN_IMAGES__MAX_PER_MESSAGE`` per message.
2. Each image is looked up by URL, else fetched (``scorers.images.fetch``: allow-listed hosts,
   public addresses only, bounded size and time), hashed and looked up by content, else decoded
   (``imagery.decoding``: magic bytes, decompression-bomb limits) and scored with the others of
   the batch in one model call, off the event loop.
3. Every message with at least one scored image gets one image verdict (``kind: image``): its
   ``p_toxic``, severity and labels are the worst image's, ``images`` lists each image judged.
   An image that cannot be judged (refused, not an image, a bomb, a CDN that keeps failing)
   becomes a dead letter naming the attachment and the reason; the message's other images are
   still judged. A record that is not a valid ChatMessage is skipped (counted): the text
   scorer, which reads the same records, dead-letters it once.
4. Verdicts and dead letters are delivered (acks=all) before the batch's offsets are committed,
   so a crash repeats a batch rather than losing it; the actioner keeps one decision per
   ``Verdict.decision_id``, so a repeated image verdict acts once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from core import metrics
from core.errors import AttachmentError, ImageRejected
from imagery.base import ImageModel, ImageScore, ImageThresholds
from imagery.decoding import DecodedImage, decode_image
from schemas.events import (
    Attachment,
    ChatMessage,
    DeadLetter,
    ImageFinding,
    Platform,
    Scoring,
    Severity,
    Verdict,
    VerdictKind,
    utcnow,
)
from scorers.images.cache import CachedImage, ImageCache

logger = logging.getLogger(__name__)

SERVICE = "images"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"})
TWITCH_EMOTE_HOST = "static-cdn.jtvnw.net"

IMAGES = Counter(
    "warden_images_total",
    "Image attachments by outcome: scored (by the model), cached (score reused by URL or"
    " content hash), rejected (refused or undecodable: a dead letter), failed (fetch kept"
    " failing: a dead letter), skipped (over the per-message cap).",
    ["outcome"],
)
IMAGE_SECONDS = Histogram(
    "warden_image_seconds",
    "Seconds per image attachment, by stage (fetch, decode, model: per batch).",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
for _outcome in ("scored", "cached", "rejected", "failed", "skipped"):
    IMAGES.labels(_outcome)


class Fetched(Protocol):
    """What a fetch gives the scorer (``scorers.images.fetch.FetchedImage``)."""

    @property
    def data(self) -> bytes: ...
    @property
    def content_type(self) -> str | None: ...


class Fetcher(Protocol):
    async def fetch(self, url: str) -> Fetched: ...


def image_attachments(message: ChatMessage) -> list[tuple[int, Attachment]]:
    """The attachments of ``message`` to score, with their places in the list."""
    picked = []
    for index, attachment in enumerate(message.attachments):
        parts = urlsplit(attachment.url)
        if message.platform is Platform.TWITCH and parts.hostname == TWITCH_EMOTE_HOST:
            continue
        if attachment.content_type:
            if attachment.content_type.lower().startswith("image/"):
                picked.append((index, attachment))
            continue
        name = attachment.filename or parts.path
        if PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS:
            picked.append((index, attachment))
    return picked


@dataclass
class _Job:
    """One image attachment of one message, through the stages."""

    record: Any
    message: ChatMessage
    index: int
    attachment: Attachment
    image: CachedImage | None = None
    cached: bool = False
    decoded: DecodedImage | None = None
    fetched_type: str | None = None
    error: str | None = None
    reason: str | None = None
    # The error was one that may pass (timeouts, 5xx) and every attempt failed.
    failed: bool = False


class ImageScorer:
    """Scores the images of a batch of chat records; see the module docstring."""

    def __init__(
        self,
        settings: Any,
        model: ImageModel,
        fetcher: Fetcher,
        *,
        send: Any,
        verdicts_topic: str,
        deadletter_topic: str,
    ) -> None:
        self.config = settings.images
        self.model = model
        self.fetcher = fetcher
        self.send = send
        self.verdicts_topic = verdicts_topic
        self.deadletter_topic = deadletter_topic
        self.thresholds = ImageThresholds.from_settings(self.config)
        self.cache = ImageCache(self.config.cache_size, model.version)
        self._fetching = asyncio.Semaphore(self.config.fetch_concurrency)
        self.verdicts = 0
        self.letters = 0

    async def handle(self, records: Sequence[Any]) -> None:
        """Score the images of ``records``; deliver their verdicts and dead letters."""
        jobs: list[_Job] = []
        for record in records:
            metrics.MESSAGES_IN.labels(SERVICE, record.topic).inc()
            try:
                message = ChatMessage.model_validate_json(record.value or b"")
            except ValidationError:
                metrics.ERRORS.labels(SERVICE, "invalid_payload").inc()
                continue
            picked = image_attachments(message)
            cap = self.config.max_per_message
            if len(picked) > cap:
                IMAGES.labels("skipped").inc(len(picked) - cap)
            jobs.extend(_Job(record, message, i, a) for i, a in picked[:cap])
        if not jobs:
            return
        by_url: dict[str, list[_Job]] = {}
        for job in jobs:
            by_url.setdefault(job.attachment.url, []).append(job)
        # One fetch per URL of the batch: a meme posted by 500 viewers at once is fetched once.
        await asyncio.gather(*(self._prepare(group[0]) for group in by_url.values()))
        for first, *rest in by_url.values():
            for job in rest:
                job.image, job.decoded, job.fetched_type = (
                    first.image,
                    first.decoded,
                    first.fetched_type,
                )
                job.error, job.reason, job.failed = first.error, first.reason, first.failed
                job.cached = True
        await self._score([job for job in jobs if job.decoded is not None])
        await self._publish(jobs)

    async def _prepare(self, job: _Job) -> None:
        """Fetch, hash and decode one image, unless a cache knows its score."""
        url = job.attachment.url
        known = self.cache.by_url(url)
        if known is not None:
            job.image, job.cached = known, True
            return
        size = job.attachment.size
        if size is not None and size > self.config.max_bytes:
            # The platform said how big it is (Discord, Slack file metadata): no fetch at all.
            job.reason = "too_large"
            job.error = f"{size} bytes as the platform reports it, over {self.config.max_bytes}"
            return
        try:
            async with self._fetching:
                # The fetch itself, not the wait for one of the fetch slots.
                started = time.perf_counter()
                try:
                    fetched = await self._fetch(url)
                finally:
                    IMAGE_SECONDS.labels("fetch").observe(time.perf_counter() - started)
        except AttachmentError as exc:
            job.error, job.reason, job.failed = str(exc), exc.reason, exc.retriable
            return
        job.fetched_type = fetched.content_type
        started = time.perf_counter()
        try:
            decoded = await asyncio.to_thread(
                decode_image,
                fetched.data,
                max_bytes=self.config.max_bytes,
                max_pixels=self.config.max_pixels,
                declared_type=fetched.content_type,
            )
        except ImageRejected as exc:
            job.error, job.reason = str(exc), exc.reason
            return
        finally:
            IMAGE_SECONDS.labels("decode").observe(time.perf_counter() - started)
        known = self.cache.by_content(decoded.sha256)
        if known is not None:
            self.cache.put(url, known)
            job.image, job.cached = known, True
            return
        job.decoded = decoded

    async def _fetch(self, url: str) -> Fetched:
        """The fetcher's answer, tried again (with a short backoff) when it failed in a way
        that may pass (a timeout, a 5xx); a refusal is final at once."""
        attempts = self.config.fetch_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self.fetcher.fetch(url)
            except AttachmentError as exc:
                if not exc.retriable or attempt == attempts:
                    raise
                await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _score(self, jobs: list[_Job]) -> None:
        """One model call for every image of the batch that no cache knew (same bytes once)."""
        unique: dict[str, DecodedImage] = {}
        for job in jobs:
            assert job.decoded is not None
            unique.setdefault(job.decoded.sha256, job.decoded)
        if not unique:
            return
        started = time.perf_counter()
        scores = await asyncio.to_thread(
            self.model.score, [image.pixels for image in unique.values()]
        )
        IMAGE_SECONDS.labels("model").observe(time.perf_counter() - started)
        by_sha = dict(zip(unique, scores, strict=True))
        first_of: dict[str, _Job] = {}
        for job in jobs:
            decoded = job.decoded
            assert decoded is not None
            # Only the first job with these bytes was scored; the rest reuse its score.
            owner = first_of.setdefault(decoded.sha256, job)
            job.cached = job.cached or owner is not job
            image = CachedImage(
                score=by_sha[decoded.sha256],
                sha256=decoded.sha256,
                width=decoded.width,
                height=decoded.height,
                content_type=job.fetched_type,
            )
            self.cache.put(job.attachment.url, image)
            job.image, job.decoded = image, None

    async def _publish(self, jobs: list[_Job]) -> None:
        by_message: dict[tuple[str, str], list[_Job]] = {}
        for job in jobs:
            by_message.setdefault((job.message.key, job.message.message_id), []).append(job)
        deliveries = []
        verdicts = []
        for group in by_message.values():
            judged = [job for job in group if job.image is not None]
            for job in group:
                if job.image is None:
                    IMAGES.labels("failed" if job.failed else "rejected").inc()
                    deliveries.append(await self._letter(job))
                else:
                    IMAGES.labels("cached" if job.cached else "scored").inc()
            if judged:
                verdict = self.verdict(group[0].message, judged)
                verdicts.append(verdict)
                deliveries.append(
                    await self.send(
                        self.verdicts_topic, verdict.to_json_bytes(), key=verdict.key.encode()
                    )
                )
                self.verdicts += 1
                metrics.MESSAGES_OUT.labels(SERVICE, self.verdicts_topic).inc()
        # Delivered (acks=all) before the caller commits the batch's offsets.
        await asyncio.gather(*deliveries)
        metrics.observe_verdicts(verdicts)  # kind="image" in the outcome metrics

    async def _letter(self, job: _Job) -> Any:
        why = f"attachment {job.index} ({job.attachment.url[:300]}): {job.reason}: {job.error}"
        logger.info("image not judged: message %s %s", job.message.message_id, why)
        letter = DeadLetter.from_record(
            why, job.record, service=SERVICE, error_type=f"image_{job.reason}"
        )
        self.letters += 1
        metrics.DEAD_LETTERS.labels(SERVICE).inc()
        return await self.send(
            self.deadletter_topic, letter.to_json_bytes(), key=letter.source_topic.encode()
        )

    def verdict(self, message: ChatMessage, jobs: list[_Job]) -> Verdict:
        """The image verdict of ``message``: the worst image decides."""
        findings: list[ImageFinding] = []
        worst: ImageScore | None = None
        label_scores: dict[str, float] = {}
        for job in jobs:
            image = job.image
            assert image is not None
            score = image.score
            if worst is None or score.p_unsafe > worst.p_unsafe:
                worst = score
            for label, value in score.label_scores.items():
                label_scores[label] = max(label_scores.get(label, 0.0), value)
            findings.append(
                ImageFinding(
                    url=job.attachment.url,
                    index=job.index,
                    sha256=image.sha256,
                    content_type=image.content_type or job.attachment.content_type,
                    width=image.width,
                    height=image.height,
                    detections={k: round(v, 4) for k, v in score.detections.items()},
                    cached=job.cached,
                )
            )
        assert worst is not None
        combined = ImageScore(label_scores=label_scores)
        severity = self.thresholds.severity(combined)
        labels = self.thresholds.labels(combined)
        flagged = severity is not Severity.SAFE
        return Verdict(
            message_id=message.message_id,
            platform=message.platform,
            community=message.community,
            channel=message.channel,
            user=message.user,
            user_roles=message.user_roles,
            text=message.text,
            p_toxic=round(combined.p_unsafe, 6),
            severity=severity,
            flagged=flagged,
            model_flagged=flagged,
            labels=labels,
            label_scores={k: round(v, 6) for k, v in label_scores.items()},
            model_version=self.model.version,
            sent_at=message.sent_at,
            received_at=message.received_at,
            scored_at=utcnow(),
            scoring=Scoring(
                backend="onnxruntime",
                device="cpu",
                low_threshold=self.thresholds.label,
                medium_threshold=self.thresholds.explicit_medium,
                high_threshold=self.thresholds.explicit_high,
                flag_severity=Severity.LOW,
            ),
            kind=VerdictKind.IMAGE,
            images=findings,
            channel_nsfw=message.channel_nsfw,
        )


async def serve(settings: Any, stop: asyncio.Event, *, model: ImageModel | None = None) -> int:
    """Run the image scorer until ``stop``; returns the number of image verdicts published."""
    from aiokafka import AIOKafkaConsumer

    from core.clients import kafka_producer
    from core.side_consumer import (
        ConsumerReadiness,
        close_quietly,
        consume_batches,
        join_group,
        watch_broker,
    )
    from core.stopping import until_stopped
    from imagery.nudenet import NudeNetModel
    from schemas.topics import CHAT_MESSAGES, DEADLETTER, VERDICTS
    from scorers.images.fetch import AttachmentFetcher

    config = settings.images
    readiness = ConsumerReadiness(SERVICE)
    probe = asyncio.create_task(watch_broker(readiness, settings.kafka.bootstrap_list))
    consumer: AIOKafkaConsumer | None = None
    producer = kafka_producer(settings.kafka)
    fetcher = AttachmentFetcher(settings)
    try:
        if model is None:
            # Loaded before joining the group: "ready" means the first image is scored at once.
            loading = asyncio.ensure_future(asyncio.to_thread(NudeNetModel, threads=config.threads))
            done, loaded = await until_stopped(stop, loading)
            if not done or loaded is None:
                return 0
            model = loaded
        topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
        consumer, started = await join_group(
            settings.kafka, SERVICE, [topic], readiness, producer, stop
        )
        if not started:
            return 0
        scorer = ImageScorer(
            settings,
            model,
            fetcher,
            send=producer.send,
            verdicts_topic=VERDICTS.name_for(settings.kafka.topic_suffix),
            deadletter_topic=DEADLETTER.name_for(settings.kafka.topic_suffix),
        )
        logger.info(
            "image scorer (%s) consuming %s: up to %d images a message, %d fetches at once, "
            "hosts %s; verdicts to %s",
            model.version,
            topic,
            config.max_per_message,
            config.fetch_concurrency,
            ", ".join(config.allowed_hosts),
            scorer.verdicts_topic,
        )
        # consume_batches watches a worker task; this service has none besides the reads.
        idle = asyncio.create_task(asyncio.Event().wait())
        try:
            await consume_batches(
                consumer, stop, scorer.handle, idle, max_records=config.batch_records
            )
        finally:
            idle.cancel()
        return scorer.verdicts
    finally:
        readiness.set("running", False)
        probe.cancel()
        await fetcher.close()
        if consumer is not None:
            await close_quietly("the Kafka consumer", consumer.stop())
        await close_quietly("the Kafka producer", producer.stop())

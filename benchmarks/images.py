"""The image scorer, measured: images per second and the cache's hit rate.

``python -m benchmarks.images [--distinct 60] [--messages 600] [--seed 0]``

The image stage of ``scorers.images`` (the real fetcher over HTTP from a local server that
plays the platform CDN, safe decoding, NudeNet 320n on ONNX Runtime, the caches) runs on two
workloads of generated pictures (photos-like noise and gradients of chat-typical sizes, 320 to
1920 pixels wide, PNG/JPEG/WebP/GIF):

- ``unique``: every message carries a picture never seen before (the cost of a cold image);
- ``replay``: ``--messages`` messages drawing their pictures from ``--distinct`` ones with a
  Zipf-like skew, as a meme or an emote screenshot spreads through a busy chat, in batches of
  ``WARDEN_IMAGES__BATCH_RECORDS`` records.

Kafka is left out on purpose: the text pipeline's benchmark (``warden bench``) measures the
broker; this one measures what an image costs. The result goes to
``benchmarks/results/images.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from PIL import Image

from core.net import free_port
from core.settings import get_settings
from imagery.nudenet import NudeNetModel
from schemas.events import Attachment, ChatMessage, Platform
from scorers.images.fetch import AttachmentFetcher
from scorers.images.service import IMAGE_SECONDS, IMAGES, ImageScorer

RESULTS = Path(__file__).resolve().parent / "results" / "images.json"
SIZES = [(320, 240), (640, 480), (800, 800), (1280, 720), (1920, 1080)]
FORMATS = [
    ("PNG", "image/png"),
    ("JPEG", "image/jpeg"),
    ("WEBP", "image/webp"),
    ("GIF", "image/gif"),
]


def make_picture(rng: random.Random) -> tuple[bytes, str]:
    width, height = rng.choice(SIZES)
    fmt, content_type = rng.choice(FORMATS)
    generator = np.random.default_rng(rng.randrange(1 << 30))
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(x * rng.randrange(1, 5)) % 256, (y * rng.randrange(1, 5)) % 256, (x + y) % 256], axis=2
    )
    noise = generator.integers(0, 48, (height, width, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue(), content_type


STAGES = ("fetch", "decode", "model")


def stage_seconds(stage: str) -> float:
    """The sum of ``warden_image_seconds{stage}`` so far."""
    for metric in IMAGE_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("stage") == stage:
                return float(sample.value)
    return 0.0


@dataclass
class Record:
    """What the scorer reads of a consumed record."""

    value: bytes
    topic: str = "chat.messages.v1"
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


async def run(distinct: int, messages: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - test pictures, not secrets
    files: dict[str, tuple[bytes, str]] = {}
    app = web.Application()

    async def serve_file(request: web.Request) -> web.Response:
        body, content_type = files[request.path]
        return web.Response(body=body, content_type=content_type)

    app.router.add_get("/{name}", serve_file)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    host = f"127.0.0.1:{port}"
    settings = get_settings()
    images = settings.images.model_copy(
        update={
            "allowed_hosts": ["127.0.0.1"],
            "private_hosts_allowed": [host],
            "http_hosts_allowed": ["127.0.0.1"],
        }
    )
    settings = settings.model_copy(update={"images": images})
    model = NudeNetModel(threads=images.threads)
    sent: list[Any] = []

    async def send(topic: str, value: bytes, key: bytes | None = None) -> Any:
        sent.append(value)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def chat(number: int, url: str, content_type: str) -> Record:
        now = datetime.now(UTC)
        message = ChatMessage(
            message_id=f"m{number}",
            platform=Platform.DISCORD,
            community="bench",
            channel="c",
            user=f"u{number % 50}",
            text="look",
            attachments=[Attachment(url=url, content_type=content_type)],
            sent_at=now,
            received_at=now,
        )
        return Record(message.to_json_bytes(), offset=number)

    results: dict[str, Any] = {"distinct": distinct, "messages": messages, "seed": seed}
    async with AttachmentFetcher(settings) as fetcher:
        for workload in ("unique", "replay"):
            scorer = ImageScorer(
                settings,
                model,
                fetcher,
                send=send,
                verdicts_topic="v",
                deadletter_topic="d",
            )
            if workload == "unique":
                names = [f"/u{i}.img" for i in range(distinct)]
                for name in names:
                    files[name] = make_picture(rng)
                picks = names
            else:
                names = [f"/r{i}.img" for i in range(distinct)]
                for name in names:
                    files[name] = make_picture(rng)
                weights = [1 / (rank + 1) for rank in range(distinct)]
                picks = rng.choices(names, weights=weights, k=messages)
            records = [
                chat(i, f"http://{host}{name}", files[name][1]) for i, name in enumerate(picks)
            ]
            before = {o: IMAGES.labels(o)._value.get() for o in ("scored", "cached")}
            stage_before = {stage: stage_seconds(stage) for stage in STAGES}
            batch = images.batch_records
            started = time.perf_counter()
            for start in range(0, len(records), batch):
                await scorer.handle(records[start : start + batch])
            seconds = time.perf_counter() - started
            scored = IMAGES.labels("scored")._value.get() - before["scored"]
            cached = IMAGES.labels("cached")._value.get() - before["cached"]
            results[workload] = {
                "images": len(records),
                "seconds": round(seconds, 2),
                "images_per_s": round(len(records) / seconds, 1),
                "scored": int(scored),
                "cached": int(cached),
                "cache_hit_rate": round(cached / len(records), 3),
                "verdicts": scorer.verdicts,
                "dead_letters": scorer.letters,
                # Wall seconds spent in each stage (fetches overlap; the model runs per batch).
                "stage_seconds": {
                    stage: round(stage_seconds(stage) - stage_before[stage], 2) for stage in STAGES
                },
            }
    await runner.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distinct", type=int, default=60)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = asyncio.run(run(args.distinct, args.messages, args.seed))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))  # noqa: T201 - a benchmark's report


if __name__ == "__main__":
    main()

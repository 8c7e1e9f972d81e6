"""The image scorer on the real broker (issue #17), as `warden images` runs in production, with
images made here and served by a local HTTP server that plays the platform CDN.

Every attachment ends in an image verdict or a dead letter with a clear reason: safe images of
five formats and several sizes are judged SAFE; a truncated file, an oversized one, a
decompression bomb and a text file named .png are refused; URLs that redirect to 127.0.0.1 (on
another port) or to 169.254.169.254 and a host off the allow-list are refused without a byte
fetched from them; the same picture posted by many viewers is scored once."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiokafka import AIOKafkaProducer
from kit import Service, consume
from PIL import Image

from core.net import free_port
from core.settings import Settings
from schemas.events import Attachment, ChatMessage, Platform
from schemas.topics import CHAT_MESSAGES, DEADLETTER, VERDICTS

MAX_BYTES = 600_000
REPEATS = 12


def picture(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    image = Image.new(mode, size)
    # A soft pattern, so JPEG and WebP have something to encode.
    pixels = image.load()
    assert pixels is not None
    for x in range(0, size[0], 4):
        for y in range(0, size[1], 4):
            value = (x * 7 + y * 3) % 256
            pixels[x, y] = (value, 255 - value, (x + y) % 256) if mode == "RGB" else value
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid little PNG whose header declares ``width`` x ``height`` pixels."""
    raw = zlib.compress(b"\x00" * 64)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class Cdn:
    """The platform CDN of the test: files by path, redirects, and a count of requests."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.redirects: dict[str, str] = {}
        self.hits: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path in self.redirects:
            raise web.HTTPFound(self.redirects[path])
        if path not in self.files:
            raise web.HTTPNotFound()
        body, content_type = self.files[path]
        return web.Response(body=body, content_type=content_type)


@pytest_asyncio.fixture
async def cdns() -> AsyncIterator[tuple[Cdn, int, Cdn, int]]:
    """The CDN (allowed) and a private service on another port (never to be reached)."""
    servers = []
    out: list[Any] = []
    for _ in range(2):
        cdn = Cdn()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", cdn.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        servers.append(runner)
        out.extend([cdn, port])
    yield (out[0], out[1], out[2], out[3])
    for runner in servers:
        await runner.cleanup()


def message(number: int, urls: list[str], **extra: Any) -> ChatMessage:
    now = datetime.now(UTC)
    return ChatMessage(
        message_id=f"img-{number}",
        platform=Platform.DISCORD,
        community="g-images",
        channel="c-1",
        user=f"u{number % 5}",
        text="look at this",
        attachments=[Attachment(url=url, content_type=None) for url in urls],
        sent_at=now,
        received_at=now,
        **extra,
    )


@pytest.mark.asyncio
async def test_every_attachment_ends_in_a_verdict_or_a_clear_dead_letter(
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    cdns: tuple[Cdn, int, Cdn, int],
) -> None:
    cdn, port, private, private_port = cdns
    base = f"http://127.0.0.1:{port}"
    safe = {
        "/a/photo.png": (picture("PNG", (640, 480)), "image/png"),
        "/a/photo.jpg": (picture("JPEG", (1280, 720)), "image/jpeg"),
        "/a/anim.gif": (picture("GIF", (64, 64), "L"), "image/gif"),
        "/a/sticker.webp": (picture("WEBP", (320, 320)), "image/webp"),
        "/a/old.bmp": (picture("BMP", (50, 30)), "image/bmp"),
    }
    cdn.files.update(safe)
    whole = picture("JPEG", (800, 600))
    cdn.files["/bad/truncated.jpg"] = (whole[: len(whole) // 2], "image/jpeg")
    cdn.files["/bad/huge.png"] = (picture("PNG", (1200, 1200)) + b"\0" * MAX_BYTES, "image/png")
    cdn.files["/bad/bomb.png"] = (bomb_png(), "image/png")
    cdn.files["/bad/notes.png"] = (b"<html><body>not a picture</body></html>", "image/png")
    cdn.files["/meme.png"] = (picture("PNG", (300, 300)), "image/png")
    private.files["/secret.png"] = safe["/a/photo.png"]
    cdn.redirects["/bad/to-local.png"] = f"http://127.0.0.1:{private_port}/secret.png"
    cdn.redirects["/bad/to-metadata.png"] = "https://169.254.169.254/latest/meta-data/"
    bad = {
        "truncated.jpg": "truncated",
        "huge.png": "too_large",
        "bomb.png": "decompression_bomb",
        "notes.png": "not_an_image",
        "to-local.png": "private_address",
        "to-metadata.png": "private_address",
    }

    metrics_port = free_port()
    scorer = service_factory(
        "images",
        WARDEN_METRICS__IMAGES_PORT=str(metrics_port),
        # Even a listed host is refused when its address is private (the metadata service).
        WARDEN_IMAGES__ALLOWED_HOSTS=json.dumps(["127.0.0.1", "169.254.169.254"]),
        WARDEN_IMAGES__PRIVATE_HOSTS_ALLOWED=json.dumps([f"127.0.0.1:{port}"]),
        WARDEN_IMAGES__HTTP_HOSTS_ALLOWED=json.dumps(["127.0.0.1"]),
        WARDEN_IMAGES__MAX_BYTES=str(MAX_BYTES),
        WARDEN_IMAGES__FETCH_ATTEMPTS="1",
        WARDEN_IMAGES__MAX_PER_MESSAGE="5",
    )
    scorer.metrics_port = metrics_port
    await scorer.wait_ready(60)

    messages = [message(1, [base + path for path in safe])]
    messages += [message(10 + i, [f"{base}/bad/{name}"]) for i, name in enumerate(bad)]
    messages.append(message(30, ["https://evil.example/x.png"]))
    messages += [message(100 + i, [f"{base}/meme.png"]) for i in range(REPEATS)]
    chat = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    sent = [await producer.send(chat, m.to_json_bytes(), key=m.key.encode()) for m in messages]
    await asyncio.gather(*sent)

    verdicts = await consume(
        settings,
        VERDICTS.name_for(settings.kafka.topic_suffix),
        count=1 + REPEATS,
        services=[scorer],
    )
    letters = await consume(
        settings,
        DEADLETTER.name_for(settings.kafka.topic_suffix),
        count=len(bad) + 1,
        services=[scorer],
    )
    by_id = {v["message_id"]: v for v in verdicts}
    assert len(verdicts) == 1 + REPEATS and set(by_id) == {"img-1"} | {
        f"img-{100 + i}" for i in range(REPEATS)
    }
    first = by_id["img-1"]
    assert first["kind"] == "image" and first["severity"] == "SAFE" and not first["flagged"]
    assert sorted(i["index"] for i in first["images"]) == [0, 1, 2, 3, 4]
    assert {(i["width"], i["height"]) for i in first["images"]} == {
        (640, 480),
        (1280, 720),
        (64, 64),
        (320, 320),
        (50, 30),
    }
    assert first["model_version"].startswith("nudenet-")

    reasons = {}
    for letter in letters:
        original = json.loads(letter["raw"])
        reasons[original["message_id"]] = letter
        assert letter["service"] == "images" and letter["source_topic"] == chat
    for i, (name, reason) in enumerate(bad.items()):
        letter = reasons[f"img-{10 + i}"]
        assert letter["error_type"] == f"image_{reason}", (name, letter["error"])
        assert name in letter["error"] and "\n" not in letter["error"]
    assert reasons["img-30"]["error_type"] == "image_host_not_allowed"
    # Nothing private was fetched: the redirect target never saw a request.
    assert private.hits == {}

    # The meme was fetched at most a few times (once per batch it fell in) and scored once.
    assert cdn.hits["/meme.png"] <= 3
    page = scorer.metrics()
    assert 'warden_images_total{outcome="scored"} 6.0' in page  # 5 safe + the meme
    assert f'warden_images_total{{outcome="cached"}} {REPEATS - 1}.0' in page
    assert all(
        v["images"][0]["sha256"] == by_id["img-100"]["images"][0]["sha256"]
        for k, v in by_id.items()
        if k != "img-1"
    )

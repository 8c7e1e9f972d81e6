"""The image scorer's batch logic (no broker): which attachments are scored, the caches, retries,
the per-message cap, and how one verdict is made of a message's images (issue #17). The fetcher
here serves bytes from memory; tests/unit/scorers/test_image_fetch.py and
tests/integration/test_images.py fetch over real HTTP."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from core import metrics
from core.errors import FetchFailed, FetchRejected
from core.settings import Settings
from imagery.base import ImageScore
from schemas.events import Attachment, ChatMessage, Platform, Verdict
from scorers.images.service import ImageScorer, image_attachments


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


RED, BLUE, GREEN = png((255, 0, 0)), png((0, 0, 255)), png((0, 255, 0))


@dataclass
class Fetched:
    data: bytes
    content_type: str | None = "image/png"


class MemoryFetcher:
    def __init__(self, files: dict[str, bytes], fail_first: int = 0) -> None:
        self.files = files
        self.calls: list[str] = []
        self.fail_first = fail_first

    async def fetch(self, url: str) -> Fetched:
        self.calls.append(url)
        if self.fail_first:
            self.fail_first -= 1
            raise FetchFailed("timeout", f"{url}: no answer in 0.1 s")
        if url not in self.files:
            raise FetchRejected("host_not_allowed", f"{url}: not on the allow-list")
        return Fetched(self.files[url])


class ColourModel:
    """Red pictures are explicit, blue ones suggestive, the rest nothing; counts images."""

    version = "colour-1"

    def __init__(self) -> None:
        self.seen = 0

    def score(self, images: Sequence[np.ndarray]) -> list[ImageScore]:
        self.seen += len(images)
        out = []
        for image in images:
            r, _, b = (int(c) for c in image.reshape(-1, 3).mean(axis=0))
            out.append(
                ImageScore(
                    {
                        "sexual_explicit": 0.9 if r > 200 else 0.0,
                        "sexual_suggestive": 0.8 if b > 200 else 0.0,
                    },
                    detections={"FACE_FEMALE": 0.5},
                )
            )
        return out


@dataclass
class Record:
    value: bytes
    topic: str = "chat.messages.v1"
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


def record(number: int, *attachments: Attachment, platform: Platform = Platform.DISCORD) -> Record:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    message = ChatMessage(
        message_id=f"m{number}",
        platform=platform,
        community="g",
        channel="c",
        user=f"u{number}",
        text="KEKW",
        attachments=list(attachments),
        sent_at=now,
        received_at=now,
    )
    return Record(message.to_json_bytes(), offset=number)


def url(name: str) -> str:
    return f"https://cdn.discordapp.com/attachments/1/2/{name}"


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.sent.append((topic, json.loads(value)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def verdicts(self) -> list[Verdict]:
        return [Verdict.model_validate(v) for t, v in self.sent if t == "verdicts"]

    def letters(self) -> list[dict[str, Any]]:
        return [v for t, v in self.sent if t == "dead"]


def scorer(fetcher: MemoryFetcher, model: ColourModel, **images: Any) -> tuple[ImageScorer, Outbox]:
    settings = Settings()
    settings = settings.model_copy(
        update={"images": settings.images.model_copy(update={"fetch_attempts": 3, **images})}
    )
    outbox = Outbox()
    return (
        ImageScorer(
            settings,
            model,
            fetcher,
            send=outbox.send,
            verdicts_topic="verdicts",
            deadletter_topic="dead",
        ),
        outbox,
    )


def test_which_attachments_are_pictures() -> None:
    message = ChatMessage.model_validate_json(
        record(
            1,
            Attachment(url=url("a.bin"), content_type="image/webp"),
            Attachment(url=url("clip.mp4"), content_type="video/mp4"),
            Attachment(url=url("b.JPG")),
            Attachment(url=url("notes.txt")),
        ).value
    )
    assert [i for i, _ in image_attachments(message)] == [0, 2]
    emote = ChatMessage.model_validate_json(
        record(
            2,
            Attachment(
                url="https://static-cdn.jtvnw.net/emoticons/v2/25/default/dark/1.0",
                content_type="image/png",
            ),
            platform=Platform.TWITCH,
        ).value
    )
    assert image_attachments(emote) == []  # Twitch vets its emotes


@pytest.mark.asyncio
async def test_the_worst_picture_decides_and_an_emote_caption_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetcher = MemoryFetcher({url("red.png"): RED, url("blue.png"): BLUE, url("green.png"): GREEN})
    model = ColourModel()
    images, outbox = scorer(fetcher, model)
    monkeypatch.setattr(metrics, "COMMUNITIES", metrics.CommunityLabels(20))
    series = {"community": "discord:g", "kind": "image"}
    high = REGISTRY.get_sample_value(
        "warden_verdicts_total", {**series, "severity": "HIGH", "flagged": "true"}
    )
    labelled = REGISTRY.get_sample_value(
        "warden_verdict_labels_total", {**series, "label": "sexual_explicit"}
    )
    await images.handle(
        [
            record(1, Attachment(url=url("green.png")), Attachment(url=url("red.png"))),
            record(2, Attachment(url=url("blue.png"))),
            record(3, Attachment(url=url("green.png"))),
        ]
    )
    by_id = {v.message_id: v for v in outbox.verdicts()}
    explicit, suggestive, safe = by_id["m1"], by_id["m2"], by_id["m3"]
    assert explicit.kind.value == "image" and explicit.severity.value == "HIGH"
    assert explicit.labels == ["sexual_explicit"] and explicit.flagged
    assert [(i.index, i.width, i.height) for i in explicit.images] == [(0, 40, 30), (1, 40, 30)]
    assert suggestive.severity.value == "LOW" and suggestive.labels == ["sexual_suggestive"]
    assert safe.severity.value == "SAFE" and not safe.flagged and safe.labels == []
    assert explicit.decision_id == "m1~image" and explicit.text == "KEKW"
    # Three distinct pictures, one model call each; green.png fetched once for two messages.
    assert model.seen == 3 and sorted(fetcher.calls) == sorted(set(fetcher.calls))
    # The outcome metrics count image verdicts apart from text ones.
    assert (
        REGISTRY.get_sample_value(
            "warden_verdicts_total", {**series, "severity": "HIGH", "flagged": "true"}
        )
        == (high or 0) + 1
    )
    assert (
        REGISTRY.get_sample_value(
            "warden_verdict_labels_total", {**series, "label": "sexual_explicit"}
        )
        == (labelled or 0) + 1
    )
    assert REGISTRY.get_sample_value("warden_verdict_p_toxic_count", series) is not None


@pytest.mark.asyncio
async def test_the_same_picture_is_fetched_once_per_url_and_scored_once_per_content() -> None:
    fetcher = MemoryFetcher({url("meme.png"): RED, url("reupload.png"): RED})
    model = ColourModel()
    images, outbox = scorer(fetcher, model)
    await images.handle([record(i, Attachment(url=url("meme.png"))) for i in range(20)])
    await images.handle([record(100 + i, Attachment(url=url("meme.png"))) for i in range(20)])
    await images.handle([record(200, Attachment(url=url("reupload.png")))])
    assert len(outbox.verdicts()) == 41
    assert fetcher.calls == [url("meme.png"), url("reupload.png")]
    assert model.seen == 1
    assert sum(1 for v in outbox.verdicts() if not v.images[0].cached) == 1


@pytest.mark.asyncio
async def test_refusals_become_dead_letters_and_the_message_keeps_its_other_pictures() -> None:
    fetcher = MemoryFetcher({url("red.png"): RED, url("text.png"): b"<html>hello</html>"})
    images, outbox = scorer(fetcher, ColourModel())
    await images.handle(
        [
            record(
                1,
                Attachment(url=url("text.png")),
                Attachment(url="https://evil.example/x.png"),
                Attachment(url=url("red.png")),
                Attachment(url=url("big.png"), size=50_000_000),
            )
        ]
    )
    (verdict,) = outbox.verdicts()
    assert [i.index for i in verdict.images] == [2]
    letters = outbox.letters()
    assert sorted(letter["error_type"] for letter in letters) == [
        "image_host_not_allowed",
        "image_not_an_image",
        "image_too_large",
    ]
    assert all(json.loads(letter["raw"])["message_id"] == "m1" for letter in letters)
    assert url("big.png") not in fetcher.calls  # the platform's size was enough


@pytest.mark.asyncio
async def test_a_fetch_that_may_pass_is_tried_again_and_the_cap_skips_the_rest() -> None:
    files = {url(f"{i}.png"): GREEN for i in range(6)}
    fetcher = MemoryFetcher(files, fail_first=2)
    images, outbox = scorer(fetcher, ColourModel(), max_per_message=4)
    await images.handle([record(1, *(Attachment(url=u) for u in files))])
    (verdict,) = outbox.verdicts()
    assert len(verdict.images) == 4 and outbox.letters() == []


@pytest.mark.asyncio
async def test_a_fetch_that_keeps_failing_is_a_dead_letter_not_a_stuck_worker() -> None:
    fetcher = MemoryFetcher({url("a.png"): GREEN}, fail_first=10)
    images, outbox = scorer(fetcher, ColourModel(), fetch_attempts=2)
    await images.handle([record(1, Attachment(url=url("a.png"))), Record(b"{not json")])
    assert outbox.verdicts() == []
    (letter,) = outbox.letters()
    assert letter["error_type"] == "image_timeout" and "attachment 0" in letter["error"]

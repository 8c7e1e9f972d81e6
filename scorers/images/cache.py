"""The image scorer's caches: the same meme posted 500 times is fetched once per URL and scored
once per content.

Two bounded LRU maps, per worker: attachment URL -> the SHA-256 of its bytes (a URL's bytes do
not change on the platform CDNs; a re-upload gets a new URL, and lands on the second map), and
content SHA-256 -> the model's score. Both are keyed under the model's version, so a hot-swapped
image model never answers with its predecessor's scores.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from imagery.base import ImageScore


@dataclass(frozen=True)
class CachedImage:
    """What is kept of a scored image: its score and what the verdict says of it."""

    score: ImageScore
    sha256: str
    width: int
    height: int
    content_type: str | None


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class ImageCache:
    """URL -> content hash -> score, bounded to ``size`` entries each."""

    def __init__(self, size: int, model_version: str) -> None:
        self.model_version = model_version
        self._urls: _Lru[str, str] = _Lru(size)
        self._scores: _Lru[str, CachedImage] = _Lru(size)

    def by_url(self, url: str) -> CachedImage | None:
        sha = self._urls.get(url)
        return None if sha is None else self._scores.get(sha)

    def by_content(self, sha256: str) -> CachedImage | None:
        return self._scores.get(sha256)

    def put(self, url: str, image: CachedImage) -> None:
        self._urls.put(url, image.sha256)
        self._scores.put(image.sha256, image)

    def __len__(self) -> int:
        return len(self._scores)

"""On-disk caches of per-text vectors keyed by the text's hash, so reruns are quick.

Embeddings get one folder per encoder identity (weights hash, back end, truncation length);
static features one per version of the code that computes them. Inside, shards of ``keys``
(sha256 of the text, hex, 32 chars) and ``vectors`` (float32) are written as each chunk of
texts is done, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from toxicity.encoder import Encoder

logger = logging.getLogger(__name__)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]


def cache_folder(cache_dir: Path, encoder: Encoder) -> Path:
    name = f"{encoder.weights_hash[:16]}-{encoder.cache_tag}-{encoder.max_length}"
    return cache_dir / "embeddings" / name


def features_folder(cache_dir: Path) -> Path:
    """Static features, keyed by the source of the modules that compute them."""
    import toxicity.emotes
    import toxicity.features
    import toxicity.lexicon
    import toxicity.normalize

    digest = hashlib.sha256()
    for module in (toxicity.features, toxicity.lexicon, toxicity.normalize, toxicity.emotes):
        digest.update(Path(str(module.__file__)).read_bytes())
    return cache_dir / "features" / digest.hexdigest()[:16]


class EmbeddingCache:
    """Embeddings of texts by hash, backed by ``.npz`` shards in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._rows: dict[str, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("shard-*.npz")):
            with np.load(path) as data:
                self._add(list(data["keys"].astype(str)), data["vectors"])

    def __len__(self) -> int:
        return len(self._rows)

    def _add(self, keys: list[str], vectors: np.ndarray) -> None:
        shard = len(self._shards)
        self._shards.append(vectors)
        for row, key in enumerate(keys):
            self._rows[key] = (shard, row)

    def embed(
        self,
        texts: Sequence[str],
        encoder: Encoder,
        *,
        chunk: int = 4096,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> np.ndarray:
        """Embeddings for ``texts`` in order, computing (and saving) only the missing ones."""
        return self.get(texts, encoder.embed, chunk=chunk, progress=progress)

    def get(
        self,
        texts: Sequence[str],
        compute: Callable[[list[str]], np.ndarray],
        *,
        chunk: int = 4096,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> np.ndarray:
        """Vectors for ``texts`` in order; ``compute`` runs only on the ones not cached."""
        keys = [text_key(text) for text in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._rows and key not in missing:
                missing[key] = text
        todo = list(missing.items())
        started = time.monotonic()
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            vectors = np.asarray(compute([text for _, text in part]), dtype=np.float32)
            shard_keys = [key for key, _ in part]
            path = self.folder / f"shard-{len(self._shards):05d}-{time.time_ns()}.npz"
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(shard_keys), vectors=vectors)
            tmp.replace(path)
            self._add(shard_keys, vectors)
            done = min(start + chunk, len(todo))
            if progress is not None:
                progress(done, len(todo), time.monotonic() - started)
        if not texts or not self._shards:
            return np.zeros((len(texts), 0), dtype=np.float32)
        first = self._shards[self._rows[keys[0]][0]]
        out = np.empty((len(texts), first.shape[1]), dtype=np.float32)
        for i, key in enumerate(keys):
            shard, row = self._rows[key]
            out[i] = self._shards[shard][row]
        return out

"""De-duplication cache of text-side model results.

Livestream chat repeats itself (emote spam, copypasta, raids): a line seen before costs no
encoder time. The cache keeps, per text, what the model computes from the text alone (embedding,
static features, lexicon hits); context features are still applied per message, so two users
posting the same line can still get different scores.

The key is what the model reads of the text (``model_text``: whitespace runs collapsed, mentions
as ``@user``), of which the text side is a function; case and symbols stay, because caps ratio
and punctuation counts are features of their own. A model without ``model_text`` gets the text
with whitespace collapsed.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

from core import metrics
from toxicity.base import Context, Score, ThreadCosts
from toxicity.hybrid import TextSide
from toxicity.lexicon import Hits


class SplitScorer(Protocol):
    """A model whose text-side work can be done once and combined with many contexts."""

    @property
    def version(self) -> str: ...

    def score_text_side(self, texts: Sequence[str]) -> TextSide: ...

    def combine(
        self, text_side: TextSide, contexts: Sequence[Context] | None = None
    ) -> list[Score]: ...


@dataclass(frozen=True)
class Row:
    """One text's text-side result: its row of each array of the TextSide, and its hits."""

    arrays: dict[str, np.ndarray]
    hits: Hits


def _array_fields() -> list[str]:
    return [f.name for f in fields(TextSide) if f.name != "hits"]


def split(side: TextSide) -> list[Row]:
    names = _array_fields()
    return [
        Row({name: getattr(side, name)[i] for name in names}, side.hits[i])
        for i in range(len(side))
    ]


def stack(rows: Sequence[Row]) -> TextSide:
    arrays = {name: np.stack([r.arrays[name] for r in rows]) for name in _array_fields()}
    return TextSide(hits=[r.hits for r in rows], **arrays)


def cache_key(text: str) -> str:
    return " ".join(text.split())


class TextSideCache:
    """A bounded LRU of text-side rows, in front of a SplitScorer (hybrid model)."""

    def __init__(self, model: SplitScorer, max_entries: int, service: str = "scorer") -> None:
        self.model = model
        self.key: Callable[[str], str] = getattr(model, "model_text", cache_key)
        self.max_entries = max_entries
        self._rows: OrderedDict[str, Row] = OrderedDict()
        self._hits = metrics.CACHE_LOOKUPS.labels(service, "hit")
        self._misses = metrics.CACHE_LOOKUPS.labels(service, "miss")
        self._reused = metrics.ENCODER_REUSED.labels(service)
        # The int8 encoder keeps embeddings by token ids: some misses cost no encoder run.
        self._encoder = getattr(model, "encoder", None)
        self.hits = 0
        self.misses = 0
        self._costs = ThreadCosts()  # per thread: text sides run on two threads
        # The scorer reads the cache on its event loop while its model thread fills it: the
        # rows are read and written under this lock (never held while the model runs).
        self._lock = threading.Lock()

    def take_costs(self) -> dict[str, int]:
        """This thread's CPU time in the cache itself since the last call (keys, LRU, stacking),
        without the model's text side for the misses."""
        return {"cache_lookup": self._costs.take().get("cache_lookup", 0)}

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def lookup(self, keys: Sequence[str]) -> dict[str, Row]:
        found = {}
        for key in keys:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
                found[key] = row
        return found

    def store(self, rows: dict[str, Row]) -> None:
        for key, row in rows.items():
            self._rows[key] = row
            self._rows.move_to_end(key)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    def compute(self, texts: Sequence[str]) -> dict[str, Row]:
        """Run the model's text side on texts the cache does not hold."""
        if not texts:
            return {}
        reused = getattr(self._encoder, "texts_reused", 0)
        side = self.model.score_text_side(texts)
        self._reused.inc(getattr(self._encoder, "texts_reused", 0) - reused)
        return {self.key(text): row for text, row in zip(texts, split(side), strict=True)}

    def missing(self, texts: Sequence[str]) -> list[str]:
        """Keys of ``texts`` this worker's cache does not hold (to ask a shared cache for)."""
        keys = list(map(self.key, texts))
        with self._lock:
            return list(dict.fromkeys(k for k in keys if k not in self._rows))

    def held(self, texts: Sequence[str], shared: dict[str, Row]) -> dict[str, Row] | None:
        """Every text's row when ``shared`` or this worker's cache holds them all (taken now, so
        that no eviction can come in between), else None."""
        keys = list(map(self.key, texts))
        out: dict[str, Row] = {}
        with self._lock:
            for key in keys:
                row = shared.get(key) or self._rows.get(key)
                if row is None:
                    return None
                out[key] = row
        return out

    def text_side(
        self, texts: Sequence[str], shared: dict[str, Row] | None = None
    ) -> tuple[TextSide, dict[str, Row]]:
        """The model's TextSide for ``texts``, and the rows computed for it.

        Rows come from this worker's cache, then from ``shared`` (found in a shared cache),
        and only the rest are computed, once per distinct text.
        """
        started = time.thread_time_ns()
        keys = [self.key(t) for t in texts]
        with self._lock:
            rows = self.lookup(keys)
            if shared:
                self.store(shared)
                rows.update(shared)
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in rows and key not in todo:
                todo[key] = text
        paused = time.thread_time_ns()
        computed = self.compute(list(todo.values()))
        resumed = time.thread_time_ns()
        rows.update(computed)
        # A message costs encoder time only when its text was computed here; repeats inside
        # the batch are hits too.
        with self._lock:
            self.store(computed)
            self.misses += len(todo)
            self.hits += len(texts) - len(todo)
        self._misses.inc(len(todo))
        self._hits.inc(len(texts) - len(todo))
        side = stack([rows[k] for k in keys])
        self._costs.add("cache_lookup", time.thread_time_ns() - resumed + paused - started)
        return side, computed

    def score(
        self,
        texts: Sequence[str],
        contexts: Sequence[Context] | None,
        shared: dict[str, Row] | None = None,
    ) -> tuple[list[Score], dict[str, Row]]:
        if not texts:
            return [], {}
        side, computed = self.text_side(texts, shared)
        return self.model.combine(side, contexts), computed


# Rows' headers, encoded and decoded: most rows of a model share one (no lexicon hits, the same
# array sizes), and building or parsing the JSON cost more than the rest of a row.
_MEMO_MAX = 4_096
_HEADERS: dict[tuple[Hits, tuple[tuple[str, int], ...]], bytes] = {}
_LAYOUTS: dict[bytes, tuple[tuple[tuple[str, int], ...], Hits]] = {}


def encode_row(row: Row) -> bytes:
    """A row as bytes for the shared (Redis) cache: a JSON header, then the float32 arrays."""
    arrays = {name: value.astype(np.float32, copy=False) for name, value in row.arrays.items()}
    layout = tuple((name, int(value.shape[0])) for name, value in arrays.items())
    header = _HEADERS.get((row.hits, layout))
    if header is None:
        header = json.dumps(
            {
                "hits": {
                    "profanity": row.hits.profanity,
                    "hard_slurs": row.hits.hard_slurs,
                    "reclaimed_slurs": row.hits.reclaimed_slurs,
                    "words": list(row.hits.words),
                },
                "arrays": [list(item) for item in layout],
            }
        ).encode()
        if len(_HEADERS) >= _MEMO_MAX:
            _HEADERS.clear()
        _HEADERS[(row.hits, layout)] = header
    return header + b"\n" + b"".join(value.tobytes() for value in arrays.values())


def decode_row(blob: bytes) -> Row:
    header, _, body = blob.partition(b"\n")
    known = _LAYOUTS.get(header)
    if known is None:
        meta = json.loads(header)
        hits = meta["hits"]
        known = (
            tuple((str(name), int(size)) for name, size in meta["arrays"]),
            Hits(
                hits["profanity"], hits["hard_slurs"], tuple(hits["words"]), hits["reclaimed_slurs"]
            ),
        )
        if len(_LAYOUTS) >= _MEMO_MAX:
            _LAYOUTS.clear()
        _LAYOUTS[header] = known
    layout, row_hits = known
    if len(body) != 4 * sum(size for _, size in layout):
        raise ValueError("cached row has the wrong size")
    values = np.frombuffer(body, dtype=np.float32).copy()  # one copy, writable like the rest
    arrays, start = {}, 0
    for name, size in layout:
        arrays[name] = values[start : start + size]
        start += size
    return Row(arrays, row_hits)


def redis_prefix(model_version: str) -> str:
    """The start of every shared-cache key of a model version."""
    return f"wc2:{model_version}:"


def redis_digest(key: str) -> str:
    """A cache key's name in Redis after the prefix: 32 hex digits."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def redis_key(model_version: str, key: str) -> str:
    return redis_prefix(model_version) + redis_digest(key)

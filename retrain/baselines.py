"""The two public comparison models, run from their pinned, sha256-checked package files.

- ``alt-profanity-check`` 1.9.1: TF-IDF + linear SVM (scikit-learn pickles, loaded with joblib).
- ``toxic-comment-classifier`` 0.3.0: a Jigsaw BiLSTM (Keras). Its weights are read from the
  ``.h5`` file with h5py and the forward pass runs in numpy, so TensorFlow is not needed; its
  Keras tokenizer pickle is read with an unpickler that only admits the classes it holds.
  P(toxic) is the mean of its six outputs, as the package's own ``predict`` does.

Both files are fetched by ``warden data fetch`` (``retrain.sources``); their hashes are pinned,
which is what makes unpickling them acceptable.
"""

from __future__ import annotations

import collections
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrain.sources import source_path


class AltProfanityCheck:
    name = "alt-profanity-check 1.9.1 (TF-IDF+SVM)"

    def __init__(self, cache_dir: Path) -> None:
        import joblib

        base = "profanity_check/data"
        self._vectorizer = joblib.load(source_path(cache_dir, "apc", f"{base}/vectorizer.joblib"))
        self._model = joblib.load(source_path(cache_dir, "apc", f"{base}/model.joblib"))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.predict_proba(self._vectorizer.transform(list(texts)))[:, 1])


class _KerasTokenizer:
    """Stands in for keras' legacy ``Tokenizer`` so that its pickle loads without Keras."""

    word_index: dict[str, int]
    num_words: int | None
    oov_token: str | None
    filters: str
    lower: bool
    split: str

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _TokenizerUnpickler(pickle.Unpickler):
    _allowed: dict[tuple[str, str], Any] = {  # noqa: RUF012
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "int"): int,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
    }

    def find_class(self, module: str, name: str) -> Any:
        if name == "Tokenizer" and module.startswith(("keras", "tensorflow")):
            return _KerasTokenizer
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class JigsawBiLSTM:
    name = "toxic-comment-classifier 0.3.0 (Jigsaw BiLSTM)"
    maxlen = 100

    def __init__(self, cache_dir: Path) -> None:
        import h5py

        base = "toxic_classifier/model"
        with source_path(cache_dir, "bilstm", f"{base}/tokenizer.pickle").open("rb") as handle:
            self._tokenizer: _KerasTokenizer = _TokenizerUnpickler(handle).load()
        weights = source_path(cache_dir, "bilstm", f"{base}/model.weights.h5")
        with h5py.File(weights, "r") as h5:
            layers = h5["layers"]

            def var(path: str) -> np.ndarray:
                return np.asarray(layers[path], dtype=np.float32)

            self._embedding = var("embedding/vars/0")
            self._lstm = {
                side: tuple(var(f"bidirectional/{side}_layer/cell/vars/{i}") for i in range(3))
                for side in ("forward", "backward")
            }
            self._dense = (var("dense/vars/0"), var("dense/vars/1"))
            self._out = (var("dense_1/vars/0"), var("dense_1/vars/1"))
        filters = getattr(self._tokenizer, "filters", '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n')
        self._filter = re.compile("[" + re.escape(filters) + "]")

    def sequences(self, texts: Sequence[str]) -> np.ndarray:
        """Keras ``texts_to_sequences`` + ``pad_sequences`` (pre-padding, pre-truncation)."""
        tok = self._tokenizer
        index = tok.word_index
        num_words = getattr(tok, "num_words", None)
        oov_token = getattr(tok, "oov_token", None)
        oov = index.get(oov_token) if oov_token else None
        split = getattr(tok, "split", " ")
        out = np.zeros((len(texts), self.maxlen), dtype=np.int64)
        for row, text in enumerate(texts):
            if getattr(tok, "lower", True):
                text = text.lower()
            ids = []
            for word in self._filter.sub(split, text).split(split):
                if not word:
                    continue
                i = index.get(word)
                if i is not None and (not num_words or i < num_words):
                    ids.append(i)
                elif oov is not None:
                    ids.append(oov)
            ids = ids[-self.maxlen :]
            if ids:
                out[row, self.maxlen - len(ids) :] = ids
        return out

    def _lstm_pass(self, x: np.ndarray, side: str) -> np.ndarray:
        kernel, recurrent, bias = self._lstm[side]
        units = recurrent.shape[0]
        batch, steps, _ = x.shape
        h = np.zeros((batch, units), dtype=np.float32)
        c = np.zeros((batch, units), dtype=np.float32)
        projected = x @ kernel + bias
        out = np.empty((batch, steps, units), dtype=np.float32)
        order = range(steps) if side == "forward" else range(steps - 1, -1, -1)
        for t in order:
            z = projected[:, t] + h @ recurrent
            i = _sigmoid(z[:, :units])
            f = _sigmoid(z[:, units : 2 * units])
            g = np.tanh(z[:, 2 * units : 3 * units])
            o = _sigmoid(z[:, 3 * units :])
            c = f * c + i * g
            h = o * np.tanh(c)
            out[:, t] = h
        return out

    def predict_all(self, texts: Sequence[str], batch: int = 512) -> np.ndarray:
        """The six Jigsaw outputs, shape (n, 6)."""
        results = []
        for start in range(0, len(texts), batch):
            ids = self.sequences(texts[start : start + batch])
            x = self._embedding[ids]
            both = np.concatenate(
                [self._lstm_pass(x, "forward"), self._lstm_pass(x, "backward")], -1
            )
            pooled = both.max(axis=1)
            hidden = np.maximum(pooled @ self._dense[0] + self._dense[1], 0.0)
            results.append(_sigmoid(hidden @ self._out[0] + self._out[1]))
        return np.concatenate(results) if results else np.zeros((0, 6), dtype=np.float32)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_all(texts).mean(axis=1)

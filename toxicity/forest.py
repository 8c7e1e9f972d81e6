"""The booster's trees in numpy, for the small batches of a quiet stream.

XGBoost's CPU predictor prepares the whole model on every call (the depth of each tree and a
cache-friendly copy of its top levels), so a call on one or two rows costs ~650 us on this
machine, against 11 us for each further row. A livestream at 100 messages a second reaches the
scorer in batches of one or two, and pays that set-up on every batch. :class:`Forest` holds the
same trees once, laid out as complete binary trees of equal depth (a leaf above the bottom level
is copied down to every bottom slot under it), and walks all of them at once, level by level,
with a few numpy operations a level: ~150-250 us for one to four rows here.

Its probabilities are the booster's, bit for bit: the same float32 comparisons (``value <
split``, a missing value takes the node's default side), the same leaf sums in tree order from
the same base margin, the same float32 sigmoid with the C library's ``expf``.
:meth:`Forest.from_booster` checks that on probe rows, and returns ``None`` for a model it cannot
reproduce exactly (another objective, booster or tree kind, categorical splits, deeper trees);
the booster then scores every batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Deeper trees would make the complete layout too large (2**depth bottom slots a tree).
MAX_DEPTH = 10
# Up to this many rows a batch is walked here. The walk costs ~35 us a further row against the
# booster's 11, so the booster wins on larger batches (shipped model, 272 trees, 413 features:
# 16 rows ~0.55 ms here against ~0.9 ms; 32 rows ~0.9 against ~1.2 ms).
MAX_ROWS = 16
_PROBE_ROWS = 256


def _c_expf() -> Any:
    name = ctypes.util.find_library("m")
    if name is None:  # no C maths library to call: numpy's exp (the probe then decides)
        return lambda x: math.exp(x) if x < 88.0 else math.inf
    expf = ctypes.CDLL(name).expf
    expf.restype, expf.argtypes = ctypes.c_float, [ctypes.c_float]
    return expf


_expf = _c_expf()


class Forest:
    """A binary:logistic gbtree model's trees as arrays (see the module doc)."""

    def __init__(
        self,
        features: np.ndarray,
        splits: np.ndarray,
        default_left: np.ndarray,
        leaves: np.ndarray,
        depth: int,
        base_margin: np.float32,
        n_features: int,
    ) -> None:
        self.trees = leaves.shape[0]
        self.depth = depth
        self.n_features = n_features
        inner = 2**depth - 1
        # Flat, tree-major: slot i of tree t is at t * inner + i; bottom slot j of tree t (a
        # leaf's value) at t * 2**depth + j. A row is read as [the row with missing values at
        # -inf | the same at +inf], and a node reads the half that sends a missing value its
        # default way (-inf < split: left).
        self._columns = np.where(default_left, features, features + n_features).reshape(-1)
        self._splits = splits.reshape(-1)
        self._leaves = leaves.reshape(-1)
        trees = np.arange(self.trees, dtype=np.intp)[:, None]
        slots = np.arange(inner, dtype=np.intp)[None, :]
        right = 2 * slots + 2  # heap layout: the left child is the one before
        # Where a walk goes from each slot when the value is not below the split (the right
        # child): an inner slot, or from the last inner level a bottom slot's value.
        self._right = np.where(
            right < inner, trees * inner + right, trees * 2**depth + right - inner
        ).reshape(-1)
        self._roots = trees[:, 0] * inner
        self._base_margin = base_margin

    @classmethod
    def from_booster(cls, booster: Any) -> Forest | None:
        """The booster's trees, or ``None`` (logged) if they would not score exactly the same."""
        try:
            forest = cls._from_model(json.loads(booster.save_raw("json")), booster.num_features())
        except _Unsupported as exc:
            logger.info("small batches are scored by XGBoost (%s)", exc)
            return None
        rng = np.random.default_rng(0)
        probe = rng.normal(0.0, 1.0, (_PROBE_ROWS, forest.n_features)).astype(np.float32)
        probe[rng.random(probe.shape) < 0.1] = np.nan
        probe[: _PROBE_ROWS // 2] = np.abs(probe[: _PROBE_ROWS // 2])  # counts, ratios
        if not np.array_equal(forest.predict(probe), booster.inplace_predict(probe)):
            logger.warning("small batches are scored by XGBoost (the trees' walk differs)")
            return None
        return forest

    @classmethod
    def _from_model(cls, model: dict[str, Any], n_features: int) -> Forest:
        learner = model["learner"]
        objective = learner["objective"]["name"]
        booster = learner["gradient_booster"]
        if objective != "binary:logistic" or booster.get("name") != "gbtree":
            raise _Unsupported(f"{booster.get('name')} with {objective}")
        params = learner["learner_model_param"]
        if params.get("num_class", "0") != "0" or params.get("num_target", "1") != "1":
            raise _Unsupported("more than one output")
        trees = booster["model"]["trees"]
        if not trees or any(info != 0 for info in booster["model"].get("tree_info", [])):
            raise _Unsupported("no trees, or trees of another group")
        depth = max(_depth(tree) for tree in trees)
        if depth > MAX_DEPTH:
            raise _Unsupported(f"trees {depth} deep")
        depth = max(depth, 1)
        inner, bottom = 2**depth - 1, 2**depth
        features = np.zeros((len(trees), inner), dtype=np.intp)
        splits = np.zeros((len(trees), inner), dtype=np.float32)
        default_left = np.ones((len(trees), inner), dtype=bool)
        leaves = np.zeros((len(trees), bottom), dtype=np.float32)
        for t, tree in enumerate(trees):
            vector_leaves = int(tree["tree_param"].get("size_leaf_vector", 1)) > 1
            if tree.get("categories_nodes") or vector_leaves:
                raise _Unsupported("categorical splits or vector leaves")
            _place(tree, 0, 0, features[t], splits[t], default_left[t], leaves[t], depth)
        if int(features.max(initial=0)) >= n_features:
            raise _Unsupported("a split on a feature the model does not have")
        base = float(str(params["base_score"]).strip("[]").split(",")[0])
        if not 0.0 < base < 1.0:
            raise _Unsupported(f"base score {base}")
        # XGBoost's own: the probability turned into a margin, in float32.
        margin = np.float32(-math.log(float(np.float32(1.0) / np.float32(base) - np.float32(1.0))))
        return cls(features, splits, default_left, leaves, depth, margin, n_features)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """P(positive) of each row (float32), as the booster's ``inplace_predict``."""
        x = np.asarray(rows, dtype=np.float32)
        n = x.shape[0]
        missing = np.isnan(x)
        both = np.empty((n, 2 * self.n_features), dtype=np.float32)
        both[:, : self.n_features] = np.where(missing, -np.inf, x)
        both[:, self.n_features :] = np.where(missing, np.inf, x)
        flat = both.reshape(-1)
        row_start = (np.arange(n, dtype=np.intp) * (2 * self.n_features))[:, None]
        at = np.broadcast_to(self._roots, (n, self.trees)).copy()
        column = np.empty_like(at)
        for _ in range(self.depth):
            np.take(self._columns, at, out=column)
            if n > 1:
                column += row_start
            left = flat[column] < self._splits[at]
            at = self._right[at]  # after the last level: the index of a bottom slot's value
            at -= left
        leaves = self._leaves[at]
        # Summed in tree order from the base margin, as XGBoost adds them (float32).
        sums = np.empty((n, self.trees + 1), dtype=np.float32)
        sums[:, 0] = self._base_margin
        sums[:, 1:] = leaves
        margin = np.cumsum(sums, axis=1, dtype=np.float32)[:, -1]
        # XGBoost's sigmoid: 1 / (expf(-x) + 1 + 1e-16), in float32, with the C library's expf
        # (numpy's exp rounds differently in the last bit now and then).
        e = np.array([_expf(-m) for m in margin.tolist()], dtype=np.float32)
        with np.errstate(over="ignore"):
            return np.float32(1.0) / (e + np.float32(1.0) + np.float32(1e-16))


class _Unsupported(ValueError):
    pass


def _depth(tree: dict[str, Any]) -> int:
    left, right = tree["left_children"], tree["right_children"]
    deepest, stack = 0, [(0, 0)]
    while stack:
        node, level = stack.pop()
        if left[node] == -1:
            deepest = max(deepest, level)
        else:
            stack += [(left[node], level + 1), (right[node], level + 1)]
    return deepest


def _place(
    tree: dict[str, Any],
    node: int,
    slot: int,
    features: np.ndarray,
    splits: np.ndarray,
    default_left: np.ndarray,
    leaves: np.ndarray,
    depth: int,
) -> None:
    """Write ``node``'s subtree at heap slot ``slot`` of the complete layout."""
    inner = 2**depth - 1
    if tree["left_children"][node] == -1:
        value = tree["split_conditions"][node]  # a leaf's value
        # Every bottom slot under this one (any walk from here ends on the same value).
        level = int(math.log2(slot + 1))
        first = (slot + 1) * 2 ** (depth - level) - 1
        leaves[first - inner : first - inner + 2 ** (depth - level)] = value
        return
    features[slot] = tree["split_indices"][node]
    splits[slot] = tree["split_conditions"][node]
    default_left[slot] = bool(tree["default_left"][node])
    args = (features, splits, default_left, leaves, depth)
    _place(tree, tree["left_children"][node], 2 * slot + 1, *args)
    _place(tree, tree["right_children"][node], 2 * slot + 2, *args)

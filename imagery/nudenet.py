"""NudeNet's 320n detector (MIT, shipped inside the ``nudenet==3.4.2`` wheel) as an image model.

The detector is a YOLOv8-style network: an image letterboxed into a 320x320 square in, for each
anchor a box and 18 class scores out. We run its ONNX file on ONNX Runtime with the package's own
preprocessing, re-done on arrays we decoded ourselves (``imagery.decoding``: untrusted bytes never
reach OpenCV's decoders): pad the image to a square on the right and bottom with black, resize to
320x320 (bilinear, as ``cv2.dnn.blobFromImage``), scale to [0, 1], channels in BGR order (what the
package feeds the network: its ``cvtColor(RGBA2BGR)`` of a BGR image and ``swapRB`` cancel out).
Detections below 0.2 are dropped and overlapping boxes merged (NMS at 0.25/0.45), as the package
does. ``tests/unit/imagery/test_nudenet.py`` pins its answers on fixed images.

Classes map to labels (``schemas.labels``): exposed genitals, anus, female breasts or buttocks
are ``sexual_explicit``; the same parts covered are ``sexual_suggestive``. Faces, feet, bellies,
armpits and bare male chests are detected but named only in ``detections``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from imagery.base import ImageScore
from schemas.labels import SEXUAL_EXPLICIT, SEXUAL_SUGGESTIVE

CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
"""The detector's output classes, in the order of its score columns."""

LABEL_CLASSES: dict[str, frozenset[str]] = {
    SEXUAL_EXPLICIT: frozenset(
        {
            "FEMALE_GENITALIA_EXPOSED",
            "MALE_GENITALIA_EXPOSED",
            "ANUS_EXPOSED",
            "FEMALE_BREAST_EXPOSED",
            "BUTTOCKS_EXPOSED",
        }
    ),
    SEXUAL_SUGGESTIVE: frozenset(
        {
            "FEMALE_GENITALIA_COVERED",
            "ANUS_COVERED",
            "FEMALE_BREAST_COVERED",
            "BUTTOCKS_COVERED",
        }
    ),
}

INPUT_SIZE = 320
MIN_SCORE = 0.2
NMS_SCORE = 0.25
NMS_IOU = 0.45
PACKAGE = "nudenet"


def bundled_model() -> Path:
    """The 320n ONNX file inside the installed nudenet wheel."""
    return Path(str(importlib.resources.files(PACKAGE) / "320n.onnx"))


def preprocess(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """One RGB ``(h, w, 3)`` uint8 image as the network's ``(3, size, size)`` float32 input."""
    height, width = image.shape[:2]
    side = max(height, width)
    square = np.zeros((side, side, 3), dtype=np.uint8)
    square[:height, :width] = image[:, :, ::-1]  # RGB -> BGR
    resized = cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def best_per_class(output: np.ndarray) -> dict[str, float]:
    """The network's output for one image, ``(4 + classes, anchors)``, as the best score of
    every class that survives NMS."""
    rows = output.T  # (anchors, 4 + classes)
    scores = rows[:, 4:]
    best = scores.max(axis=1)
    keep = best >= MIN_SCORE
    if not keep.any():
        return {}
    rows, scores, best = rows[keep], scores[keep], best[keep]
    class_ids = scores.argmax(axis=1)
    boxes = np.stack(
        [rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2, rows[:, 2], rows[:, 3]], axis=1
    )
    chosen = cv2.dnn.NMSBoxes(boxes.tolist(), best.tolist(), NMS_SCORE, NMS_IOU)
    found: dict[str, float] = {}
    for index in np.asarray(chosen, dtype=np.int64).reshape(-1):
        name = CLASSES[int(class_ids[index])]
        found[name] = max(found.get(name, 0.0), round(float(best[index]), 6))
    return found


class NudeNetModel:
    """The 320n detector behind :class:`imagery.base.ImageModel`. Thread-safe ``score``."""

    def __init__(self, path: Path | None = None, *, threads: int = 1) -> None:
        self.path = path or bundled_model()
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            package = importlib.metadata.version(PACKAGE) if path is None else "file"
        except importlib.metadata.PackageNotFoundError:
            package = "unknown"
        self._version = f"nudenet-{package}-320n-{self.sha256[:10]}"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self._version

    def detect(self, images: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """The best score per detected class, for each image."""
        if not images:
            return []
        batch = np.stack([preprocess(image) for image in images])
        with self._lock:
            (output,) = self._session.run(None, {self._input: batch})
        return [best_per_class(output[i]) for i in range(len(images))]

    def score(self, images: Sequence[np.ndarray]) -> list[ImageScore]:
        out = []
        for found in self.detect(images):
            label_scores = {
                label: max((found.get(name, 0.0) for name in names), default=0.0)
                for label, names in LABEL_CLASSES.items()
            }
            out.append(ImageScore(label_scores=label_scores, detections=found))
        return out

"""Known answers of the image model: NudeNet 320n with our preprocessing, on fixed public images
(scikit-image's bundled photographs, scikit-learn's sample image) and a synthetic one. A new
model file, another resize or a channel-order slip changes these numbers."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from sklearn.datasets import load_sample_image

from imagery.base import ImageThresholds
from imagery.nudenet import CLASSES, LABEL_CLASSES, NudeNetModel, preprocess
from schemas.events import Severity
from schemas.labels import IMAGE_LABELS

MODEL_SHA256 = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"


def rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)


def gradient() -> np.ndarray:
    y, x = np.mgrid[0:200, 0:300]
    return np.stack([x * 255 // 299, y * 255 // 199, (x + y) * 255 // 498], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def model() -> NudeNetModel:
    return NudeNetModel()


def test_the_bundled_model_is_the_one_pinned(model: NudeNetModel) -> None:
    assert model.sha256 == MODEL_SHA256
    assert model.version == f"nudenet-3.4.2-320n-{MODEL_SHA256[:10]}"
    assert len(CLASSES) == 18 and set(LABEL_CLASSES) == set(IMAGE_LABELS)


@pytest.mark.parametrize(
    ("name", "image", "expected"),
    [
        ("astronaut", lambda: skimage.data.astronaut(), {"FACE_FEMALE": 0.7203}),
        ("camera", lambda: rgb(skimage.data.camera()), {"FACE_MALE": 0.5756}),
        (
            "horse",
            lambda: rgb(skimage.data.horse().astype(np.uint8) * 255),
            {"FEET_COVERED": 0.639},
        ),
        ("moon", lambda: rgb(skimage.data.moon()), {"BELLY_EXPOSED": 0.3882}),
        ("china", lambda: load_sample_image("china.jpg"), {}),
        ("coffee", lambda: skimage.data.coffee(), {}),
        ("gradient", gradient, {}),
    ],
)
def test_known_answers(model: NudeNetModel, name: str, image, expected: dict[str, float]) -> None:
    (found,) = model.detect([image()])
    assert {k: round(v, 4) for k, v in found.items()} == expected, name
    (score,) = model.score([image()])
    # None of these is a sexual image: no label, SAFE.
    assert score.label_scores == dict.fromkeys(IMAGE_LABELS, 0.0)
    assert ImageThresholds().severity(score) is Severity.SAFE


def test_preprocessing_pads_right_and_bottom_and_feeds_bgr() -> None:
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    image[:, :, 0] = 255  # pure red
    blob = preprocess(image, size=20)
    assert blob.shape == (3, 20, 20) and blob.dtype == np.float32
    # BGR: red is the last channel; the bottom half is padding (black).
    assert blob[2, :10].min() == 1.0 and blob[0].max() == 0.0 and blob[2, 10:].max() == 0.0
    assert float(preprocess(skimage.data.astronaut()).sum()) == pytest.approx(137941.03, abs=0.1)


def test_a_batch_gives_each_image_the_answer_it_gets_alone(model: NudeNetModel) -> None:
    images = [skimage.data.astronaut(), gradient(), rgb(skimage.data.camera())]
    alone = [model.detect([image])[0] for image in images]
    together = model.detect(images)
    for a, b in zip(alone, together, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-4)


def test_thresholds_grade_explicit_high_and_suggestive_low() -> None:
    from imagery.base import ImageScore

    thresholds = ImageThresholds(label=0.5, explicit_high=0.5, explicit_medium=0.35)
    explicit = ImageScore({"sexual_explicit": 0.8, "sexual_suggestive": 0.1})
    borderline = ImageScore({"sexual_explicit": 0.4, "sexual_suggestive": 0.2})
    suggestive = ImageScore({"sexual_explicit": 0.1, "sexual_suggestive": 0.7})
    assert thresholds.severity(explicit) is Severity.HIGH
    assert thresholds.labels(explicit) == ["sexual_explicit"]
    assert thresholds.severity(borderline) is Severity.MEDIUM
    assert thresholds.labels(borderline) == ["sexual_explicit"]
    assert thresholds.severity(suggestive) is Severity.LOW
    assert thresholds.labels(suggestive) == ["sexual_suggestive"]
    assert suggestive.p_unsafe == 0.7

"""The detector stage: real detections on real photos, and the words they give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag.detection import (
    Detection,
    Detector,
    class_evidence,
    decode_detections,
    detector_input,
    object_words,
    suppress_overlaps,
)
from phototag.imaging import decode
from phototag.models import ModelSpec, shipped_models_dir

SKIMAGE = Path(__import__("skimage").__file__).parent / "data"


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dir(shipped_models_dir() / "devise-lite0")  # type: ignore[operator]


@pytest.fixture(scope="module")
def detector(spec: ModelSpec) -> Detector:
    assert spec.detector is not None
    return Detector(spec, spec.detector)


def detect(detector: Detector, spec: ModelSpec, name: str) -> list[Detection]:
    path = SKIMAGE / name
    decoded = decode(path, path.read_bytes(), spec)
    assert decoded.detector_image is not None
    return detector.detect([decoded.detector_image])[0]


@pytest.mark.parametrize(
    ("name", "label"),
    [("astronaut.png", "person"), ("chelsea.png", "cat"), ("horse.png", "horse"),
     ("motorcycle_left.png", "motorcycle"), ("coffee.png", "cup")],
)  # fmt: skip
def test_main_object_found(detector: Detector, spec: ModelSpec, name: str, label: str) -> None:
    found = detect(detector, spec, name)
    assert found and found[0].label == label
    x1, y1, x2, y2 = found[0].box
    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
    assert found[0].area > 0.2  # the main subject fills much of these photos


def test_horse_is_no_dog(detector: Detector, spec: ModelSpec) -> None:
    found = detect(detector, spec, "horse.png")
    horse = max(d.score for d in found if d.label == "horse")
    dog = max((d.score for d in found if d.label == "dog"), default=0.0)
    assert dog < horse / 1.5  # a weak second guess at most; calibration keeps it out of tags


def test_canvas_is_padded_to_the_stride_and_boxes_map_back() -> None:
    img = Image.new("RGB", (360, 240), (10, 10, 10))
    canvas, content = detector_input(img, 320)
    assert canvas.shape == (224, 320, 3) and content == (320, 213)
    assert canvas[213:].max() == 0  # padding below the photo
    raw = np.array([[0, 0, 160, 106.5, 0.9, 0], [0, 0, 10, 10, 0.1, 0]], dtype=np.float32)
    (d,) = decode_detections(raw, content, ["person"], min_score=0.2)
    assert d.box == pytest.approx((0, 0, 0.5, 0.5), abs=1e-3)


def test_one_person_with_two_boxes_counts_once() -> None:
    a = Detection("person", 0.6, (0.1, 0.1, 0.6, 0.9))
    b = Detection("person", 0.3, (0.12, 0.1, 0.62, 0.92))
    c = Detection("person", 0.5, (0.7, 0.1, 0.9, 0.9))
    assert suppress_overlaps([a, c, b]) == [a, c]


def test_people_words_by_count() -> None:
    def people(n: int, area: float = 0.02) -> list[Detection]:
        side = area**0.5
        return [
            Detection("person", 0.9 - i * 0.01, (i * 0.1, 0, i * 0.1 + side, side))
            for i in range(n)
        ]

    assert set(object_words(people(1), {})) >= {"person"}
    assert "people" not in object_words(people(1), {})
    assert "people" in object_words(people(2), {}) and "group" not in object_words(people(2), {})
    assert "group" in object_words(people(4), {}) and "crowd" not in object_words(people(4), {})
    assert "crowd" in object_words(people(9), {})
    portrait = object_words([Detection("person", 0.8, (0.1, 0.0, 0.9, 1.0))], {})
    assert portrait["portrait"] == pytest.approx(0.8)
    small = object_words(people(1, area=0.02), {})
    assert small["portrait"] < 0.1


def test_words_people_type() -> None:
    words = object_words([Detection("couch", 0.7, (0, 0, 1, 1))], {"couch": "sofa"})
    assert words == {"sofa": 0.7}


def test_evidence_is_best_score_per_class() -> None:
    dets = [Detection("cat", 0.4, (0, 0, 1, 1)), Detection("cat", 0.7, (0, 0, 1, 1))]
    ev = class_evidence(dets, ["person", "cat"])
    assert ev.tolist() == pytest.approx([0.0, 0.7])

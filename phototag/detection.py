"""Objects and people, localised: the model's COCO-80 detector stage.

The detector runs on the image the decoder already made (the JPEG draft, a few hundred
pixels on a side), letterboxed to a multiple of 32; photos of one padded shape share one
inference call. It runs in onnxruntime whichever backend embeds the photo (the TensorFlow
backend included), so every backend gets the same detections.

Boxes are stored normalised to the upright photo (0..1, x1 y1 x2 y2), so the web page can
draw them at any size and they survive a resize of the file.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from phototag.errors import ModelError

if TYPE_CHECKING:
    from phototag.models import ModelSpec

#: the network's input sides must be multiples of this (its coarsest feature map)
STRIDE = 32
#: images per inference call: larger batches are no faster on a CPU and hold more memory
RUN_BATCH = 4
#: boxes of one class overlapping more than this are one object
NMS_IOU = 0.5


@dataclass(frozen=True)
class Detection:
    """One detected object: its COCO label, the detector's score, a normalised box."""

    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in 0..1 of the upright photo

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def as_dict(self) -> dict[str, Any]:
        box = [round(v, 4) for v in self.box]
        return {"label": self.label, "score": round(self.score, 4), "box": box}


@dataclass(frozen=True)
class DetectorSpec:
    """What the manifest says about the detector (``detector`` section)."""

    onnx: str
    classes: tuple[str, ...]
    max_side: int = 320
    min_score: float = 0.2
    input_name: str = "images"
    output_name: str = "detections"

    @classmethod
    def from_manifest(cls, section: dict[str, Any]) -> DetectorSpec:
        return cls(
            onnx=str(section["onnx"]),
            classes=tuple(section["classes"]),
            max_side=int(section.get("max_side", 320)),
            min_score=float(section.get("min_score", 0.2)),
            input_name=str(section.get("input", "images")),
            output_name=str(section.get("output", "detections")),
        )


def padded_size(width: int, height: int, max_side: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(content size, padded canvas size) for an image fitted into ``max_side``."""
    scale = max_side / max(width, height)
    w = max(1, round(width * scale))
    h = max(1, round(height * scale))
    pad_w = -(-w // STRIDE) * STRIDE
    pad_h = -(-h // STRIDE) * STRIDE
    return (w, h), (pad_w, pad_h)


def detector_input(img: Image.Image, max_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """An upright RGB image -> (uint8 canvas [H,W,3] padded to the stride, content size).

    The image is fitted into ``max_side`` on its long side (one resampling, from the draft
    the decoder already made) and padded at the right and bottom with black."""
    (w, h), (pw, ph) = padded_size(img.width, img.height, max_side)
    small = img if (w, h) == img.size else img.resize((w, h), Image.Resampling.BILINEAR)
    canvas = np.zeros((ph, pw, 3), dtype=np.uint8)
    canvas[:h, :w] = np.asarray(small, dtype=np.uint8)
    return canvas, (w, h)


def decode_detections(
    raw: np.ndarray, content: tuple[int, int], classes: Sequence[str], min_score: float
) -> list[Detection]:
    """One photo's rows ``[K, 6]`` (x1, y1, x2, y2 in input pixels, score, class) ->
    ``Detection``s above ``min_score``, boxes clipped and normalised, best first."""
    w, h = content
    out = []
    for x1, y1, x2, y2, score, cls in np.asarray(raw, dtype=np.float64):
        if score < min_score:
            continue
        index = int(round(cls))
        if not 0 <= index < len(classes):
            continue
        box = (
            float(np.clip(x1 / w, 0, 1)), float(np.clip(y1 / h, 0, 1)),
            float(np.clip(x2 / w, 0, 1)), float(np.clip(y2 / h, 0, 1)),
        )  # fmt: skip
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            continue
        out.append(Detection(classes[index], float(score), box))
    out.sort(key=lambda d: -d.score)
    return suppress_overlaps(out)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def suppress_overlaps(dets: list[Detection], limit: float = NMS_IOU) -> list[Detection]:
    """Per class, drop a box that overlaps a better one of its class by more than ``limit``
    (CenterNet's peaks can put two boxes on one person, which would count as two)."""
    kept: list[Detection] = []
    for d in dets:  # best first
        if all(k.label != d.label or iou(k.box, d.box) <= limit for k in kept):
            kept.append(d)
    return kept


def class_evidence(detections: Sequence[Detection], classes: Sequence[str]) -> np.ndarray:
    """[C] per class: the best score of that class's detections (0 when none). The DeViSE
    head reads this beside the backbone features, so what is in a photo (bed, lamp)
    informs the scene words (bedroom) through weights learnt from labelled photos."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros(len(classes), dtype=np.float32)
    for d in detections:
        i = index.get(d.label)
        if i is not None and d.score > out[i]:
            out[i] = d.score
    return out


class Detector:
    """The detector's onnxruntime session (created on first use, one per process)."""

    def __init__(self, model: ModelSpec, spec: DetectorSpec, *, threads: int = 1) -> None:
        self.model = model
        self.spec = spec
        self.threads = threads
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = self._create_session()
        return self._session

    def _create_session(self) -> Any:
        from phototag.backends import cpu_session

        path = self.model.path / self.spec.onnx
        try:
            return cpu_session(path, self.threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: cannot load the detector ({exc})") from None

    def detect(
        self, images: Sequence[tuple[np.ndarray, tuple[int, int]]]
    ) -> list[list[Detection]]:
        """Detections for each (canvas, content size); one inference call per canvas shape."""
        out: list[list[Detection]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (canvas, _content) in enumerate(images):
            by_shape.setdefault(canvas.shape, []).append(i)
        groups = [
            members[k : k + RUN_BATCH]
            for members in by_shape.values()
            for k in range(0, len(members), RUN_BATCH)
        ]
        for members in groups:
            batch = np.stack([images[i][0] for i in members]).astype(np.float32)
            (raw,) = self.session.run([self.spec.output_name], {self.spec.input_name: batch})
            for row, i in zip(raw, members, strict=True):
                out[i] = decode_detections(
                    row, images[i][1], self.spec.classes, self.spec.min_score
                )
        return out


#: how many people make a group and a crowd (the n-th best person box is their evidence)
GROUP_AT = 3
CROWD_AT = 7
#: a portrait: the largest person box covers at least this share of the frame ...
PORTRAIT_AREA = 0.35
#: ... and no other person box is at least this share of it
PORTRAIT_ALONE = 0.5


def object_words(
    objects: Sequence[Detection], words: dict[str, str], *, person: str = "person"
) -> dict[str, float]:
    """Raw evidence for tag words from the detected objects: each class's word (``words``
    maps COCO labels to the words people type: couch -> sofa) gets its best box score, and
    the person boxes give ``people`` (the 2nd best person's score), ``group`` (the 3rd),
    ``crowd`` (the 7th) and ``portrait`` (the best, scaled by how much of the frame one
    person fills). ``calibration.py`` turns these into probabilities with thresholds."""
    out: dict[str, float] = {}
    for o in objects:
        word = words.get(o.label, o.label)
        if o.score > out.get(word, 0.0):
            out[word] = o.score
    people = sorted((o for o in objects if o.label == person), key=lambda o: -o.score)
    if not people:
        return out
    scores = [o.score for o in people]
    if len(scores) >= 2:
        out["people"] = scores[1]
    if len(scores) >= GROUP_AT:
        out["group"] = scores[GROUP_AT - 1]
    if len(scores) >= CROWD_AT:
        out["crowd"] = scores[CROWD_AT - 1]
    largest = max(people, key=lambda o: o.area * o.score)
    others = [o.area for o in people if o is not largest and o.score >= 0.3]
    if not any(a >= PORTRAIT_ALONE * largest.area for a in others):
        out["portrait"] = largest.score * min(1.0, largest.area / PORTRAIT_AREA)
    return out

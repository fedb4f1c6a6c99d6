"""Frozen features of the labelled training photos, for ``tools/build_head.py``.

Each photo is decoded the way ``phototag index`` decodes it (JPEG draft, EXIF-upright),
then seen in several views: itself, mirrored, and random crops (70-95 % of the area) and
their mirror images, which is what photos of one subject in a real library differ by.
Each view gives the backbone's pooled features and logits and the detector's per-class
evidence. Results are cached per photo content in ``--cache`` so a rebuild that changes
only the head costs nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from phototag.detection import (
    Detection,
    Detector,
    DetectorSpec,
    class_evidence,
    detector_input,
)
from phototag.imaging import open_image
from phototag.models import ModelSpec
from phototag.preprocess import draft_size, views

#: views per photo: the photo, its mirror image, then crops (and their mirror images)
N_VIEWS = 6


@dataclass
class PhotoFeatures:
    features: np.ndarray  # [V, 1280] pooled backbone features (not normalised)
    logits: np.ndarray  # [V, 1000]
    evidence: np.ndarray  # [V, 80] best detector score per COCO class
    objects: list[Detection]  # the detector's objects in the first view (the photo itself)


def augmented(img: Image.Image, rng: np.random.Generator, n: int) -> list[Image.Image]:
    out = [img, ImageOps.mirror(img)]
    while len(out) < n:
        w, h = img.size
        area = rng.uniform(0.70, 0.95)
        aspect = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
        cw = int(min(w, round(w * np.sqrt(area * aspect))))
        ch = int(min(h, round(h * np.sqrt(area / aspect))))
        left = int(rng.integers(0, w - cw + 1))
        top = int(rng.integers(0, h - ch + 1))
        crop = img.crop((left, top, left + cw, top + ch))
        out.append(crop)
        if len(out) < n:
            out.append(ImageOps.mirror(crop))
    return out


class FeatureExtractor:
    def __init__(self, spec: ModelSpec, cache: Path, *, n_views: int = N_VIEWS) -> None:
        from phototag_onnx import OnnxBackend

        self.spec = spec
        self.backend = OnnxBackend(spec, threads=2)
        section = spec.manifest.get("detector")
        self.detector_spec = DetectorSpec.from_manifest(section) if section else None
        self.detector = (
            Detector(spec, self.detector_spec, threads=2) if self.detector_spec else None
        )
        self.cache = cache
        self.n_views = n_views
        cache.mkdir(parents=True, exist_ok=True)

    def _key(self, data: bytes) -> str:
        h = hashlib.blake2b(data, digest_size=12)
        h.update(self.spec.version.encode())
        h.update(str(self.n_views).encode())
        return h.hexdigest()

    def extract(self, path: Path) -> PhotoFeatures:
        data = path.read_bytes()
        cached = self.cache / f"{self._key(data)}.npz"
        if cached.is_file():
            with np.load(cached) as z:
                objects = [
                    Detection(str(label), float(score), tuple(map(float, box)))  # type: ignore[arg-type]
                    for label, score, box in zip(z["labels"], z["scores"], z["boxes"], strict=True)
                ]
                return PhotoFeatures(z["features"], z["logits"], z["evidence"], objects)
        img = open_image(path, data, min_short_side=draft_size(self.spec))[0]
        seed = int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "little")
        images = augmented(img, np.random.default_rng(seed), self.n_views)
        pixels = np.concatenate([views(im, self.spec) for im in images])
        out = self.backend.run_batch(pixels)
        if self.detector is not None and self.detector_spec is not None:
            spec = self.detector_spec
            dets = self.detector.detect([detector_input(im, spec.max_side) for im in images])
            evidence = np.stack([class_evidence(d, spec.classes) for d in dets])
        else:
            dets = [[]]
            evidence = np.zeros((len(images), 80), dtype=np.float32)
        result = PhotoFeatures(
            out["features"].astype(np.float32), out["logits"].astype(np.float32), evidence,
            dets[0],
        )  # fmt: skip
        np.savez(
            cached, features=result.features, logits=result.logits, evidence=evidence,
            labels=np.array([d.label for d in dets[0]], dtype=str),
            scores=np.array([d.score for d in dets[0]], dtype=np.float32),
            boxes=np.array([d.box for d in dets[0]], dtype=np.float32).reshape(-1, 4),
        )  # fmt: skip
        return result

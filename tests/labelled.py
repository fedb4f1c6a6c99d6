"""Labelled photo folders built from real sample photos, for training tests and benchmarks.

No labelled photo set can be had offline, so each label gets one or more real source
photos (scikit-image's sample data, the interior photos wheel) and many augmented
copies: random crops, flips, scale, colour jitter and JPEG re-encoding, which is what
the photos of one subject in a real library differ by. When a label has several source
photos, held-out copies come from source photos the training copies never saw.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"
INTERIORS = Path(__import__("interior_photos").__file__).parent / "images"


def interiors() -> list[Path]:
    return sorted(INTERIORS.glob("*.jpg"))


#: label -> real source photos of it
SOURCES: dict[str, list[Path]] = {
    "astronaut": [SKIMAGE_DATA / "astronaut.png"],
    "galaxy": [SKIMAGE_DATA / "hubble_deep_field.jpg"],
    "cat": [SKIMAGE_DATA / "chelsea.png"],
    "coffee": [SKIMAGE_DATA / "coffee.png"],
    "rocket": [SKIMAGE_DATA / "rocket.jpg"],
    "motorcycle": [SKIMAGE_DATA / "motorcycle_left.png", SKIMAGE_DATA / "motorcycle_right.png"],
    "room": interiors(),
}


def augment(img: Image.Image, rng: np.random.Generator, *, max_side: int = 640) -> bytes:
    """One random variant of ``img`` as JPEG bytes."""
    img = img.convert("RGB")
    w, h = img.size
    area = rng.uniform(0.45, 1.0) * w * h
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, max(16, round(np.sqrt(area * aspect)))))
    ch = int(min(h, max(16, round(np.sqrt(area / aspect)))))
    left = int(rng.integers(0, w - cw + 1))
    top = int(rng.integers(0, h - ch + 1))
    img = img.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    scale = rng.uniform(0.6, 1.0) * max_side / max(img.size)
    if scale < 1.0:
        size = (max(16, round(img.width * scale)), max(16, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(float(rng.uniform(0.75, 1.25)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=int(rng.integers(55, 95)))
    return out.getvalue()


def _open(path: Path, max_side: int = 1024) -> Image.Image:
    with Image.open(path) as img:
        img.draft("RGB", (max_side, max_side))
        img = img.convert("RGB")
    img.thumbnail((max_side, max_side))
    return img


@dataclass
class LabelledSet:
    train: Path  # one folder per label
    held_out: dict[str, list[Path]]  # label -> photos never trained on


def build_labelled_set(
    root: Path,
    labels: Sequence[str],
    *,
    train_per_label: int,
    held_out_per_label: int,
    seed: int = 0,
) -> LabelledSet:
    """Write ``root/train/<label>/*.jpg`` and ``root/held_out/<label>/*.jpg``.

    With several source photos, a quarter of them (at least one) feed only the held-out
    copies; a label with one source photo is held out on fresh augmentations of it.
    """
    rng = np.random.default_rng(seed)
    held: dict[str, list[Path]] = {}
    for label in labels:
        sources = list(SOURCES[label])
        order = rng.permutation(len(sources))
        n_held = max(1, len(sources) // 4) if len(sources) > 1 else 0
        held_src = [sources[i] for i in order[:n_held]] or sources
        train_src = [sources[i] for i in order[n_held:]] or sources
        held[label] = []
        for split, srcs, count in (
            ("train", train_src, train_per_label),
            ("held_out", held_src, held_out_per_label),
        ):
            folder = root / split / label.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            images = [_open(p) for p in srcs]
            for i in range(count):
                img = images[i % len(images)]
                path = folder / f"{label.replace(' ', '_')}-{i:03d}.jpg"
                path.write_bytes(augment(img, rng))
                if split == "held_out":
                    held[label].append(path)
    return LabelledSet(root / "train", held)

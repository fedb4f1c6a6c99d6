"""An upright RGB image -> the model's input views.

The manifest names the views. A centre crop is what the classifier was trained on,
but wide interiors lose their sides to it, so the shipped model also looks at the
whole frame; the backend averages the views' probabilities and features.

View kinds:
  center  short side to ``resize``, centre crop ``size`` (the training crop)
  full    the whole frame squeezed to ``size`` x ``size`` (nothing cut, aspect lost)
  pad     the whole frame fitted into ``size`` x ``size``, padded with grey (aspect kept)
  start   short side to ``size``, the square at the top/left end of the long side
  end     short side to ``size``, the square at the bottom/right end of the long side
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from phototag.models import ModelSpec

VIEW_KINDS = ("center", "full", "pad", "start", "end")


def draft_size(spec: ModelSpec) -> int:
    """The smallest short side the decoder may scale a photo down to (JPEG draft mode).

    The input size, not ``resize``: the centre view takes the middle ``size/resize`` of the
    short side, so a 1/8-scale DCT decode of a camera photo (240 px) still covers it at
    full detail, and entropy decoding at 1/8 is the cheapest decode there is.
    """
    return spec.input_size


def _center_box(img: Image.Image, spec: ModelSpec) -> tuple[float, float, float, float]:
    """The region "short side to ``resize``, centre crop ``size``" keeps, in ``img``'s pixels."""
    w, h = img.size
    side = min(w, h) * spec.input_size / spec.resize
    return ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)


def _short_side_to(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    scale = side / min(w, h)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return img if size == img.size else img.resize(size, Image.Resampling.BICUBIC)


def _square_at(img: Image.Image, size: int, where: float) -> Image.Image:
    """The size x size square at ``where`` along the long side (0 start, 0.5 centre, 1 end)."""
    w, h = img.size
    left = round((w - size) * where) if w > h else (w - size) // 2
    top = round((h - size) * where) if h >= w else (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def view(img: Image.Image, kind: str, spec: ModelSpec) -> Image.Image:
    """One view of ``img`` as a ``size`` x ``size`` RGB image."""
    size = spec.input_size
    if kind == "center":  # one resampling of just the kept region: same view, less work
        return img.resize((size, size), Image.Resampling.BICUBIC, box=_center_box(img, spec))
    if kind == "full":
        return img.resize((size, size), Image.Resampling.BICUBIC)
    if kind == "pad":
        w, h = img.size
        scale = size / max(w, h)
        fitted = img.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC
        )
        grey = round(spec.mean)
        canvas = Image.new("RGB", (size, size), (grey, grey, grey))
        canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
        return canvas
    if kind in ("start", "end"):
        return _square_at(_short_side_to(img, size), size, 0.0 if kind == "start" else 1.0)
    raise ValueError(f"unknown view kind '{kind}' (known: {', '.join(VIEW_KINDS)})")


def to_pixels(images: list[Image.Image], spec: ModelSpec) -> np.ndarray:
    """RGB images of the input size -> [V,3,S,S] float32, (x - mean) / std."""
    stack = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    stack = (stack - np.float32(spec.mean)) * np.float32(1.0 / spec.std)
    return np.ascontiguousarray(stack.transpose(0, 3, 1, 2))


def views(img: Image.Image, spec: ModelSpec) -> np.ndarray:
    """The manifest's views of an upright RGB image: [V,3,S,S] float32."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    if len(spec.views) > 1 and min(img.size) > spec.resize:  # one shared big resize (~2x faster)
        img = _short_side_to(img, spec.resize)
    return to_pixels([view(img, kind, spec) for kind in spec.views], spec)

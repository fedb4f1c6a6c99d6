"""Decoding photos into model input, defensively.

Decoding dominates indexing time, so JPEGs are scaled down in the DCT domain
(``Image.draft``) to just the size the model needs. Every way a file can be bad
becomes an ``UnreadableImage`` with a short, lowercase reason.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from phototag.errors import UnreadableImage

if TYPE_CHECKING:
    from phototag.models import ModelSpec

#: images smaller than this on their short side carry too little to tag
MIN_SIDE = 8
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003
_CREATE_DATE = 0x9004  # DateTimeDigitized
_DATETIME = 0x0132
_MODEL = 0x0110
_GPS_LATITUDE, _GPS_LONGITUDE = 0x0002, 0x0004


@dataclass(frozen=True)
class Facts:
    """What a photo's header says about it, read once with the pixels (``search --after``...)."""

    taken_at: str | None = None  # ISO 8601 from EXIF, when the camera wrote one
    camera: str | None = None  # EXIF Model
    has_gps: bool = False  # EXIF GPS latitude and longitude are present


@dataclass
class Decoded:
    views: np.ndarray  # [V,3,S,S] float32, ready for the backend
    width: int  # of the stored image, before orientation
    height: int
    taken_at: str | None  # ISO 8601 from EXIF, when the camera wrote one
    facts: Facts = Facts()
    #: the detector's input made from the same draft (uint8 canvas, content size), if any
    detector_image: tuple[np.ndarray, tuple[int, int]] | None = None


def content_hash(data: bytes) -> str:
    """Identity of a file's bytes: lets a moved or renamed photo keep its vectors."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _iso(raw: object) -> str | None:
    """EXIF ``2019:06:01 12:00:00`` -> ``2019-06-01T12:00:00``; None for blanks and zeros."""
    if not isinstance(raw, str) or len(raw.strip()) < 19:
        return None
    date, _, time = raw.strip().partition(" ")
    iso = f"{date.replace(':', '-')}T{time[:8]}"
    return iso if iso[:4].isdigit() and iso[:4] != "0000" else None


def _text(raw: object) -> str | None:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return None
    text = " ".join(raw.replace("\x00", " ").split())
    return text or None


def read_facts(img: Image.Image) -> Facts:
    """Date taken (DateTimeOriginal, else CreateDate, else IFD0 DateTime), camera model and
    GPS presence from an opened image's EXIF; a broken EXIF block gives empty facts."""
    try:
        exif = img.getexif()
        sub = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # broken EXIF must not cost the photo
        return Facts()
    taken = next(
        (iso for raw in (sub.get(_DATETIME_ORIGINAL), sub.get(_CREATE_DATE), exif.get(_DATETIME))
         if (iso := _iso(raw))),
        None,
    )  # fmt: skip
    has_gps = gps.get(_GPS_LATITUDE) is not None and gps.get(_GPS_LONGITUDE) is not None
    return Facts(taken_at=taken, camera=_text(exif.get(_MODEL)), has_gps=has_gps)


def facts_of(path: Path) -> Facts:
    """The facts of a file from its header alone (no pixels decoded): for catalog rows
    indexed before the catalog kept them."""
    try:
        with Image.open(path) as img:
            return read_facts(img)
    except Exception:  # unreadable now: the next real index run says why
        return Facts()


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode (CMYK, 16-bit, palette, alpha, float) to 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


_heif_ready = False


def _enable_heif(data: bytes) -> None:
    """HEIC/HEIF/AVIF (ISO BMFF, ``ftyp`` box) need pillow-heif's opener; load it on first use."""
    global _heif_ready
    if _heif_ready or data[4:8] != b"ftyp":
        return
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - a dependency, but keep the run going without it
        return
    _heif_ready = True


def open_image(
    path: Path, data: bytes, *, min_short_side: int
) -> tuple[Image.Image, int, int, str | None]:
    """Decode ``data`` to an upright RGB image at least ``min_short_side`` on its short side."""
    img, width, height, facts = _open(path, data, min_short_side=min_short_side)
    return img, width, height, facts.taken_at


def _open(path: Path, data: bytes, *, min_short_side: int) -> tuple[Image.Image, int, int, Facts]:
    if not data:
        raise UnreadableImage(path, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _enable_heif(data)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if min(width, height) < MIN_SIDE:
                raise UnreadableImage(path, f"image too small to tag ({width}x{height})")
            if img.format == "JPEG":
                img.draft("RGB", (min_short_side, min_short_side))
            facts = read_facts(img)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img), width, height, facts
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImage(path, "image too large (decompression bomb limit)") from None
    except UnidentifiedImageError:
        raise UnreadableImage(path, "not a readable image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).split("\n")[0].lower() or type(exc).__name__
        raise UnreadableImage(path, f"not a readable image ({reason})") from None
    except MemoryError:
        raise UnreadableImage(path, "image too large to decode") from None


def decode(path: Path, data: bytes, spec: ModelSpec) -> Decoded:
    """Bytes of a photo to the views the model expects."""
    from phototag.detection import detector_input
    from phototag.preprocess import draft_size, views

    img, width, height, facts = _open(path, data, min_short_side=draft_size(spec))
    try:
        stack = views(img, spec)
        detector = spec.detector
        canvas = detector_input(img, detector.max_side) if detector is not None else None
    except (OSError, ValueError) as exc:
        raise UnreadableImage(path, f"could not prepare image ({exc})") from None
    return Decoded(
        views=stack, width=width, height=height, taken_at=facts.taken_at, facts=facts,
        detector_image=canvas,
    )

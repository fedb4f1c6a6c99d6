"""Thumbnails and previews made on demand, cached by content hash.

A photo's bytes identify its picture, so the cache key is the catalog's content hash
plus the size: a moved photo keeps its thumbnail, a changed one gets a new one. Files
are written to a temp name and renamed into place, so a reader never sees half a JPEG
and two requests racing for the same thumbnail both get a whole one.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from phototag.errors import PhotoError

log = logging.getLogger(__name__)

THUMB_SIZE = 320
PREVIEW_SIZE = 1600
_QUALITY = {THUMB_SIZE: 82, PREVIEW_SIZE: 86}


@dataclass(frozen=True)
class Picture:
    path: Path  # the cached JPEG
    generated: bool  # made by this call (cold), else found in the cache (warm)


def default_thumbnail_dir() -> Path:
    from phototag.words import cache_dir

    return cache_dir() / "thumbnails"


class Thumbnails:
    """Upright JPEGs at most ``size`` pixels on their long side, one file per hash and size."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder else default_thumbnail_dir()

    def cached_path(self, content_hash: str, size: int) -> Path:
        return self.folder / content_hash[:2] / f"{content_hash}-{size}.jpg"

    def get(self, photo: Path, content_hash: str | None, size: int = THUMB_SIZE) -> Picture:
        """The cached picture of ``photo``, made first if needed.

        Raises ``PhotoError`` when the photo cannot be read or decoded (the caller shows a
        placeholder); nothing is cached for it then, so a repaired file shows up.
        """
        if content_hash:
            cached = self.cached_path(content_hash, size)
            if cached.is_file():
                return Picture(cached, False)
        else:  # not hashed yet: key by path and file state instead
            import hashlib

            st = _stat(photo)
            key = f"{photo}\0{st.st_size}\0{st.st_mtime_ns}".encode("utf-8", "surrogateescape")
            cached = self.cached_path(hashlib.blake2b(key, digest_size=16).hexdigest(), size)
            if cached.is_file():
                return Picture(cached, False)
        data = render(photo, size)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return Picture(cached, True)


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise PhotoError(path, "file not found") from None
    except OSError as exc:
        raise PhotoError(path, (exc.strerror or str(exc)).lower()) from None


def render(photo: Path, size: int) -> bytes:
    """JPEG bytes of ``photo`` upright and scaled to fit ``size`` x ``size``."""
    from PIL import Image

    from phototag.imaging import open_image
    from phototag.indexer import read_file

    try:
        data, _st = read_file(photo)
    except FileNotFoundError:
        raise PhotoError(photo, "file not found") from None
    except OSError as exc:
        raise PhotoError(photo, (exc.strerror or str(exc)).lower()) from None
    img, _w, _h, _taken = open_image(photo, data, min_short_side=size)
    img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=_QUALITY.get(size, 82), optimize=False, progressive=False)
    return out.getvalue()

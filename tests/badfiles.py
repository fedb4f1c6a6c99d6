"""A folder of every kind of bad (or merely awkward) input the issue lists."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import INTERIORS, SKIMAGE_DATA

#: name -> expected outcome: "ok" (indexed) or a fragment of the skip reason
EXPECTED = {
    "truncated.jpg": "readable",
    "empty.jpg": "empty file",
    "garbage.jpg": "not a readable image",
    "text.jpg": "not a readable image",
    "png-named.jpg": "ok",
    "cmyk.jpg": "ok",
    "sixteen-bit.png": "ok",
    "alpha.png": "ok",
    "palette.png": "ok",
    "tiny.png": "too small",
    "bomb.png": "decompression bomb",
    "fifo.jpg": "not a regular file",
    "folder.jpg/inside.png": "ok",
    "caf\u00e9\nnew line.jpg": "ok",
    "rotated.jpg": "ok",
}


def make_bad_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    photo = sorted(INTERIORS.glob("*.jpg"))[0].read_bytes()
    chelsea = Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB")
    (folder / "truncated.jpg").write_bytes(photo[: len(photo) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(np.random.default_rng(1).bytes(5000))
    (folder / "text.jpg").write_text("this is not a photo\n")
    chelsea.save(folder / "png-named.jpg", format="PNG")
    chelsea.convert("CMYK").save(folder / "cmyk.jpg")
    arr16 = (np.asarray(chelsea.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(arr16).save(folder / "sixteen-bit.png")
    rgba = chelsea.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    chelsea.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.new("RGB", (1, 1), "red").save(folder / "tiny.png")
    Image.new("1", (20000, 20000)).save(folder / "bomb.png")
    os.mkfifo(folder / "fifo.jpg")
    (folder / "folder.jpg").mkdir()
    chelsea.save(folder / "folder.jpg" / "inside.png")
    chelsea.save(folder / "caf\u00e9\nnew line.jpg")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    # an upright photo stored sideways with an EXIF orientation tag (6 = rotate 90 cw)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    chelsea.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", exif=exif)
    (folder / "rotated.jpg").write_bytes(buf.getvalue())
    return folder

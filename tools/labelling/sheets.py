"""Contact sheets for labelling photos by looking at them.

    python tools/labelling/sheets.py OUT_DIR PHOTO_DIR [PHOTO_DIR ...] [--per-sheet 9]

Each sheet is a grid of upright thumbnails, each numbered; ``OUT_DIR/sheets.json`` maps
``sheet-NNN.png`` to the photo keys (``<folder name>/<file name>``) in cell order. A person
(or a helper) looks at a sheet and writes, per photo, its main subject(s) and every other
word that is plainly true of it (``tools/labelling/words.txt`` lists the usual words).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def photo_keys(dirs: list[Path]) -> list[tuple[str, Path]]:
    """(``folder/file``, path) of every photo in the folders (not recursive), sorted."""
    found = []
    for d in dirs:
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file():
                found.append((f"{d.name}/{p.name}", p))
    return found


def thumbnail(path: Path, side: int) -> Image.Image:
    img = Image.open(path)
    img.draft("RGB", (side, side))
    img = ImageOps.exif_transpose(img).convert("RGB")
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img


def sheet(
    items: list[tuple[str, Path]], first: int, *, cols: int = 3, side: int = 380
) -> Image.Image:
    rows = (len(items) + cols - 1) // cols
    pad = 28
    canvas = Image.new("RGB", (cols * (side + 8), rows * (side + pad + 8)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=20)
    for i, (key, path) in enumerate(items):
        x, y = (i % cols) * (side + 8), (i // cols) * (side + pad + 8)
        try:
            thumb = thumbnail(path, side)
        except OSError:
            thumb = Image.new("RGB", (side, side), (200, 0, 0))
        canvas.paste(thumb, (x + (side - thumb.width) // 2, y + pad))
        draw.text((x + 4, y + 2), f"#{first + i}  {key.split('/', 1)[1][:28]}", fill=(0, 0, 0),
                  font=font)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("dirs", type=Path, nargs="+")
    parser.add_argument("--per-sheet", type=int, default=9)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    items = photo_keys(args.dirs)
    index: dict[str, list[str]] = {}
    for n, start in enumerate(range(0, len(items), args.per_sheet)):
        chunk = items[start : start + args.per_sheet]
        name = f"sheet-{n:03d}.png"
        sheet(chunk, start).save(args.out / name)
        index[name] = [k for k, _ in chunk]
    (args.out / "sheets.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"{len(items)} photos on {len(index)} sheets in {args.out}")


if __name__ == "__main__":
    main()

"""Contact sheets: thumbnails in a grid, each captioned (file name, score, top tags).

Thumbnails are decoded like the indexer decodes (JPEG draft mode, EXIF orientation applied,
any mode to RGB) and fitted into their cell with the aspect kept, so photos are upright and
never distorted. Captions use the font that ships with Pillow. A photo that cannot be read
gets a grey cell that says why; the sheet is still written.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image, ImageDraw, ImageFont

from phototag.errors import BadQuery, PhototagError, UnreadableImage

if TYPE_CHECKING:
    from phototag.duplicates import Group
    from phototag.library import Hit, PhotoTags

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
CELL = 240
FONT_SIZE = 13
PAD = 8
LINE_GAP = 3
BACKGROUND = (250, 250, 250)
INK = (30, 30, 30)
FAINT = (110, 110, 110)


@dataclass
class Tile:
    path: Path
    lines: list[str] = field(default_factory=list)  # the first in ink, the rest fainter


def sheet_format(target: str | Path) -> str:
    """The image format for ``target`` ("-": PNG on stdout); a usage error for others."""
    if str(target) == "-":
        return "PNG"
    found = FORMATS.get(Path(target).suffix.lower())
    if found is None:
        raise BadQuery(f"--grid {target}: name a .jpg, .jpeg or .png file, or - for stdout")
    return found


def _thumbnail(path: Path, cell: int) -> Image.Image | str:
    from phototag.imaging import open_image
    from phototag.indexer import read_file

    try:
        data, _st = read_file(path)
        img, _w, _h, _taken = open_image(path, data, min_short_side=cell)
    except UnreadableImage as exc:
        return exc.reason
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    return img


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def render(
    tiles: Sequence[Tile], *, cell: int = CELL, columns: int | None = None, lines: int = 3
) -> Image.Image:
    """The sheet: ``columns`` (default: up to 6, roughly square) cells of ``cell`` pixels."""
    if not tiles:
        raise PhototagError("nothing to put on a contact sheet")
    columns = columns or max(1, min(6, len(tiles), round(len(tiles) ** 0.5 + 0.5)))
    rows = -(-len(tiles) // columns)
    font = ImageFont.load_default(size=FONT_SIZE)
    line_height = FONT_SIZE + LINE_GAP
    tile_w, tile_h = cell + 2 * PAD, cell + 2 * PAD + lines * line_height
    sheet = Image.new("RGB", (columns * tile_w, rows * tile_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix="phototag-thumb") as pool:
        thumbs = list(pool.map(lambda t: _thumbnail(t.path, cell), tiles))
    for k, (tile, thumb) in enumerate(zip(tiles, thumbs, strict=True)):
        x, y = (k % columns) * tile_w + PAD, (k // columns) * tile_h + PAD
        if isinstance(thumb, str):
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(200, 200, 200))
            draw.text((x + 6, y + cell // 2), _fit(draw, thumb, font, cell - 12), fill=INK,
                      font=font)  # fmt: skip
        else:
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        for n, text in enumerate(tile.lines[:lines]):
            draw.text((x, y + cell + 4 + n * line_height), _fit(draw, text, font, cell),
                      fill=INK if n == 0 else FAINT, font=font)  # fmt: skip
    return sheet


def write(
    tiles: Sequence[Tile], target: str | Path, *, cell: int = CELL, lines: int = 3,
    stdout: BinaryIO | None = None,
) -> None:  # fmt: skip
    """Render and save to ``target`` (a .jpg/.jpeg/.png path, or "-" for stdout)."""
    fmt = sheet_format(target)
    sheet = render(tiles, cell=cell, lines=lines, columns=1 if len(tiles) == 1 else None)
    options = {"quality": 90} if fmt == "JPEG" else {"optimize": False}
    if str(target) == "-":
        buffer = io.BytesIO()
        sheet.save(buffer, fmt, **options)
        out = stdout or sys.stdout.buffer
        out.write(buffer.getvalue())
        out.flush()
        return
    path = Path(target)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sheet.save(tmp, fmt, **options)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PhototagError(
            f"cannot write contact sheet {path}: {(exc.strerror or str(exc)).lower()}"
        ) from None


def hit_tiles(hits: Sequence[Hit]) -> list[Tile]:
    """Tiles for search hits: name, score, top tags."""
    return [
        Tile(h.path, [h.path.name, f"score {h.score:.3f}", ", ".join(h.tags[:4])]) for h in hits
    ]


def tag_tiles(result: PhotoTags) -> list[Tile]:
    """One photo with its tags and their scores."""
    lines = [result.path.name] + [f"{t.score:.3f}  {t.tag}" for t in result.tags]
    return [Tile(result.path, lines if len(lines) > 1 else [*lines, "no tags"])]


def group_tiles(groups: Sequence[Group]) -> list[Tile]:
    """Every photo of every duplicate group, in order, captioned with its group."""
    tiles = []
    for n, group in enumerate(groups, start=1):
        for k, photo in enumerate(group.photos):
            role = "best" if k == 0 else f"score {photo.score:.3f}"
            size = f"{photo.width}x{photo.height}" if photo.width else ""
            tiles.append(
                Tile(photo.path, [photo.path.name, f"group {n} {group.kind}, {role}",
                                  " ".join(x for x in (size, (photo.date or "")[:10]) if x)])
            )  # fmt: skip
    return tiles

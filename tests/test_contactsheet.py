"""Contact sheets: upright, undistorted thumbnails with readable captions, from real files."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag.contactsheet import CELL, PAD, Tile, render, write
from tests.conftest import INTERIORS, env_for_subprocess, run_cli


def _box(sheet: Image.Image, cell_index: int, columns: int) -> tuple[int, int, int, int]:
    """The bounding box of what is not background inside one thumbnail cell."""
    tile_w = CELL + 2 * PAD
    tile_h = tile_w + 3 * 16
    x, y = (cell_index % columns) * tile_w + PAD, (cell_index // columns) * tile_h + PAD
    cell = np.asarray(sheet.crop((x, y, x + CELL, y + CELL)).convert("L")).astype(int)
    rows, cols = np.nonzero(np.abs(cell - 250) > 20)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def test_thumbnails_are_upright_and_keep_their_aspect(tmp_path: Path) -> None:
    # a 400x100 photo stored sideways (100x400 pixels) with EXIF orientation 6 (rotate 90)
    upright = np.zeros((100, 400, 3), dtype=np.uint8)
    upright[:, :200] = (200, 0, 0)  # left half red (stored turned a quarter left)
    upright[:, 200:] = (0, 0, 200)  # right half blue
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    Image.fromarray(upright).save(tmp_path / "wide.png")
    sheet = render([Tile(tmp_path / "sideways.jpg", ["sideways.jpg"]),
                    Tile(tmp_path / "wide.png", ["wide.png"])], columns=2)  # fmt: skip
    for k in (0, 1):
        left, top, right, bottom = _box(sheet, k, 2)
        assert (right - left) / (bottom - top) == pytest.approx(4.0, rel=0.05)
        x, y = (k * (CELL + 2 * PAD)) + PAD + left, PAD + top
        r, _g, b = sheet.getpixel((x + 5, y + (bottom - top) // 2))
        assert r > 150 and b < 60  # red on the left: upright, not mirrored or turned


def test_captions_are_drawn_and_unreadable_photos_get_a_cell(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    sheet = render([Tile(tmp_path / "broken.jpg", ["broken.jpg", "score 0.5", "cat"])])
    caption = np.asarray(sheet.crop((PAD, PAD + CELL + 2, PAD + CELL, sheet.height)).convert("L"))
    assert (caption < 100).sum() > 50  # dark text pixels under the cell
    grey = sheet.getpixel((PAD + 3, PAD + 3))
    assert grey == (200, 200, 200)


def test_fifty_photos_in_under_two_seconds(tmp_path: Path) -> None:
    photos = sorted(INTERIORS.glob("*.jpg"))  # 1920 px camera-sized JPEGs
    tiles = [Tile(photos[i % len(photos)], [f"photo {i}", "score 0.9", "furniture"])
             for i in range(50)]  # fmt: skip
    started = time.perf_counter()
    cpu = time.process_time()
    write(tiles, tmp_path / "sheet.jpg")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert Image.open(tmp_path / "sheet.jpg").size == (6 * 256, 9 * 304)
    assert min(wall, cpu) < 2.0, (wall, cpu)  # cpu: a busy test machine slows the wall clock


def test_grid_on_the_command_line(tmp_path: Path, photos: Path) -> None:
    catalog = tmp_path / "catalog.db"
    code, _out, err = run_cli("--backend", "fake", "index", "--no-write", str(photos),
                              catalog=catalog)  # fmt: skip
    assert code == 0, err
    code, _out, err = run_cli("find", "--word", "cat", "--grid", str(tmp_path / "x.gif"),
                              catalog=catalog)  # fmt: skip
    assert code == 2 and err.startswith("error: --grid") and err.count("\n") == 1
    code, _out, err = run_cli("find", "--word", "cat", "--grid", "-", "--json", catalog=catalog)
    assert code == 2 and "both want stdout" in err
    code, out, err = run_cli("--backend", "fake", "tags", str(photos / "chelsea.png"), "--grid",
                             str(tmp_path / "tags.jpg"), catalog=catalog)  # fmt: skip
    assert code == 0 and Image.open(tmp_path / "tags.jpg").format == "JPEG"
    assert out or "no word is likely enough" in err  # the fake backend's tags are noise
    done = subprocess.run(
        [sys.executable, "-m", "phototag", "--catalog", str(catalog), "find", "--word", "cat",
         "-n", "4", "--grid", "-"], capture_output=True, env=env_for_subprocess(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(done.stdout)).size == (2 * 256, 2 * 304)

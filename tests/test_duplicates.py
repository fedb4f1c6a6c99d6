"""`phototag duplicates` on a real catalog: the shipped model, generated variants of real photos."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from phototag.duplicates import DEFAULT_THRESHOLD
from tests.conftest import INTERIORS, SKIMAGE_DATA, run_cli


def _recompressed(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("dups")
    (folder / "trip").mkdir()
    original = Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB")
    original.save(folder / "trip" / "cat.jpg", quality=95)
    w, h = original.size
    variants = {
        "cat-small.jpg": original.resize((w // 3, h // 3), Image.LANCZOS),
        "cat-q35.jpg": _recompressed(original, 35),
        "cat-crop.jpg": original.crop((20, 10, w - 10, h - 20)),
        "cat-bright.jpg": ImageEnhance.Brightness(original).enhance(1.12),
    }
    for name, img in variants.items():
        img.save(folder / "trip" / name, quality=90)
    shutil.copy(folder / "trip" / "cat.jpg", folder / "cat-copy.jpg")  # the same bytes
    old = time.time() - 86400 * 400
    os.utime(folder / "trip" / "cat.jpg", (old, old))  # the original is the older copy
    for name in ("coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copy(SKIMAGE_DATA / name, folder / name)
    for src in sorted(INTERIORS.glob("pexels-73037*.jpg"))[:3]:  # one apartment: similar rooms
        shutil.copy(src, folder / src.name)
    catalog = tmp_path_factory.mktemp("cat") / "catalog.db"
    code, out, err = run_cli("index", "--no-write", "--json", str(folder), catalog=catalog)
    assert code == 0, err
    return folder, catalog


def groups_of(catalog: Path, *args: str) -> list[dict]:
    code, out, err = run_cli("duplicates", *args, "--json", catalog=catalog)
    assert code == 0, err
    return json.loads(out)


def test_identical_and_near_groups_best_first(lib: tuple[Path, Path]) -> None:
    folder, catalog = lib
    groups = groups_of(catalog)
    assert [g["kind"] for g in groups] == ["identical", "near"]
    identical, near = groups
    assert [p["path"] for p in identical["photos"]] == [
        str(folder / "trip" / "cat.jpg"), str(folder / "cat-copy.jpg")  # oldest first
    ]
    assert [p["score"] for p in identical["photos"]] == [1.0, 1.0]
    paths = [Path(p["path"]) for p in near["photos"]]
    assert all(p.is_absolute() for p in paths)
    # every variant, and one copy of the identical pair (the best one); nothing else
    assert sorted(p.name for p in paths) == sorted(
        ["cat.jpg", "cat-small.jpg", "cat-q35.jpg", "cat-crop.jpg", "cat-bright.jpg"]
    )
    assert paths[0] == folder / "trip" / "cat.jpg"  # the largest, then the oldest
    scores = [p["score"] for p in near["photos"]]
    assert scores[0] == 1.0 and all(DEFAULT_THRESHOLD - 0.1 < s < 1.0 for s in scores[1:])
    assert near["photos"][paths.index(folder / "trip" / "cat-small.jpg")]["width"] == 451 // 3
    assert all(p.exists() for p in folder.rglob("*.jpg"))  # nothing deleted


def test_paths_and_threshold_narrow_the_search(lib: tuple[Path, Path]) -> None:
    folder, catalog = lib
    only_trip = groups_of(catalog, str(folder / "trip"))
    assert [g["kind"] for g in only_trip] == ["near"]  # the copy is outside trip/
    assert len(only_trip[0]["photos"]) == 5
    strict = groups_of(catalog, "--threshold", "0.999")
    assert [g["kind"] for g in strict] == ["identical"]
    assert groups_of(catalog, "--min-score", "0.999") == strict  # the same thing here
    code, out, err = run_cli("duplicates", str(folder / "trip"), catalog=catalog)
    assert code == 0 and out.startswith("near: 5 photos\n") and str(folder / "trip") in out


def test_grid_of_duplicates_is_written(lib: tuple[Path, Path], tmp_path: Path) -> None:
    _folder, catalog = lib
    target = tmp_path / "dups.png"
    code, _out, err = run_cli("duplicates", "--grid", str(target), catalog=catalog)
    assert code == 0, err
    sheet = Image.open(target)
    # 2 + 5 photos: 3 columns, 3 rows of 240-pixel cells with padding and three caption lines
    assert sheet.format == "PNG" and sheet.size == (3 * (240 + 16), 3 * (240 + 16 + 3 * 16))

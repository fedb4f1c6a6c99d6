from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag.errors import UnreadableImage
from phototag.imaging import open_image
from tests.badfiles import EXPECTED, make_bad_folder
from tests.conftest import INTERIORS, SKIMAGE_DATA


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bad_folder(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "name", [n for n, v in EXPECTED.items() if v != "ok" and n != "fifo.jpg"]
)
def test_bad_files_raise_a_named_one_line_reason(bad: Path, name: str) -> None:
    path = bad / name
    with pytest.raises(UnreadableImage) as info:
        open_image(path, path.read_bytes(), min_short_side=256)
    assert info.value.path == path
    assert EXPECTED[name] in info.value.reason
    assert "\n" not in info.value.reason and info.value.reason == info.value.reason.lower()


@pytest.mark.parametrize("name", [n for n, v in EXPECTED.items() if v == "ok" and n != "fifo.jpg"])
def test_awkward_files_decode_to_rgb(bad: Path, name: str) -> None:
    path = bad / name
    img, width, height, _ = open_image(path, path.read_bytes(), min_short_side=256)
    assert img.mode == "RGB" and min(img.size) >= 256 and width > 0 and height > 0


def test_exif_orientation_is_applied(bad: Path) -> None:
    path = bad / "rotated.jpg"
    img, width, height, _ = open_image(path, path.read_bytes(), min_short_side=256)
    assert (width, height) == (300, 451)  # as stored: sideways
    assert img.size[0] > img.size[1]  # as seen: upright, landscape like chelsea
    upright = np.asarray(Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB").resize(img.size))
    assert np.abs(np.asarray(img, dtype=float) - upright).mean() < 20


def test_jpeg_draft_decodes_just_big_enough() -> None:
    path = sorted(INTERIORS.glob("*.jpg"))[0]
    full = Image.open(path).size
    img, width, height, _ = open_image(path, path.read_bytes(), min_short_side=256)
    assert (width, height) == full
    assert 256 <= min(img.size) < min(full) / 2


def test_heic_decodes(tmp_path: Path) -> None:
    import pillow_heif

    path = tmp_path / "iphone.heic"
    chelsea = Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB")
    pillow_heif.from_pillow(chelsea).save(path, quality=80)
    img, width, height, _ = open_image(path, path.read_bytes(), min_short_side=256)
    assert (width, height) == chelsea.size and img.mode == "RGB"

"""Tags written through the real ExifTool into real files, read back field by field."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from exiftool import ExifToolHelper
from PIL import Image, ImageCms

from phototag import exiftool_process
from phototag.errors import ExifToolMissing, WriteError
from phototag.types import Tag
from phototag.writers import (
    CONFIG_FILE,
    TEMP_PREFIX,
    ExifToolWriter,
    is_temp_file,
    open_writer,
    sidecar_path,
)

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")

TAGS = [Tag("cat", 0.91, "animal|cat"), Tag("café", 0.62, "drink|café"), Tag("猫", 0.4, "")]
NEW_TAGS = [Tag("dog", 0.8, "animal|dog"), Tag("cat", 0.5, "animal|cat")]
FIELDS = [
    "-XMP-dc:Subject",
    "-XMP-lr:HierarchicalSubject",
    "-XMP-digiKam:TagsList",
    "-XMP-microsoft:LastKeywordXMP",
    "-IPTC:Keywords",
    "-IPTC:CodedCharacterSet",
    "-IFD0:XPKeywords",
    "-Photoshop:IPTCDigest",
    "-File:CurrentIPTCDigest",
    "-XMP-phototag:all",
    "-IFD0:Orientation",
    "-ExifIFD:DateTimeOriginal",
    "-XMP-darktable:all",
]


# -- helpers ---------------------------------------------------------------------------------


_checker: list[ExifToolHelper] = []


@pytest.fixture(scope="module", autouse=True)
def checker() -> Iterator[None]:
    """The tests' own exiftool (stay-open, apart from the writer's) to set up and read back."""
    with ExifToolHelper(common_args=[], config_file=str(CONFIG_FILE), encoding="utf-8") as et:
        _checker.append(et)
        yield
        _checker.clear()


def exiftool(*args: str | Path) -> str:
    return _checker[0].execute(*map(str, args))


def fields(path: Path) -> dict[str, list[str] | str]:
    """Every keyword field as the real exiftool sees it; lists always as lists."""
    out = exiftool("-j", "-G1", "-a", "-struct", "-charset", "iptc=UTF8", *FIELDS, path)
    item = json.loads(out, parse_int=str, parse_float=str)[0]
    lists = ("Subject", "HierarchicalSubject", "TagsList", "LastKeywordXMP", "Keywords")
    for key, value in item.items():
        if key.partition(":")[2] in lists and not isinstance(value, list):
            item[key] = [value]
    return item


def pixels(path: Path) -> bytes:
    with Image.open(path) as im:
        return im.tobytes()


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


def make_jpeg(path: Path, *keywords: str, extra: tuple[str, ...] = ()) -> Path:
    """A JPEG with an ICC profile, orientation, a date, and the user's own keywords."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, quality=90, icc_profile=icc)
    args = ["-q", "-overwrite_original", "-charset", "iptc=UTF8", "-Orientation#=6"]
    args += ["-DateTimeOriginal=2021:06:05 10:11:12", *extra]
    for keyword in keywords:
        args += [f"-IPTC:Keywords+={keyword}", f"-XMP-dc:Subject+={keyword}"]
    if keywords:
        args.append("-IPTC:CodedCharacterSet=UTF8")
    exiftool(*args, path)
    return path


@pytest.fixture(scope="module")
def writer() -> Iterator[ExifToolWriter]:
    with open_writer("embed") as w:
        yield w


@pytest.fixture(scope="module")
def sidecar_writer() -> Iterator[ExifToolWriter]:
    with open_writer("sidecar") as w:
        yield w


# -- embedding -------------------------------------------------------------------------------


def test_jpeg_gets_every_field_and_keeps_the_rest(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach")
    before, before_pixels = fields(photo), pixels(photo)
    with Image.open(photo) as im:
        icc = im.info["icc_profile"]

    outcome = writer.write(photo, TAGS, model="devise-lite0")

    assert outcome.changed and outcome.target == photo
    assert outcome.added == ["cat", "café", "猫"] and outcome.removed == []
    st = photo.stat()
    assert (outcome.size, outcome.mtime_ns) == (st.st_size, st.st_mtime_ns)
    after = fields(photo)
    assert after["XMP-dc:Subject"] == ["Beach", "cat", "café", "猫"]
    assert after["IPTC:Keywords"] == ["Beach", "cat", "café", "猫"]
    assert set(after["XMP-lr:HierarchicalSubject"]) == {"Beach", "animal|cat", "drink|café", "猫"}
    assert set(after["XMP-digiKam:TagsList"]) == {"Beach", "animal/cat", "drink/café", "猫"}
    assert after["IPTC:CodedCharacterSet"] == "UTF8"
    assert after["Photoshop:IPTCDigest"] == after["File:CurrentIPTCDigest"]
    assert "IPTCDigest" not in exiftool("-validate", "-warning", "-a", photo)
    assert after["XMP-phototag:Model"] == "devise-lite0"
    assert {t["Name"]: t["Score"] for t in after["XMP-phototag:Tags"]} == {
        "cat": "0.910",
        "café": "0.620",
        "猫": "0.400",
    }
    for key in ("IFD0:Orientation", "ExifIFD:DateTimeOriginal"):
        assert after[key] == before[key]
    assert pixels(photo) == before_pixels
    with Image.open(photo) as im:
        assert im.info["icc_profile"] == icc
    assert not temp_files(tmp_path)


def test_second_write_changes_nothing(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach")
    writer.write(photo, TAGS, model="m1")
    data, mtime = photo.read_bytes(), photo.stat().st_mtime_ns

    outcome = writer.write(photo, list(reversed(TAGS)), model="m1")

    assert not outcome.changed and outcome.added == outcome.removed == []
    assert photo.read_bytes() == data and photo.stat().st_mtime_ns == mtime
    assert outcome.mtime_ns == mtime


def test_model_change_replaces_only_machine_tags(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach")
    writer.write(photo, TAGS, model="m1")

    outcome = writer.write(photo, NEW_TAGS, model="m2")

    assert outcome.changed
    assert set(outcome.added) == {"dog"} and set(outcome.removed) == {"café", "猫"}
    after = fields(photo)
    assert after["XMP-dc:Subject"] == ["Beach", "cat", "dog"]
    assert set(after["IPTC:Keywords"]) == {"Beach", "cat", "dog"}
    assert set(after["XMP-lr:HierarchicalSubject"]) == {"Beach", "animal|cat", "animal|dog"}
    assert set(after["XMP-digiKam:TagsList"]) == {"Beach", "animal/cat", "animal/dog"}
    assert after["XMP-phototag:Model"] == "m2"
    assert after["Photoshop:IPTCDigest"] == after["File:CurrentIPTCDigest"]


def test_remove_leaves_only_user_keywords(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach", "Cat")
    writer.write(photo, TAGS, model="m1")

    outcome = writer.remove(photo)

    assert outcome.changed and set(outcome.removed) == {"café", "猫"}
    after = fields(photo)
    assert after["XMP-dc:Subject"] == ["Beach", "Cat"]  # "cat" folded into the user's "Cat"
    assert after["IPTC:Keywords"] == ["Beach", "Cat"]
    assert set(after["XMP-lr:HierarchicalSubject"]) == {"Beach", "Cat"}
    assert not any(key.startswith("XMP-phototag") for key in after)
    assert after["Photoshop:IPTCDigest"] == after["File:CurrentIPTCDigest"]
    assert writer.read_keywords(photo) == ["Beach", "Cat"]
    data = photo.read_bytes()
    assert not writer.remove(photo).changed and photo.read_bytes() == data


def test_duplicates_fold_case_insensitively_and_by_nfc(
    tmp_path: Path, writer: ExifToolWriter
) -> None:
    decomposed = unicodedata.normalize("NFD", "Café")
    photo = make_jpeg(tmp_path / "a.jpg", "CAT", decomposed)

    writer.write(photo, [Tag("cat", 0.9), Tag("Cat", 0.8), Tag("café", 0.7)], model="m")

    after = fields(photo)
    assert after["XMP-dc:Subject"] == ["CAT", decomposed]  # the user's spelling, untouched
    assert after["IPTC:Keywords"] == ["CAT", decomposed]
    assert len(after["XMP-phototag:Tags"]) == 2


def test_awkward_keyword_text_survives(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "1.50", "007")  # JSON would make 1.5 and 7 of them
    odd = [Tag("a, b}", 0.5, "x|a, b}"), Tag("[c]", 0.25, "{y}|[c]"), Tag("2024", 0.125)]

    writer.write(photo, odd, model="m")

    after = fields(photo)
    assert after["XMP-dc:Subject"] == ["1.50", "007", "a, b}", "[c]", "2024"]
    assert {t["Name"] for t in after["XMP-phototag:Tags"]} == {"a, b}", "[c]", "2024"}
    assert writer.read_keywords(photo) == ["1.50", "007"]
    assert not writer.write(photo, odd, model="m").changed
    writer.remove(photo)
    assert fields(photo)["XMP-dc:Subject"] == ["1.50", "007"]


def test_user_keyword_xmp_cannot_hold_stays_in_iptc(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach")
    exiftool("-q", "-overwrite_original", "-IPTC:Keywords+=c\x1fd", photo)

    writer.write(photo, TAGS, model="m")

    after = fields(photo)
    assert after["IPTC:Keywords"] == ["Beach", "c\x1fd", "cat", "café", "猫"]
    assert after["XMP-dc:Subject"] == ["Beach", "cat", "café", "猫"]
    assert not writer.write(photo, TAGS, model="m").changed


def test_legacy_latin1_iptc_is_left_untouched(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = tmp_path / "old.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    exiftool("-q", "-overwrite_original", "-charset", "iptc=Latin", "-IPTC:Keywords=Zürich",
             "-IPTC:Caption-Abstract=Où?", photo)  # fmt: skip
    latin = ("-j", "-G1", "-charset", "iptc=Latin", "-IPTC:all")
    before = exiftool(*latin, photo)
    assert "Zürich" in before and "Où?" in before

    outcome = writer.write(photo, TAGS, model="m")

    # declaring these bytes UTF-8 would garble them: IPTC stays as it was, XMP gets the rest
    assert outcome.added == ["cat", "café", "猫"]
    assert exiftool(*latin, photo) == before
    assert fields(photo)["XMP-dc:Subject"] == ["Zürich", "cat", "café", "猫"]
    assert writer.read_keywords(photo) == ["Zürich"]
    assert not writer.write(photo, TAGS, model="m").changed


def test_utf8_iptc_without_marker_gets_the_marker(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = tmp_path / "new.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    exiftool("-q", "-overwrite_original", "-charset", "iptc=UTF8", "-IPTC:Keywords=Zürich", photo)
    assert "CodedCharacterSet" not in exiftool("-IPTC:all", photo)

    writer.write(photo, TAGS, model="m")

    after = fields(photo)
    assert after["IPTC:CodedCharacterSet"] == "UTF8"
    assert after["IPTC:Keywords"] == ["Zürich", "cat", "café", "猫"]


def test_tiff_gets_xmp_and_iptc(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = tmp_path / "scan.tif"
    Image.new("RGB", (40, 30), (10, 120, 200)).save(photo)
    before = pixels(photo)

    writer.write(photo, TAGS, model="m")

    after = fields(photo)
    assert after["XMP-dc:Subject"] == ["cat", "café", "猫"]
    assert after["IPTC:Keywords"] == ["cat", "café", "猫"]
    assert after["Photoshop:IPTCDigest"] == after["File:CurrentIPTCDigest"]
    assert pixels(photo) == before
    data = photo.read_bytes()
    assert not writer.write(photo, TAGS, model="m").changed and photo.read_bytes() == data


@pytest.mark.parametrize("name", ["shot.png", "shot.webp"])
def test_png_and_webp_get_xmp_only(tmp_path: Path, writer: ExifToolWriter, name: str) -> None:
    photo = tmp_path / name
    Image.new("RGB", (40, 30), (10, 120, 200)).save(photo, lossless=True)
    before = pixels(photo)

    writer.write(photo, TAGS, model="m")

    after = fields(photo)
    assert after["XMP-dc:Subject"] == ["cat", "café", "猫"]
    assert set(after["XMP-digiKam:TagsList"]) == {"animal/cat", "drink/café", "猫"}
    assert "IPTC:Keywords" not in after
    assert pixels(photo) == before
    assert not sidecar_path(photo).exists()
    data = photo.read_bytes()
    assert not writer.write(photo, TAGS, model="m").changed and photo.read_bytes() == data


def test_long_keywords_stay_out_of_iptc(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg")
    long = "é" * 40  # 80 bytes in UTF-8

    writer.write(photo, [Tag(long, 0.9), Tag("cat", 0.8)], model="m")

    after = fields(photo)
    assert long in after["XMP-dc:Subject"]
    assert after["IPTC:Keywords"] == ["cat"]
    assert not writer.write(photo, [Tag(long, 0.9), Tag("cat", 0.8)], model="m").changed


def test_windows_fields_updated_only_where_present(tmp_path: Path, writer: ExifToolWriter) -> None:
    windows = make_jpeg(
        tmp_path / "w.jpg",
        "Beach",
        extra=("-XPKeywords=Beach", "-XMP-microsoft:LastKeywordXMP=Beach"),
    )
    plain = make_jpeg(tmp_path / "p.jpg", "Beach")

    writer.write(windows, TAGS, model="m")
    writer.write(plain, TAGS, model="m")

    after = fields(windows)
    assert after["IFD0:XPKeywords"] == "Beach;cat;café;猫"
    assert set(after["XMP-microsoft:LastKeywordXMP"]) == {"Beach", "animal/cat", "drink/café", "猫"}
    writer.remove(windows)
    after = fields(windows)
    assert after["IFD0:XPKeywords"] == "Beach"
    assert after["XMP-microsoft:LastKeywordXMP"] == ["Beach"]
    plain_fields = fields(plain)
    assert "IFD0:XPKeywords" not in plain_fields
    assert "XMP-microsoft:LastKeywordXMP" not in plain_fields


def test_machine_parent_marks_the_hierarchy(tmp_path: Path) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach")
    with open_writer("embed", machine_parent="phototag") as w:
        w.write(photo, TAGS, model="m")
        after = fields(photo)
        assert set(after["XMP-lr:HierarchicalSubject"]) == {
            "Beach",
            "phototag|animal|cat",
            "phototag|drink|café",
            "phototag|猫",
        }
        assert "phototag/animal/cat" in after["XMP-digiKam:TagsList"]
        assert after["XMP-dc:Subject"] == ["Beach", "cat", "café", "猫"]
        assert not w.write(photo, TAGS, model="m").changed
        assert w.read_keywords(photo) == ["Beach"]


def test_unicode_file_name_and_line_break(tmp_path: Path, writer: ExifToolWriter) -> None:
    for name in ("café 猫.jpg", "two\nlines.jpg"):
        photo = make_jpeg(tmp_path / "plain.jpg", "Zürich").rename(tmp_path / name)
        writer.write(photo, TAGS, model="m")
        alias = tmp_path / "alias.jpg"  # the checker's own argument lines cannot hold a \n
        alias.hardlink_to(photo)
        assert fields(alias)["IPTC:Keywords"] == ["Zürich", "cat", "café", "猫"]
        assert writer.read_keywords(photo) == ["Zürich"]
        alias.unlink()


def test_symlink_stays_a_link(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "real.jpg")
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)

    outcome = writer.write(link, TAGS, model="m")

    assert link.is_symlink() and outcome.target == photo
    assert fields(photo)["XMP-dc:Subject"] == ["cat", "café", "猫"]


# -- sidecars --------------------------------------------------------------------------------


def bmp(path: Path) -> Path:
    Image.new("RGB", (24, 16), (9, 99, 199)).save(path, format="BMP")
    return path


def test_bmp_gets_only_a_sidecar(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = bmp(tmp_path / "IMG_0001.BMP")
    data = photo.read_bytes()

    outcome = writer.write(photo, TAGS, model="m")

    assert outcome.target == tmp_path / "IMG_0001.BMP.xmp"
    assert photo.read_bytes() == data
    after = fields(outcome.target)
    assert after["XMP-dc:Subject"] == ["cat", "café", "猫"]
    assert set(after["XMP-lr:HierarchicalSubject"]) == {"animal|cat", "drink|café", "猫"}
    assert "IPTC:Keywords" not in after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_0001.BMP", "IMG_0001.BMP.xmp"]
    assert not writer.write(photo, TAGS, model="m").changed


def test_sidecar_mode_leaves_the_photo_identical(
    tmp_path: Path, sidecar_writer: ExifToolWriter
) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach")
    data = photo.read_bytes()

    outcome = sidecar_writer.write(photo, TAGS, model="m")

    assert photo.read_bytes() == data
    assert outcome.target == tmp_path / "a.jpg.xmp"
    after = fields(outcome.target)
    # the photo's own keyword travels along: apps that read a sidecar ignore the photo
    assert after["XMP-dc:Subject"] == ["Beach", "cat", "café", "猫"]
    assert sidecar_writer.read_keywords(photo) == ["Beach"]
    assert not sidecar_writer.write(photo, TAGS, model="m").changed
    sidecar_writer.remove(photo)
    assert fields(outcome.target)["XMP-dc:Subject"] == ["Beach"]
    assert photo.read_bytes() == data


DARKTABLE_XMP = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
   darktable:xmp_version="5"
   darktable:history_end="1">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"
      darktable:modversion="6" darktable:params="0000000000000000"/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_existing_img_xmp_is_merged_not_duplicated(
    tmp_path: Path, sidecar_writer: ExifToolWriter
) -> None:
    photo = make_jpeg(tmp_path / "IMG.jpg")
    existing = tmp_path / "IMG.xmp"
    existing.write_text(DARKTABLE_XMP)
    history = {k: v for k, v in fields(existing).items() if k.startswith("XMP-darktable")}
    assert history

    outcome = sidecar_writer.write(photo, TAGS, model="m")

    assert outcome.target == existing
    assert not (tmp_path / "IMG.jpg.xmp").exists()
    after = fields(existing)
    assert after["XMP-dc:Subject"] == ["holiday", "cat", "café", "猫"]
    assert {k: v for k, v in after.items() if k.startswith("XMP-darktable")} == history
    assert sidecar_writer.read_keywords(photo) == ["holiday"]


# -- failures and dry runs -------------------------------------------------------------------


def test_dry_run_touches_nothing(tmp_path: Path) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", "Beach")
    raw = bmp(tmp_path / "b.bmp")
    data = photo.read_bytes()
    with open_writer("embed", dry_run=True) as w:
        outcome = w.write(photo, TAGS, model="m")
        raw_outcome = w.write(raw, TAGS, model="m")
    assert outcome.changed and outcome.added == ["cat", "café", "猫"]
    assert raw_outcome.changed and raw_outcome.target == tmp_path / "b.bmp.xmp"
    assert photo.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.bmp"]


def test_corrupt_file_raises_and_leaves_no_temp(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = tmp_path / "broken.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 20)
    data = photo.read_bytes()

    with pytest.raises(WriteError) as info:
        writer.write(photo, TAGS, model="m")

    reason = info.value.reason
    assert reason == reason.lower() and "\n" not in reason and str(photo) not in reason
    assert photo.read_bytes() == data
    assert not temp_files(tmp_path)


def test_wrong_extension_raises(tmp_path: Path, writer: ExifToolWriter) -> None:
    fake = tmp_path / "fake.png"
    shutil.copyfile(make_jpeg(tmp_path / "j.jpg"), fake)
    with pytest.raises(WriteError, match="png"):
        writer.write(fake, TAGS, model="m")
    assert not temp_files(tmp_path)


def test_read_only_file_raises_and_leaves_no_temp(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg")
    photo.chmod(0o444)
    data = photo.read_bytes()

    with pytest.raises(WriteError, match="read-only"):
        writer.write(photo, TAGS, model="m")

    assert photo.read_bytes() == data and not temp_files(tmp_path)


def test_vanished_file_raises(tmp_path: Path, writer: ExifToolWriter) -> None:
    with pytest.raises(WriteError, match="file vanished"):
        writer.write(tmp_path / "gone.jpg", TAGS, model="m")
    with pytest.raises(WriteError, match="file vanished"):
        writer.read_keywords(tmp_path / "gone.jpg")


def test_mode_and_owner_are_kept(tmp_path: Path, writer: ExifToolWriter) -> None:
    photo = make_jpeg(tmp_path / "a.jpg")
    photo.chmod(0o640)
    raw = bmp(tmp_path / "b.bmp")
    raw.chmod(0o600)

    writer.write(photo, TAGS, model="m")
    sidecar = writer.write(raw, TAGS, model="m").target

    assert photo.stat().st_mode & 0o777 == 0o640
    assert sidecar.stat().st_mode & 0o777 == 0o600  # a private photo gets a private sidecar


def test_missing_exiftool_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exiftool_process.shutil, "which", lambda name: None)
    with pytest.raises(ExifToolMissing, match="apt-get install libimage-exiftool-perl"):
        open_writer("embed")


# -- small pieces ----------------------------------------------------------------------------


def test_read_keywords_many(tmp_path: Path, writer: ExifToolWriter) -> None:
    a = make_jpeg(tmp_path / "a.jpg", "Beach")
    b = make_jpeg(tmp_path / "b.jpg")
    (tmp_path / "b.jpg.xmp").write_text(DARKTABLE_XMP)
    writer.write(a, TAGS, model="m")
    found = writer.read_keywords_many([a, b, tmp_path / "gone.jpg"])
    assert found == {a: ["Beach"], b: ["holiday"]}


def test_temp_names_and_sidecar_names(tmp_path: Path) -> None:
    assert is_temp_file(tmp_path / f"{TEMP_PREFIX}abc.tmp")
    assert not is_temp_file(tmp_path / "a.jpg")
    photo = tmp_path / "IMG.bmp"
    assert sidecar_path(photo) == tmp_path / "IMG.bmp.xmp"
    (tmp_path / "IMG.xmp").write_text("")
    assert sidecar_path(photo) == tmp_path / "IMG.xmp"
    (tmp_path / "IMG.bmp.xmp").write_text("")
    assert sidecar_path(photo) == tmp_path / "IMG.bmp.xmp"
    w = ExifToolWriter("embed")
    assert w.can_handle(tmp_path / "a.HEIC") and w.can_handle(tmp_path / "a.bmp")
    # one list of formats: the writer handles exactly what the scanner yields
    assert not w.can_handle(tmp_path / "a.nef") and not w.can_handle(tmp_path / "a.dng")
    assert not w.can_handle(tmp_path / "a.txt") and not w.can_handle(tmp_path / "a.xmp")
    with pytest.raises(ValueError):
        ExifToolWriter("none")


def test_scanner_skips_the_writers_temp_files(tmp_path: Path) -> None:
    from phototag import files, scanner

    assert scanner.TEMP_PREFIX is files.TEMP_PREFIX is TEMP_PREFIX
    make_jpeg(tmp_path / "a.jpg")
    shutil.copy(tmp_path / "a.jpg", files.temp_name(tmp_path, ".jpg"))  # a write in flight
    seen = []
    found = [e.path.name for e in scanner.walk(tmp_path, on_temp=seen.append)]
    assert found == ["a.jpg"] and len(seen) == 1 and is_temp_file(seen[0])

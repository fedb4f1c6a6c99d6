"""index/untag with the real ExifTool writer: tags land in files, the user's stay, no loops."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import exif_keywords, run_cli


@pytest.fixture
def jpegs(photos: Path) -> Path:
    for p in photos.iterdir():
        if p.suffix != ".jpg":
            p.unlink()
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Zanzibar",
         "-IPTC:Keywords=Zanzibar", str(next(photos.glob("pexels*.jpg")))],
        check=True,
    )  # fmt: skip
    return photos


def test_index_writes_tags_reads_user_keywords_and_does_not_loop(
    jpegs: Path, catalog_path: Path
) -> None:
    code, out, err = run_cli(
        "--backend", "fake", "index", "--json", str(jpegs), catalog=catalog_path
    )
    assert code == 0, err
    summary = json.loads(out)
    count = len(list(jpegs.glob("*.jpg")))
    assert summary["written"] == count and summary["new"] == count
    user_photo = next(jpegs.glob("pexels*.jpg"))
    fields = exif_keywords(user_photo)
    assert "Zanzibar" in fields["Subject"] and "Zanzibar" in fields["Keywords"]
    code, out, _ = run_cli(
        "--backend", "fake", "tags", "--json", str(user_photo), catalog=catalog_path
    )
    tags = [t["tag"] for t in json.loads(out)["tags"]]
    machine = [t for t in tags if t != "Zanzibar"]
    assert "Zanzibar" in tags and machine
    assert all(t in fields["Subject"] for t in machine)
    code, out, _ = run_cli("--backend", "fake", "find", "--word", "zanzibar", "--json",
                           catalog=catalog_path)  # fmt: skip
    assert json.loads(out)[0]["path"] == str(user_photo)  # user keywords are searchable
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in jpegs.glob("*.jpg")}
    code, out, _ = run_cli("--backend", "fake", "index", "--json", str(jpegs), catalog=catalog_path)
    again = json.loads(out)
    assert again["unchanged"] == count and again["written"] == 0 and again["embedded"] == 0
    assert digests == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in jpegs.glob("*.jpg")}


def test_sidecar_mode_and_untag(jpegs: Path, catalog_path: Path) -> None:
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in jpegs.glob("*.jpg")}
    code, _, err = run_cli(
        "--backend", "fake", "index", "--sidecar", str(jpegs), catalog=catalog_path
    )
    assert code == 0, err
    assert digests == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in jpegs.glob("*.jpg")}
    sidecars = sorted(jpegs.glob("*.jpg.xmp"))
    assert len(sidecars) == len(digests)
    assert exif_keywords(sidecars[0])["Subject"]
    code, out, _ = run_cli("untag", "--sidecar", "--dry-run", str(jpegs), catalog=catalog_path)
    assert code == 0 and "would write" in out and "would change" in out
    code, out, _ = run_cli("untag", "--sidecar", str(jpegs), catalog=catalog_path)
    assert code == 0
    user_photo = next(jpegs.glob("pexels*.jpg"))
    left = exif_keywords(Path(f"{user_photo}.xmp")).get("Subject", [])
    assert left == ["Zanzibar"]  # the photo's own keyword, mirrored into its sidecar, stays
    code, out, _ = run_cli("--backend", "fake", "status", "--json", catalog=catalog_path)
    assert json.loads(out)["tagged"] == 0

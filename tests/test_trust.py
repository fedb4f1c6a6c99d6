"""Trust features: every run that writes files can be undone, and a machine tag the user
removed in another app never comes back. Real exiftool, real files, the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from phototag.catalog import Catalog
from phototag.exiftool_process import CONFIG_FILE
from tests.test_hardening import index, small_photos, subject
from tests.test_watch import wait_for, watching

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
FIELDS = ["-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject", "-XMP-digiKam:TagsList",
          "-IPTC:Keywords", "-XMP-phototag:all"]  # fmt: skip


def keyword_fields(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-config", str(CONFIG_FILE), "-j", "-G1", "-struct",
                          *FIELDS, str(path)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    item = json.loads(out.stdout)[0]
    item.pop("SourceFile")
    return item


def test_undo_restores_exactly_what_the_run_changed(tmp_path: Path, catalog_path: Path) -> None:
    photos = small_photos(tmp_path / "lib")
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Zanzibar",
                    str(photos[0])], check=True)  # fmt: skip
    before = {p: keyword_fields(p) for p in photos}
    index(catalog_path, tmp_path / "lib")
    assert all(keyword_fields(p) != before[p] for p in photos)
    from tests.conftest import run_cli

    code, out, _ = run_cli("runs", "--json", catalog=catalog_path)
    runs = json.loads(out)
    assert code == 0 and len(runs) == 1 and runs[0]["files"] == len(photos)
    # a file the user edited since is named and left alone
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=mine",
                    str(photos[2])], check=True)  # fmt: skip
    edited = keyword_fields(photos[2])
    code, out, err = run_cli("undo", catalog=catalog_path)
    assert code == 0, err
    assert f"skipping {photos[2]}: cannot undo: edited since" in err
    assert f"run {runs[0]['id']}: restored 2 files, could not 1" in out
    for p in photos[:2]:
        assert keyword_fields(p) == before[p]
    assert keyword_fields(photos[2]) == edited
    catalog = Catalog(catalog_path)
    row = catalog.photo_at(photos[0])
    assert row is not None and catalog.machine_tags(row.id) == []
    code, _, err = run_cli("undo", str(runs[0]["id"]), catalog=catalog_path)
    assert code == 1 and "already undone" in err
    summary, _ = index(catalog_path, tmp_path / "lib")  # the catalog agrees with the files
    assert summary["unchanged"] == 2 and summary["changed"] == 1  # only the one edited since
    assert keyword_fields(photos[0]) == before[photos[0]]


def test_a_machine_tag_the_user_removed_never_comes_back(
    tmp_path: Path, catalog_path: Path
) -> None:
    photo = small_photos(tmp_path / "lib", 1)[0]
    index(catalog_path, tmp_path / "lib")
    machine = subject(photo)
    gone = machine[0]
    # another app removes one keyword from every field (phototag's namespace it leaves alone)
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-XMP-dc:Subject-={gone}",
                    f"-IPTC:Keywords-={gone}", str(photo)], check=True)  # fmt: skip
    index(catalog_path, tmp_path / "lib")
    assert gone not in subject(photo)
    catalog = Catalog(catalog_path)
    row = catalog.photo_at(photo)
    assert row is not None
    assert gone in catalog.rejected_tags([row.id])[row.id]
    assert gone not in {t.tag for t in catalog.machine_tags(row.id)}
    photo.write_bytes(photo.read_bytes() + b"\0")  # new bytes: embedded and tagged again
    index(catalog_path, tmp_path / "lib")
    assert gone not in subject(photo) and set(machine) - {gone} <= set(subject(photo))


def test_the_watcher_notices_a_sidecar_edited_by_another_app(
    tmp_path: Path, catalog_path: Path
) -> None:
    photo = small_photos(tmp_path / "lib", 1)[0]
    index(catalog_path, "--sidecar", tmp_path / "lib")
    sidecar = Path(f"{photo}.xmp")
    with watching(tmp_path / "lib", catalog_path, write="sidecar") as running:
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=Lisbon",
                        str(sidecar)], check=True)  # fmt: skip

        def user_tags() -> set[str]:
            row = running.row(photo)
            assert row is not None
            return {t.tag for t, src in running.catalog.tags_of([row.id])[row.id] if src == "user"}

        wait_for(lambda: "Lisbon" in user_tags(), what="the user's new keyword in the catalog")

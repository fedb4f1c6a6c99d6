"""Date taken, camera and GPS: read at index time, migrated into catalogs that predate them."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import sqlite_utils
from PIL import Image
from sqlite_utils.migrations import Migrations

from phototag.catalog import MIGRATION_SET, MIGRATIONS, Catalog, m001_initial
from phototag.imaging import content_hash, facts_of
from tests.conftest import FakeBackend, run_cli
from tests.test_index import index

#: 2021-03-04 05:06:07 local time, as a file mtime
MTIME = time.mktime((2021, 3, 4, 5, 6, 7, 0, 0, -1))


def exif_photo(path: Path, *, taken: str | None, camera: str | None, gps: bool, seed: int = 0):
    """A real JPEG with the EXIF a camera or phone writes."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((96, 128, 3)) * 255).astype("uint8"))
    exif = Image.Exif()
    if camera:
        exif[0x0110] = camera
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    if gps:
        ifd = exif.get_ifd(0x8825)
        ifd[1], ifd[2], ifd[3], ifd[4] = "N", (52.0, 31.0, 0.0), "E", (13.0, 24.0, 0.0)
    img.save(path, exif=exif)
    os.utime(path, (MTIME, MTIME))
    return path


def library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    folder.mkdir()
    exif_photo(folder / "phone.jpg", taken="2019:06:01 12:30:00", camera="Pixel 7", gps=True)
    exif_photo(folder / "camera.jpg", taken=None, camera="X-T4", gps=False, seed=1)
    exif_photo(folder / "plain.jpg", taken=None, camera=None, gps=False, seed=2)
    return folder


def facts_by_name(catalog: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(catalog)
    rows = conn.execute("select relpath, photo_date, camera, has_gps from photos").fetchall()
    conn.close()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_header_facts_are_read_without_decoding(tmp_path: Path) -> None:
    folder = library(tmp_path)
    assert facts_of(folder / "phone.jpg").taken_at == "2019-06-01T12:30:00"
    assert facts_of(folder / "phone.jpg").has_gps
    assert facts_of(folder / "camera.jpg").camera == "X-T4"
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    assert facts_of(tmp_path / "junk.jpg").camera is None  # never raises


def test_index_stores_date_camera_and_gps(tmp_path: Path, catalog_path: Path) -> None:
    folder = library(tmp_path)
    index(catalog_path, folder)
    local = datetime.fromtimestamp(MTIME).strftime("%Y-%m-%dT%H:%M:%S")
    assert facts_by_name(catalog_path) == {
        "phone.jpg": ("2019-06-01T12:30:00", "Pixel 7", 1),
        "camera.jpg": (local, "X-T4", 0),  # no EXIF date: the file's mtime, local time
        "plain.jpg": (local, None, 0),
    }
    # a copy has the same header: it gets the same facts without being decoded
    shutil.copy(folder / "phone.jpg", folder / "copy.jpg")
    assert index(catalog_path, folder)["embedded"] == 0
    assert facts_by_name(catalog_path)["copy.jpg"] == ("2019-06-01T12:30:00", "Pixel 7", 1)


def main_branch_catalog(path: Path, folder: Path) -> None:
    """A catalog as phototag wrote it before the facts existed: the m001 schema only, rows
    for every file (size, mtime, hash, EXIF date in taken_at), vectors and tags."""
    old = Migrations(MIGRATION_SET)
    old()(m001_initial)
    db = sqlite_utils.Database(path)
    old.apply(db)
    conn = db.conn
    conn.execute("insert into roots (id, path) values (1, ?)", [str(folder)])
    rng = np.random.default_rng(0)
    for seq, file in enumerate(sorted(folder.iterdir()), start=1):
        st = file.stat()
        taken = "2019-06-01T12:30:00" if file.name == "phone.jpg" else None
        conn.execute(
            "insert into photos (id, root_id, relpath, size, mtime_ns, hash, width, height, "
            "taken_at, status, indexed_at) values (?, 1, ?, ?, ?, ?, 128, 96, ?, 'ok', 0)",
            [seq, file.name, st.st_size, st.st_mtime_ns, content_hash(file.read_bytes()), taken],
        )
        conn.execute(
            "insert into vectors values (?, 'devise-lite0', ?, ?, ?)",
            [seq, seq, rng.random(64).astype("<f2").tobytes(),
             rng.random(50).astype("<f4").tobytes()],
        )  # fmt: skip
        conn.execute(
            "insert into tags values (?, 'cat', 0.9, 'machine', 'devise-lite0', 'animal|cat')",
            [seq],
        )
    conn.commit()
    db.close()


def test_a_catalog_from_before_migrates_without_re_embedding(tmp_path: Path) -> None:
    folder = library(tmp_path)
    catalog = tmp_path / "old.db"
    main_branch_catalog(catalog, folder)
    cat = Catalog(catalog)  # migrates
    local = datetime.fromtimestamp(MTIME).strftime("%Y-%m-%dT%H:%M:%S")
    # dates at once, from taken_at or the stored mtime; camera and GPS not read yet
    assert facts_by_name(catalog) == {
        "phone.jpg": ("2019-06-01T12:30:00", None, None),
        "camera.jpg": (local, None, None),
        "plain.jpg": (local, None, None),
    }
    assert "photos_photo_date" in {r[1] for r in cat.conn.execute("pragma index_list(photos)")}
    plan = cat.conn.execute(
        "explain query plan select id from photos where photo_date >= '2019'"
    ).fetchall()
    assert "photos_photo_date" in str(plan)
    assert cat.vector_count("devise-lite0") == 3 and cat.integrity_ok()
    cat.close()
    # the next index run reads the headers it lacks and embeds nothing
    before = FakeBackend.photos
    code, out, err = run_cli("--backend", "fake", "--model", "devise-lite0", "index",
                             "--no-write", "--json", str(folder), catalog=catalog)  # fmt: skip
    assert code == 0, err
    assert FakeBackend.photos == before and '"unchanged": 3' in out
    assert facts_by_name(catalog) == {
        "phone.jpg": ("2019-06-01T12:30:00", "Pixel 7", 1),
        "camera.jpg": (local, "X-T4", 0),
        "plain.jpg": (local, None, 0),
    }
    # and a search filter works on the migrated catalog
    code, out, err = run_cli("--backend", "fake", "find", "--word", "cat", "--after", "2021",
                             "--json", catalog=catalog)  # fmt: skip
    assert code == 0, err
    assert sorted(Path(h["path"]).name for h in json.loads(out)) == ["camera.jpg", "plain.jpg"]


def test_migrations_are_found_by_name_not_counted(tmp_path: Path) -> None:
    """A catalog holding as many migrations as this code, but not the same ones, is not
    taken for current: the missing ones run (a count would have skipped them)."""
    catalog = tmp_path / "c.db"
    old = Migrations(MIGRATION_SET)
    old()(m001_initial)
    old()(MIGRATIONS[2])  # m005_photo_facts, skipping m002_objects
    db = sqlite_utils.Database(catalog)
    old.apply(db)
    db.close()
    cat = Catalog(catalog)
    tables = {r[0] for r in cat.conn.execute("select name from sqlite_master where type='table'")}
    assert "objects" in tables

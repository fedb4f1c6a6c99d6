"""The indexing contract through the real CLI entry point (fake backend: fast, deterministic)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

from PIL import Image

from phototag.catalog import Catalog
from phototag.indexer import Indexer, Summary
from phototag.library import Library
from tests.badfiles import EXPECTED, make_bad_folder
from tests.conftest import FakeBackend, run_cli


def index(catalog: Path, *paths: Path, extra: tuple[str, ...] = ()) -> dict:
    code, out, err = run_cli(
        "--backend", "fake", "index", "--no-write", "--json", *extra, *map(str, paths),
        catalog=catalog,
    )  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err
    return json.loads(out)


def status(catalog: Path) -> dict:
    code, out, err = run_cli("--backend", "fake", "status", "--json", catalog=catalog)
    assert code == 0, err
    return json.loads(out)


def similar_paths(catalog: Path, image: Path) -> list[str]:
    code, out, err = run_cli(
        "--backend", "fake", "similar", str(image), "--json", "--limit", "50", catalog=catalog
    )
    assert code == 0, err
    return [hit["path"] for hit in json.loads(out)]


def test_first_run_embeds_second_run_skips(photos: Path, catalog_path: Path) -> None:
    count = len(list(photos.iterdir()))
    first = index(catalog_path, photos)
    assert first["new"] == count and first["embedded"] == count and first["skipped"] == 0
    st = status(catalog_path)
    assert (st["photos"], st["tagged"], st["errors"], st["pending"]) == (count, count, 0, 0)
    assert st["roots"] == [str(photos)] and st["index_current"] is True
    before = FakeBackend.photos
    second = index(catalog_path, photos)
    assert second["unchanged"] == count and second["embedded"] == 0
    assert FakeBackend.photos == before  # nothing was decoded or embedded


def test_moves_copies_changes_and_deletions(photos: Path, catalog_path: Path) -> None:
    index(catalog_path, photos)
    embedded_before = FakeBackend.photos
    (photos / "sub").mkdir()
    shutil.move(photos / "chelsea.png", photos / "sub" / "renamed cat.png")
    shutil.copy(photos / "coffee.png", photos / "coffee-copy.png")
    (photos / "rocket.jpg").unlink()
    img = Image.open(photos / "astronaut.png")
    img.rotate(90).save(photos / "astronaut.png")
    result = index(catalog_path, photos)
    assert (result["moved"], result["deleted"], result["changed"]) == (1, 1, 1)
    assert result["new"] == 1  # the copy
    assert result["embedded"] == 1  # only the changed photo was embedded
    assert FakeBackend.photos == embedded_before + 1
    cat = Catalog(catalog_path)
    moved = cat.photo_at(photos / "sub" / "renamed cat.png")
    assert moved is not None and cat.has_vectors(moved.id, "devise-lite0")
    assert cat.tags_of([moved.id])[moved.id], "tags travel with a moved photo"
    found = similar_paths(catalog_path, photos / "coffee.png")
    assert str(photos / "rocket.jpg") not in found
    assert found[0] == str(photos / "coffee-copy.png")
    assert str(photos / "coffee.png") not in found  # the query photo itself is not returned


def test_a_photo_moved_away_and_back_later_keeps_its_vectors(
    photos: Path, catalog_path: Path, tmp_path: Path
) -> None:
    index(catalog_path, photos)
    shutil.move(photos / "coffee.png", tmp_path / "coffee.png")
    assert index(catalog_path, photos)["deleted"] == 1
    shutil.move(tmp_path / "coffee.png", photos / "coffee again.png")
    before = FakeBackend.photos
    assert index(catalog_path, photos)["moved"] == 1
    assert FakeBackend.photos == before


def test_bad_input_is_named_skipped_and_untouched(tmp_path: Path, catalog_path: Path) -> None:
    folder = make_bad_folder(tmp_path / "bad")
    digests = {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
    }  # fmt: skip
    code, out, err = run_cli(
        "--backend", "fake", "index", "--no-write", str(folder), catalog=catalog_path
    )
    assert code == 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert all(line.startswith("skipping ") and line == line.lower() for line in lines), lines
    for name, outcome in EXPECTED.items():
        shown = name.replace("\n", "\\n")
        named = [line for line in lines if shown in line]
        if outcome == "ok":
            assert not named, name
        else:
            assert len(named) == 1 and outcome in named[0], (name, named)
    assert any("symlink loop" in line for line in lines)
    ok = sum(1 for v in EXPECTED.values() if v == "ok")
    assert status(catalog_path)["photos"] == ok
    for path, digest in digests.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path


def test_a_file_that_vanishes_mid_run_is_skipped(photos: Path, catalog_path: Path) -> None:
    library = Library(catalog_path, backend="fake")
    events = []
    with library.indexer(on_event=events.append) as indexer:
        summary = Summary()
        jobs, _gone = indexer.plan([photos], summary)
        (photos / "coffee.png").unlink()
        (photos / "rocket.jpg").write_bytes(b"replaced by garbage")
        indexer.run(jobs, summary)
    skipped = {e.path.name: e.reason for e in events if e.kind == "skipped"}
    assert skipped["coffee.png"] == "file vanished"
    assert "not a readable image" in skipped["rocket.jpg"]
    assert summary.new == len(jobs) - 2


def test_dry_run_changes_nothing(photos: Path, catalog_path: Path) -> None:
    code, out, _ = run_cli(
        "--backend", "fake", "index", "--no-write", "--dry-run", str(photos), catalog=catalog_path
    )
    assert code == 0 and "dry run" in out
    assert f"new {photos / 'chelsea.png'}" in out  # what would happen is shown...
    assert status(catalog_path)["photos"] == 0  # ...and nothing happened


def test_relocated_library_is_not_re_embedded(photos: Path, catalog_path: Path, tmp_path: Path):
    index(catalog_path, photos)
    moved = tmp_path / "new-disk" / "photos"
    moved.parent.mkdir()
    shutil.move(photos, moved)
    code, out, err = run_cli("relocate", str(photos), str(moved), catalog=catalog_path)
    assert code == 0, err
    before = FakeBackend.photos
    result = index(catalog_path, moved)
    assert result["unchanged"] == len(list(moved.iterdir())) and FakeBackend.photos == before


def test_usage_errors_exit_2_and_failures_exit_1(photos: Path, catalog_path: Path) -> None:
    code, _, err = run_cli("index", "--no-write", "--sidecar", str(photos), catalog=catalog_path)
    assert code == 2 and "exclude each other" in err
    code, _, err = run_cli("--backend", "nope", "index", str(photos), catalog=catalog_path)
    assert code == 1 and err.startswith("error: unknown backend 'nope'")
    code, _, err = run_cli("--backend", "fake", "tags", str(photos / "missing.jpg"))
    assert code == 1 and "missing.jpg: no such file" in err and "Traceback" not in err


def test_catalog_survives_a_failing_batch(photos: Path, catalog_path: Path) -> None:
    library = Library(catalog_path, backend="fake")

    class Boom(RuntimeError):
        pass

    def explode(event: object) -> None:
        raise Boom

    with library.indexer(on_event=explode) as indexer, contextlib.suppress(Boom):
        indexer.index([photos])
    assert isinstance(indexer, Indexer)
    conn = sqlite3.connect(catalog_path)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert index(catalog_path, photos)["skipped"] == 0
    assert status(catalog_path)["photos"] == len(list(photos.iterdir()))

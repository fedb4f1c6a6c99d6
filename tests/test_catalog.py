from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import numpy as np

from phototag.catalog import MACHINE, USER, Catalog, migrations
from phototag.types import Tag


def test_migrations_apply_once_and_wal(catalog_path: Path) -> None:
    Catalog(catalog_path).close()
    cat = Catalog(catalog_path)
    assert migrations().pending(cat.db) == []
    assert cat.db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert {"photos", "vectors", "tags", "roots"} <= set(cat.db.table_names())
    assert cat.integrity_ok()


def _open_new_catalog(path: str, ready: multiprocessing.synchronize.Event) -> None:
    ready.set()
    Catalog(Path(path)).close()


def test_processes_opening_a_new_catalog_at_once_migrate_it_once(tmp_path: Path) -> None:
    """All of them find it empty; without the write lock around migrations all but one die
    on 'table already exists'."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("pragma journal_mode = wal")
    holder.execute("begin immediate")  # everyone sees an empty catalog and queues for the lock
    ctx = multiprocessing.get_context("spawn")
    readies = [ctx.Event() for _ in range(3)]
    procs = [ctx.Process(target=_open_new_catalog, args=(str(path), r)) for r in readies]
    for proc in procs:
        proc.start()
    assert all(ready.wait(60) for ready in readies)
    time.sleep(1.0)  # past their check for pending migrations, waiting on the lock
    holder.execute("rollback")
    holder.close()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    cat = Catalog(path)
    names = [r[0] for r in cat.conn.execute("select name from _sqlite_migrations")]
    assert sorted(names) == sorted(set(names)) and migrations().pending(cat.db) == []


def test_relocating_a_root_keeps_rows_and_vectors(catalog_path: Path, tmp_path: Path) -> None:
    cat = Catalog(catalog_path)
    root_id, root, rel = cat.root_for(tmp_path / "old")
    assert rel == ""
    with cat.batch():
        pid = cat.upsert_photo(root_id, "a/b.jpg", size=1, mtime_ns=2, content_hash="h")
        cat.set_vectors(pid, "m", np.ones(4), np.ones(3))
    assert cat.relocate(tmp_path / "old", tmp_path / "new") == 1
    photo = cat.photo_at(tmp_path / "new" / "a" / "b.jpg")
    assert photo is not None and photo.id == pid
    assert cat.vector_of(pid, "m", "semantic") is not None


def test_a_parent_root_absorbs_child_roots(catalog_path: Path, tmp_path: Path) -> None:
    cat = Catalog(catalog_path)
    child_id, _, _ = cat.root_for(tmp_path / "lib" / "2024")
    with cat.batch():
        cat.upsert_photo(child_id, "x.jpg", size=1, mtime_ns=1, content_hash="h")
    parent_id, parent, _ = cat.root_for(tmp_path / "lib")
    assert cat.roots() == [parent]
    assert "2024/x.jpg" in cat.photos_under(parent_id, "")
    assert cat.photo_at(tmp_path / "lib" / "2024" / "x.jpg") is not None


def test_machine_tags_are_replaced_user_tags_kept(catalog_path: Path, tmp_path: Path) -> None:
    cat = Catalog(catalog_path)
    root_id, _, _ = cat.root_for(tmp_path)
    with cat.batch():
        pid = cat.upsert_photo(root_id, "a.jpg", size=1, mtime_ns=1, content_hash="h")
        cat.set_tags(pid, [Tag("Holiday", 1.0)], source=USER)
        cat.set_tags(pid, [Tag("cat", 0.9), Tag("animal", 0.95)], source=MACHINE, model="m1")
        cat.set_tags(pid, [Tag("dog", 0.8)], source=MACHINE, model="m2")
    tags = {(t.tag, src) for t, src in cat.tags_of([pid])[pid]}
    assert tags == {("Holiday", USER), ("dog", MACHINE)}
    assert set(cat.photos_tagged(["holiday"])) == {pid}


def test_a_batch_is_all_or_nothing(catalog_path: Path, tmp_path: Path) -> None:
    cat = Catalog(catalog_path)
    root_id, _, _ = cat.root_for(tmp_path)
    try:
        with cat.batch():
            cat.upsert_photo(root_id, "a.jpg", size=1, mtime_ns=1, content_hash="h")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert cat.photos_under(root_id, "") == {}
    conn = sqlite3.connect(catalog_path)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_files_and_lookups_never_become_roots(catalog_path: Path, tmp_path: Path) -> None:
    cat = Catalog(catalog_path)
    assert cat.find_root(tmp_path / "nowhere") is None
    root_id, root, rel = cat.place_file(tmp_path / "trip" / "a.jpg")
    assert (root, rel) == (str(tmp_path / "trip"), "a.jpg")
    assert cat.roots() == [str(tmp_path / "trip")]
    assert cat.place_file(tmp_path / "trip" / "sub" / "b.jpg")[2] == "sub/b.jpg"


def test_top_tagged_and_tags_among_candidates_agree_with_all_tagged(catalog_path: Path) -> None:
    """The query path asks for a word's best photos and the candidates' tags only; both must
    say what the full look-up says (best score per photo, case-insensitive, present only)."""
    cat = Catalog(catalog_path)
    root_id, _, _ = cat.root_for(Path("/p"))
    rng = np.random.default_rng(4)
    with cat.batch():
        for i in range(300):
            pid = cat.upsert_photo(root_id, f"{i}.jpg", size=i, mtime_ns=i, content_hash=None)
            words = rng.choice(["Dog", "beagle", "cat"], size=2, replace=False)
            cat.set_tags(pid, [Tag(str(w), round(float(rng.random()), 1)) for w in words],
                         source=MACHINE)  # fmt: skip
            if i % 7 == 0:
                cat.set_tags(pid, [Tag("dog", 1.0)], source=USER)
        cat.conn.execute("update tags set score = null where photo_id = 5 and source = 'user'")
    cat.mark_missing([8, 15])
    group = {"dog", "beagle"}
    every = cat.photos_tagged(group)
    assert 8 not in every and every[5] == 1.0  # no score counts as 1.0, as tags_of says
    ranked = sorted(every, key=lambda pid: (-every[pid], pid))
    for limit in (1, 10, 57, 1000):
        assert cat.top_tagged(group, limit) == ranked[:limit]
    among = list(range(0, 300, 3))
    assert cat.photos_tagged(group, among=among) == {p: s for p, s in every.items() if p in among}

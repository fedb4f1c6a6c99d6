"""The ray engine on one small local Ray instance (module-scoped: Ray starts once).

Same photos, same real backend (onnx): the ray engine must give the local engine's
vectors, tags and catalog rows; bad files get the local engine's messages; a worker that
dies is retried, and a batch whose worker dies twice is skipped, each photo named.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.badfiles import EXPECTED, make_bad_folder
from tests.conftest import run_cli

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install '.[ray]'")

DYING_SOURCE = '''
import os
from pathlib import Path

from phototag.hookspecs import hookimpl
from phototag_onnx import OnnxBackend


class DyingBackend(OnnxBackend):
    """The onnx backend, but its process dies (os._exit, no exception) on an inference call
    while the deaths folder holds fewer deaths than its ``wanted`` file asks for."""

    name = "dying"

    def embed_batch(self, views, images=None):
        folder = Path(os.environ["PHOTOTAG_TEST_DEATHS"])
        wanted = int((folder / "wanted").read_text())
        if len(list(folder.glob("died-*"))) < wanted:
            (folder / f"died-{os.getpid()}").touch()
            os._exit(1)
        return super().embed_batch(views, images)


@hookimpl
def register_backends(register):
    register("dying", DyingBackend)
'''


@pytest.fixture(scope="module")
def deaths(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deaths")


@pytest.fixture(scope="module")
def dying_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin whose backend kills its worker, laid out as pip installs one (a module and
    its dist-info with the entry point), so Ray's worker processes find it too."""
    site = tmp_path_factory.mktemp("dying-site")
    (site / "phototag_dying.py").write_text(DYING_SOURCE)
    info = site / "phototag_dying-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: phototag-dying\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[phototag]\ndying = phototag_dying\n")
    return site


@pytest.fixture(scope="module")
def local_ray(dying_site: Path, deaths: Path) -> Iterator[None]:
    """One small local Ray instance for the module; its workers see the dying plugin."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PHOTOTAG_TEST_DEATHS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(dying_site), saved["PYTHONPATH"]) if p
    )
    os.environ["PHOTOTAG_TEST_DEATHS"] = str(deaths)
    (deaths / "wanted").write_text("0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def index(
    catalog: Path, folder: Path, *options: str, backend: str = "onnx"
) -> tuple[dict, list[str]]:
    args = ("--backend", backend, "index", "--no-write", "--json", *options, str(folder))
    code, out, err = run_cli(*args, catalog=catalog)
    assert code == 0, err
    assert "Traceback" not in err
    return json.loads(out), [line for line in err.splitlines() if line.startswith("skipping ")]


def rows(catalog: Path) -> dict[str, tuple]:
    """Every photo row by path, without what differs between two runs (id, time)."""
    db = sqlite3.connect(catalog)
    db.row_factory = sqlite3.Row
    out = {}
    for row in db.execute("select * from photos"):
        names = [d[0] for d in db.execute("select * from photos limit 0").description]
        keep = {k: row[k] for k in names if k not in ("id", "root_id", "indexed_at")}
        out[row["relpath"]] = tuple(sorted(keep.items()))
    return out


def vectors(catalog: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    db = sqlite3.connect(catalog)
    found = db.execute(
        "select p.relpath, v.visual, v.semantic from vectors v join photos p on p.id = v.photo_id"
    )
    return {
        rel: (np.frombuffer(vis, "<f2").astype(np.float32), np.frombuffer(sem, "<f4"))
        for rel, vis, sem in found
    }


def tags(catalog: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(catalog)
    out: dict[str, list[tuple]] = {}
    for rel, *tag in db.execute(
        "select p.relpath, t.tag, round(t.score, 5), t.source, t.hierarchy from tags t "
        "join photos p on p.id = t.photo_id order by p.relpath, t.source, t.tag"
    ):
        out.setdefault(rel, []).append(tuple(tag))
    return out


def objects(catalog: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(catalog)
    out: dict[str, list[tuple]] = {}
    for rel, *obj in db.execute(
        "select p.relpath, o.label, round(o.score, 4), round(o.x1, 4), round(o.y1, 4) "
        "from objects o join photos p on p.id = o.photo_id order by p.relpath, o.label, o.score"
    ):
        out.setdefault(rel, []).append(tuple(obj))
    return out


def test_ray_engine_gives_the_local_engines_vectors_tags_rows_and_messages(
    local_ray: None, photos: Path, tmp_path: Path
) -> None:
    """Good photos and every kind of bad file, once with each engine."""
    make_bad_folder(photos / "bad")
    local, ray_db = tmp_path / "local.db", tmp_path / "ray.db"
    first, local_skips = index(local, photos)
    second, skipped = index(ray_db, photos, "--engine", "ray")
    assert sorted(skipped) == sorted(local_skips)
    assert all(line == line.lower() for line in skipped), skipped
    for name, outcome in EXPECTED.items():
        named = [line for line in skipped if name.replace("\n", "\\n") in line]
        if outcome == "ok":
            assert not named, name
        else:
            assert len(named) == 1 and outcome in named[0], (name, named)
    good = 10 + sum(1 for v in EXPECTED.values() if v == "ok")
    assert second["embedded"] == first["embedded"] == good
    assert rows(ray_db) == rows(local)
    a, b = vectors(local), vectors(ray_db)
    assert a.keys() == b.keys() and len(a) == good
    for rel in a:
        assert np.allclose(a[rel][0], b[rel][0], atol=1e-5), rel
        assert np.allclose(a[rel][1], b[rel][1], atol=1e-5), rel
    assert tags(ray_db) == tags(local) and tags(local)
    assert objects(ray_db) == objects(local)
    again, _ = index(ray_db, photos, "--engine", "ray")  # incremental: nothing to embed
    assert again["unchanged"] == good and again["embedded"] == 0


@pytest.fixture
def dying(dying_site: Path, deaths: Path) -> Iterator[Path]:
    """The dying backend registered in this (driver) process too; deaths reset."""
    sys.path.insert(0, str(dying_site))
    import phototag_dying

    from phototag.plugins import pm

    for old in deaths.glob("died-*"):
        old.unlink()
    pm.register(phototag_dying, name="dying")
    try:
        yield deaths
    finally:
        pm.unregister(name="dying")
        sys.path.remove(str(dying_site))
        (deaths / "wanted").write_text("0")


def test_a_worker_that_dies_once_is_retried(
    local_ray: None, dying: Path, photos: Path, tmp_path: Path
) -> None:
    (dying / "wanted").write_text("1")
    summary, skipped = index(tmp_path / "c.db", photos, "--engine", "ray", backend="dying")
    assert len(list(dying.glob("died-*"))) == 1  # it did die, mid-batch
    assert skipped == []
    assert summary["embedded"] == len(list(photos.iterdir()))


def test_photos_of_a_batch_whose_worker_dies_twice_are_skipped_and_named(
    local_ray: None, dying: Path, photos: Path, tmp_path: Path
) -> None:
    (dying / "wanted").write_text("1000")
    catalog = tmp_path / "c.db"
    summary, skipped = index(catalog, photos, "--engine", "ray", backend="dying")
    assert len(list(dying.glob("died-*"))) == 2  # the first try and one retry
    names = sorted(p.name for p in photos.iterdir())
    assert summary["skipped"] == len(names) and summary["embedded"] == 0
    assert sorted(line.split(": ")[0].rsplit("/", 1)[1] for line in skipped) == names
    assert all("the ray worker died on its batch twice" in line for line in skipped)
    stored = sqlite3.connect(catalog).execute("select distinct status, error from photos")
    assert stored.fetchall() == [("error", "not embedded: the ray worker died on its batch twice")]

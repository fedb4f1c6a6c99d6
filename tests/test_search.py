"""The visual index in a reduced space (PCA fitted on the library), re-ranked on full vectors:
real SQLite, real Annoy, vectors with a CNN-like spectrum (bench/synthetic.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from phototag import reduction
from phototag.catalog import Catalog
from phototag.search import VectorIndex, refresh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from synthetic import spectral  # noqa: E402

MODEL = "m"
N = 3000


def _fill(cat: Catalog, vectors: np.ndarray, start: int = 0) -> None:
    root_id, _, _ = cat.root_for(Path("/photos"))
    with cat.batch():
        for i, vector in enumerate(vectors, start):
            pid = cat.upsert_photo(root_id, f"{i:05d}.jpg", size=i, mtime_ns=i,
                                   content_hash=f"{i:032x}")  # fmt: skip
            cat.set_vectors(pid, MODEL, vector, np.ones(50, dtype=np.float32) / np.sqrt(50))


@pytest.fixture
def reduced(tmp_path: Path) -> tuple[Catalog, np.ndarray]:
    vectors = np.concatenate(list(spectral(N + 200, 1280, seed=5, chunk=1000)))
    cat = Catalog(tmp_path / "catalog.db")
    _fill(cat, vectors[:N])
    refresh(cat, MODEL, reduce_from=1000)
    return cat, vectors


def _exact(cat: Catalog, query: np.ndarray, k: int) -> list[int]:
    ids, matrix, _ = cat.vectors(MODEL, "visual")
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return ids[np.argsort(-(matrix @ query), kind="stable")[:k]].tolist()


def test_a_large_visual_index_is_built_in_the_fitted_space(
    reduced: tuple[Catalog, np.ndarray], tmp_path: Path
) -> None:
    cat, _ = reduced
    index = VectorIndex(cat, MODEL, "visual")
    meta = json.loads(index.meta_path.read_text())
    assert meta["dim"] == reduction.DIM and meta["projection"]
    assert cat.latest_projection(MODEL, "visual") == (meta["projection"], reduction.DIM, N)
    full = VectorIndex(cat, MODEL, "semantic")  # a small space is never reduced
    assert json.loads(full.meta_path.read_text())["projection"] is None
    # as cells, five times narrower than 1280 floats: far smaller than a full index's file
    folder = index.ann_path.with_name(meta["cells"])
    assert not index.ann_path.exists() and (folder / "cells.json").exists()
    other = Catalog(tmp_path / "full.db")
    _fill(other, np.concatenate(list(spectral(N, 1280, seed=5, chunk=1000))))
    refresh(other, MODEL, reduce_from=10 * N)
    full_size = VectorIndex(other, MODEL, "visual").ann_path.stat().st_size
    assert sum(f.stat().st_size for f in folder.iterdir()) < full_size / 3


def test_reduced_search_finds_the_exact_neighbours_with_exact_scores(
    reduced: tuple[Catalog, np.ndarray],
) -> None:
    cat, vectors = reduced
    index = VectorIndex(cat, MODEL, "visual")
    rng = np.random.default_rng(9)
    hits = 0
    for row in rng.choice(N, 40, replace=False):
        query = vectors[row] + 0.5 * vectors[(row + 1) % N]
        query /= np.linalg.norm(query)
        found = index.query(query.tolist(), 10)
        exact = _exact(cat, query, 10)
        hits += len({pid for pid, _ in found} & set(exact))
        ids = [pid for pid, _ in found]
        _, full = cat.vectors_of(ids, MODEL, "visual")
        full /= np.linalg.norm(full, axis=1, keepdims=True)
        assert np.allclose([s for _, s in found], full @ query, atol=1e-5)  # re-ranked exactly
    assert hits / 400 >= 0.95


def test_photos_added_after_the_build_are_found_and_growth_refits(
    reduced: tuple[Catalog, np.ndarray],
) -> None:
    cat, vectors = reduced
    _fill(cat, vectors[N:], start=N)  # not in the Annoy file yet: the exact tail
    newest = cat.photo_at(Path(f"/photos/{N + 199:05d}.jpg"))
    assert newest is not None
    found = VectorIndex(cat, MODEL, "visual").query(vectors[N + 199].tolist(), 5)
    assert found[0][0] == newest.id and found[0][1] == pytest.approx(1.0, abs=1e-3)
    first = cat.latest_projection(MODEL, "visual")
    refresh(cat, MODEL, reduce_from=1000)
    assert cat.latest_projection(MODEL, "visual") == first  # grown a little: the same fit
    _fill(cat, np.concatenate(list(spectral(N, 1280, seed=6, chunk=1000))), start=N + 200)
    refresh(cat, MODEL, reduce_from=1000)
    refit = cat.latest_projection(MODEL, "visual")
    assert refit is not None and first is not None and refit[0] > first[0]
    assert refit[2] == 2 * N + 200
    # the old fit is pruned; the index answers in the new one
    assert cat.projection_blob(first[0]) is None
    found = VectorIndex(cat, MODEL, "visual").query(vectors[N + 199].tolist(), 5)
    assert found[0][0] == newest.id


def test_cells_read_a_share_of_the_library_and_find_its_nearest(tmp_path: Path) -> None:
    from phototag import cells

    full = np.concatenate(list(spectral(8000, 512, seed=3, chunk=2000))).astype(np.float32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    projection = np.linalg.qr(np.random.default_rng(2).standard_normal((512, 256)))[0].T
    vectors = reduction.apply(projection, full).astype(np.float32)
    ids = np.arange(1, len(vectors) + 1) * 7  # photo ids are not row numbers
    cells.build(tmp_path, ids, vectors, projection.astype(np.float32))
    found = cells.Cells(tmp_path)
    assert found.cells == cells.cell_count(8000) == 31
    # the cells project a query as reduction.apply does (in C, float32)
    assert np.allclose(found.project(full[5].tolist()), vectors[5], atol=1e-5)
    rng = np.random.default_rng(4)
    hits = 0
    for row in rng.choice(len(vectors), 20, replace=False):
        query = vectors[row] + 0.3 * vectors[(row + 1) % len(vectors)]
        query /= np.linalg.norm(query)
        exact = (ids[np.argsort(-(vectors @ query))[:10]]).tolist()
        every = found.nearest(query.tolist(), 10, probes=found.cells)  # all cells: exact
        assert [pid for pid, _ in every] == exact
        assert [s for _, s in every] == pytest.approx(np.sort(vectors @ query)[::-1][:10], abs=1e-5)
        some = found.nearest(query.tolist(), 10, probes=8)  # a quarter of the cells
        hits += len({pid for pid, _ in some} & set(exact))
    assert 0.7 <= hits / 200 < 1.0  # most neighbours, not all: only 8 cells were read


def test_a_rebuild_keeps_only_its_own_cells(reduced: tuple[Catalog, np.ndarray]) -> None:
    cat, vectors = reduced
    index = VectorIndex(cat, MODEL, "visual")
    first = json.loads(index.meta_path.read_text())["cells"]
    crashed = index.ann_path.with_name(f".{index.ann_path.stem}.cells-1-99999-1.tmp")
    crashed.mkdir()
    (crashed / "0.ann").write_bytes(b"half")
    _fill(cat, vectors[N : N + 10], start=N)
    refresh(cat, MODEL, reduce_from=1000)
    meta = json.loads(index.meta_path.read_text())
    assert meta["cells"] != first and meta["count"] == N + 10
    left = [p.name for p in cat.path.parent.iterdir() if ".cells-" in p.name]
    assert left == [meta["cells"]]
    found = index.query(vectors[N + 3].tolist(), 3)
    assert found[0][1] == pytest.approx(1.0, abs=1e-3)


def test_unreadable_cells_are_named_not_a_traceback(reduced: tuple[Catalog, np.ndarray]) -> None:
    from phototag.errors import CatalogError

    cat, vectors = reduced
    index = VectorIndex(cat, MODEL, "visual")
    folder = index.ann_path.with_name(json.loads(index.meta_path.read_text())["cells"])
    (folder / "3.ann").unlink()  # the .json still names these cells
    with pytest.raises(CatalogError, match="search index unreadable.*phototag index"):
        index.query(vectors[7].tolist(), 3)
    assert not index.is_current()  # so the next index run rebuilds it
    refresh(cat, MODEL, reduce_from=1000)  # what the message's `phototag index` runs
    assert index.query(vectors[7].tolist(), 3)[0][1] == pytest.approx(1.0, abs=1e-3)

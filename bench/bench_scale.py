"""Search at scale (issue 13): index build, index size, recall and cold queries over a large
synthetic catalog.

    python bench/bench_scale.py --n 1000000 --dir build/scale-1m [--runs 5] [--queries 50]

The catalog (bench/synthetic.py ``fill_bulk``: spectral visual vectors, GloVe semantic
vectors of tag words, two tags and a date per photo) is kept in ``--dir`` and reused; the
search indexes are rebuilt when ``--rebuild`` is given or missing. Each query is a fresh
process (as bench/bench_query.py), with its peak RSS (VmHWM). ``similar`` gets a catalogued
photo: one file under ``--dir`` is written with the size and mtime its row says, so its
stored vector is used. Recall@10 is the reduced visual index (re-ranked) against exact
search over every stored vector, for catalogued photos as queries (themselves left out).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_query import byte_compile, report_cold  # noqa: E402
from synthetic import fill_bulk, word_points  # noqa: E402

from phototag.catalog import Catalog  # noqa: E402
from phototag.models import load_model  # noqa: E402
from phototag.search import SPACES, VectorIndex  # noqa: E402

PROBE_PHOTO = 12_345


def catalog_for(folder: Path, n: int, model: str, visual_dim: int) -> Catalog:
    path = folder / "catalog.db"
    if not path.exists():
        semantic = word_points(load_model())
        started = time.perf_counter()
        fill_bulk(path, n, model, visual_dim=visual_dim, semantic=semantic).close()
        print(f"filled {n} photos in {time.perf_counter() - started:.0f} s")
    cat = Catalog(path)
    photos = folder / "photos"
    photos.mkdir(exist_ok=True)
    if cat.roots() != [str(photos)]:
        cat.relocate(Path(cat.roots()[0]), photos)
    i = PROBE_PHOTO % n
    probe = photos / f"{i // 1000:03d}" / f"IMG_{i:06d}.jpg"
    probe.parent.mkdir(exist_ok=True)
    probe.write_bytes(os.urandom(1000 + i))
    os.utime(probe, ns=(i, i))
    return cat


def recall(cat: Catalog, model: str, queries: int) -> tuple[float, float]:
    """Recall@10 of the visual index against exact search, and its mean query time (warm)."""
    total = cat.vector_count(model)
    rng = np.random.default_rng(11)
    picks = sorted(rng.choice(np.arange(1, total + 1), queries, replace=False).tolist())
    _, query = cat.vectors_of(picks, model, "visual")
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    best = np.full((queries, 11), -2.0)
    best_ids = np.zeros((queries, 11), dtype=np.int64)
    for ids, matrix in cat.vector_chunks(model, "visual", size=20_000):
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        sims = query @ matrix.T
        both = np.concatenate([best, sims], axis=1)
        both_ids = np.concatenate([best_ids, np.broadcast_to(ids, sims.shape)], axis=1)
        top = np.argsort(-both, axis=1)[:, :11]
        best = np.take_along_axis(both, top, axis=1)
        best_ids = np.take_along_axis(both_ids, top, axis=1)
    index = VectorIndex(cat, model, "visual")
    hits, elapsed = 0, 0.0
    for q, pid, exact in zip(query, picks, best_ids, strict=True):
        started = time.perf_counter()
        found = index.query(q.tolist(), 10, exclude={pid})
        elapsed += time.perf_counter() - started
        hits += len({p for p, _ in found} & (set(exact.tolist()) - {pid}))
    return hits / (10 * queries), elapsed / queries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    byte_compile()
    args.dir.mkdir(parents=True, exist_ok=True)
    model = load_model()
    cat = catalog_for(args.dir, args.n, model.name, model.visual_dim)
    size = os.path.getsize(cat.path) / 1e9
    print(f"catalog: {cat.vector_count(model.name)} photos, {size:.2f} GB; {os.cpu_count()} cores")
    for space in SPACES:
        index = VectorIndex(cat, model.name, space)
        if args.rebuild or not index.is_current():
            info = index.build(force=True)
            print(f"{space:>8} index built in {info.seconds:.0f} s")
        meta = index.meta() or {}
        size_mb = index.disk_size() / 1e6
        kind = f"{meta.get('trees')} trees" if not meta.get("cells") else "cells"
        print(f"{space:>8} index: {size_mb:.0f} MB, dim {meta.get('dim')}, {kind}, "
              f"projection {meta.get('projection')}")  # fmt: skip
    if args.queries:  # --queries 0: cold queries only (the exact scan takes minutes at 1M)
        hit_rate, seconds = recall(cat, model.name, args.queries)
        print(f"visual recall@10 {hit_rate:.3f} vs exact ({args.queries} catalogued photos), "
              f"{1000 * seconds:.0f} ms a query in a warm process")  # fmt: skip
    i = PROBE_PHOTO % args.n
    probe = args.dir / "photos" / f"{i // 1000:03d}" / f"IMG_{i:06d}.jpg"
    base = ["--catalog", str(cat.path)]
    cat.close()
    cases = {
        "find --word dog": [*base, "find", "--word", "dog"],
        "find 2 words --not, 2019 only": [
            *base, "find", "--word", "dog", "--word", "grass", "--not", "cat",
            "--after", "2019", "--before", "2020",
        ],
        "similar CATALOGUED.jpg": [*base, "similar", str(probe)],
    }  # fmt: skip
    report_cold(cases, args.runs, width=30)


if __name__ == "__main__":
    main()

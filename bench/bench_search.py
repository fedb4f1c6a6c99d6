"""Annoy recall@10 against exact search, and build time, on 100,000 vectors.

    python bench/bench_search.py [--n 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import clustered, fill_catalog  # noqa: E402

from phototag.search import VectorIndex  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cat = fill_catalog(Path(tmp) / "catalog.db", args.n, "bench")
        print(f"catalog of {args.n} photos filled in {time.perf_counter() - started:.1f} s")
        for space in ("visual", "semantic"):
            index = VectorIndex(cat, "bench", space)
            info = index.build(force=True)
            size_mb = index.ann_path.stat().st_size / 1e6
            ids, matrix, _ = cat.vectors("bench", space)
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            rng = np.random.default_rng(7)
            picks = rng.choice(len(ids), args.queries, replace=False)
            noise = clustered(args.queries, matrix.shape[1], seed=9) * 0.3
            queries = matrix[picks] + noise
            hits, elapsed = 0, 0.0
            for q in queries:
                q = q / np.linalg.norm(q)
                exact = set(ids[np.argsort(-(matrix @ q))[:10]].tolist())
                t = time.perf_counter()
                got = {pid for pid, _ in index.query(q, 10)}
                elapsed += time.perf_counter() - t
                hits += len(exact & got)
            print(
                f"{space:>8}: dim {matrix.shape[1]}, build {info.seconds:.1f} s, "
                f"{size_mb:.0f} MB, recall@10 {hits / (10 * args.queries):.3f}, "
                f"query {1000 * elapsed / args.queries:.1f} ms"
            )


if __name__ == "__main__":
    main()

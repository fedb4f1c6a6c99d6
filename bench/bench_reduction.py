"""How much of the visual space PCA keeps, and the reduced index's recall, on any catalog.

    python bench/bench_reduction.py CATALOG [--model devise-lite0]

Meant for a catalog of real photos (``phototag index build/photos`` after
``python tools/fetch_photos.py build/photos``): it reports the share of the unit vectors'
energy in the top 64/128/256/512 principal directions (real embeddings against the
synthetic spectrum of bench/synthetic.py), then builds the visual index of a copy of the
catalog in the reduced space whatever its size, and measures recall@10 against exact search
with every catalogued photo as a query (itself left out).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import spectral  # noqa: E402

from phototag.catalog import Catalog  # noqa: E402
from phototag.models import DEFAULT_MODEL  # noqa: E402
from phototag.search import VectorIndex  # noqa: E402


def energy(matrix: np.ndarray) -> dict[int, float]:
    """Share of the (uncentred) energy of unit rows in the top-k principal directions."""
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    values = np.linalg.svd(matrix.astype(np.float64), compute_uv=False) ** 2
    return {k: float(values[:k].sum() / values.sum()) for k in (64, 128, 256, 512)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.db"
        source = Catalog(args.catalog)
        source.conn.execute(f"vacuum into '{path}'")  # a consistent copy, WAL included
        source.close()
        cat = Catalog(path)
        ids, matrix, _ = cat.vectors(args.model, "visual")
        synthetic = np.concatenate(list(spectral(len(ids), matrix.shape[1], seed=3)))
        show = lambda e: ", ".join(f"{k}: {v:.3f}" for k, v in e.items())  # noqa: E731
        print(f"{len(ids)} photos, {matrix.shape[1]} dims")
        print(f"energy in the top k directions, real:      {show(energy(matrix))}")
        print(f"energy in the top k directions, synthetic: {show(energy(synthetic))}")
        index = VectorIndex(cat, args.model, "visual")
        index.build(force=True, reduce_from=1)
        meta = index.meta() or {}
        unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        hits = 0
        for row, pid in enumerate(ids.tolist()):
            exact = ids[np.argsort(-(unit @ unit[row]), kind="stable")[:11]].tolist()
            found = index.query(unit[row].tolist(), 10, exclude={pid})
            hits += len({p for p, _ in found} & (set(exact) - {pid}))
        print(f"reduced index: dim {meta.get('dim')}, {meta.get('trees')} trees; "
              f"recall@10 {hits / (10 * len(ids)):.3f} against exact search")  # fmt: skip
        cat.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

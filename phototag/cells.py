"""A large library's visual index as cells: an inverted file of small Annoy files.

One Annoy forest over a million reduced (256-d) vectors is a 1.8 GB file, and a query that
searches it deep enough for recall@10 >= 0.95 maps most of that file into the process
(bench/bench_scale.py: 0.53 s and ~1 GB of RSS). Here the vectors are split into k-means
cells of about ``CELL_SIZE`` photos. A query finds the cells whose centroids lie nearest
(an Annoy file of the centroids, searched whole) and scans only those: each cell is an
Annoy file of its own, searched whole too, so the scan runs in C, needs no numpy, and the
process maps only the cells it reads. The share of cells a query reads sets the recall
(``probes``); ``search.VectorIndex`` re-ranks what comes back with the full stored vectors.

A build writes a new folder and names it in the index's ``.json``; readers of the old
folder finish with the files they have open, or find it gone and read the ``.json`` again.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import os
import sys
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag.vecmath import unit

if TYPE_CHECKING:
    import numpy as np

#: photos a cell holds on average: about one Annoy leaf of 256-d vectors
CELL_SIZE = 256
#: share of the cells a query reads (bench/bench_scale.py, 1,000,000 synthetic photos:
#: recall@10 0.925 at 3 %, 0.963 at 6 %, 0.988 at 12.5 %)
PROBE_SHARE = 0.08
#: a query reads at least this many photos' vectors, however few cells that is (a small
#: library's cells hold a larger share of its neighbours)
MIN_SCANNED = 25_000
#: k-means: photos sampled per cell and rounds
SAMPLE_PER_CELL = 64
ROUNDS = 8
CENTROIDS = "centroids.ann"
PROJECTION = "projection.ann"
IDS = "ids.i8"
DESCRIPTION = "cells.json"


def cell_count(photos: int) -> int:
    return max(1, round(photos / CELL_SIZE))


def probes_for(cells: int, photos: int) -> int:
    """How many cells a query reads."""
    share = math.ceil(cells * PROBE_SHARE)
    floor = math.ceil(cells * MIN_SCANNED / max(photos, 1))
    return max(1, min(cells, max(share, floor)))


def build(
    folder: Path, ids: np.ndarray, vectors: np.ndarray, projection: np.ndarray, *, seed: int = 0
) -> None:
    """Write the cells of ``vectors`` ([N, dim] unit rows, photo ``ids``, reduced by
    ``projection`` [dim, source dims]) into the new, empty ``folder``."""
    import numpy as np
    from annoy import AnnoyIndex

    n, dim = vectors.shape
    # the projection as an Annoy file of its rows: a query projects its vector in C by
    # asking it for every row's dot product (0.2 ms instead of 15 ms of pure Python)
    index = AnnoyIndex(projection.shape[1], "dot")
    for d, row in enumerate(projection):
        index.add_item(d, row)
    index.build(1)
    index.save(str(folder / PROJECTION))
    index.unload()
    cells = cell_count(n)
    centroids = _kmeans(vectors, cells, np.random.default_rng(seed))
    assign = _nearest(vectors, centroids)
    order = np.argsort(assign, kind="stable")
    offsets = np.searchsorted(assign[order], np.arange(cells + 1)).tolist()
    index = AnnoyIndex(dim, "angular")
    for c, centroid in enumerate(centroids):
        index.add_item(c, centroid)
    index.build(1)
    index.save(str(folder / CENTROIDS))
    index.unload()
    for c in range(cells):
        lo, hi = offsets[c], offsets[c + 1]
        if lo == hi:
            continue
        index = AnnoyIndex(dim, "angular")
        for j, row in enumerate(vectors[order[lo:hi]]):
            index.add_item(j, row)
        index.build(1)
        index.save(str(folder / f"{c}.ann"))
        index.unload()
    ids[order].astype("<i8").tofile(folder / IDS)
    description = {"cells": cells, "dim": dim, "photos": n, "offsets": offsets}
    (folder / DESCRIPTION).write_text(json.dumps(description))
    _fsync_folder(folder)


def _kmeans(vectors: np.ndarray, cells: int, rng: np.random.Generator) -> np.ndarray:
    """[cells, dim] unit centroids (spherical k-means on a sample: cosine, not distance)."""
    import numpy as np

    n = len(vectors)
    sample = vectors[np.sort(rng.choice(n, min(n, SAMPLE_PER_CELL * cells), replace=False))]
    centroids = sample[rng.choice(len(sample), cells, replace=False)].astype(np.float32)
    for _ in range(ROUNDS):
        assign = _nearest(sample, centroids)
        order = np.argsort(assign, kind="stable")
        starts = np.searchsorted(assign[order], np.arange(cells))
        counts = np.bincount(assign, minlength=cells)
        sums = np.add.reduceat(sample[order], np.minimum(starts, len(sample) - 1), axis=0)
        empty = counts == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]  # re-seed empty cells
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centroids.astype(np.float32)


def _nearest(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The cell of each vector (its centroid of largest cosine), in chunks (a million by
    4,000 cells at once would take 16 GB)."""
    import numpy as np

    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), 8192):
        out[start : start + 8192] = np.argmax(vectors[start : start + 8192] @ centroids.T, axis=1)
    return out


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


class Cells:
    """The cells of one build, for queries (no numpy)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        description: dict[str, Any] = json.loads((folder / DESCRIPTION).read_text())
        self.cells = int(description["cells"])
        self.dim = int(description["dim"])
        self.photos = int(description["photos"])
        self.offsets: list[int] = description["offsets"]

    def project(self, vector: list[float]) -> list[float]:
        """``vector`` in the cells' space, unit length."""
        from annoy import AnnoyIndex

        index = AnnoyIndex(len(vector), "dot")
        index.load(str(self.folder / PROJECTION))
        rows, dots = index.get_nns_by_vector(
            vector, self.dim, search_k=4 * self.dim + 4, include_distances=True
        )
        index.unload()
        if len(rows) != self.dim:
            raise OSError(f"{self.folder / PROJECTION}: holds {len(rows)} of {self.dim} rows")
        point = [0.0] * self.dim
        for row, dot in zip(rows, dots, strict=True):
            point[row] = dot
        return unit(point)

    def nearest(
        self, point: list[float], n: int, *, probes: int | None = None
    ) -> list[tuple[int, float]]:
        """The ``n`` photos of the probed cells nearest to ``point`` (a unit vector in the
        cells' space) as (photo id, cosine in that space), best first."""
        from annoy import AnnoyIndex

        probes = probes or probes_for(self.cells, self.photos)
        index = AnnoyIndex(self.dim, "angular")
        index.load(str(self.folder / CENTROIDS))
        nearest_cells = index.get_nns_by_vector(point, probes, search_k=2 * self.cells + 2)
        index.unload()
        best: list[tuple[float, int]] = []  # the n best so far: a min-heap of (cosine, id)
        prefix = f"{self.folder}{os.sep}"  # (a Path per cell costs more than its scan)
        fd = os.open(prefix + IDS, os.O_RDONLY)
        try:
            for c in nearest_cells:
                lo, hi = self.offsets[c], self.offsets[c + 1]
                if lo == hi:
                    continue
                index = AnnoyIndex(self.dim, "angular")
                index.load(f"{prefix}{c}.ann")
                local, dists = index.get_nns_by_vector(
                    point, min(n, hi - lo), search_k=2 * (hi - lo) + 2, include_distances=True
                )
                index.unload()
                if len(best) >= n:  # keep only those better than the n-th best so far
                    cut = bisect.bisect_left(dists, math.sqrt(max(0.0, 2.0 - 2.0 * best[0][0])))
                    if not cut:
                        continue
                    local = local[:cut]
                ids = array("q")
                ids.frombytes(os.pread(fd, 8 * (hi - lo), 8 * lo))
                if sys.byteorder == "big":
                    ids.byteswap()
                for j, d in zip(local, dists, strict=False):
                    item = (1.0 - d * d / 2.0, ids[j])
                    if len(best) < n:
                        heapq.heappush(best, item)
                    else:
                        heapq.heappushpop(best, item)
        finally:
            os.close(fd)
        return [(pid, score) for score, pid in sorted(best, reverse=True)]

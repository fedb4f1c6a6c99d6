"""Nearest-neighbour search: a memory-mapped Annoy index plus an exact tail.

The Annoy file is rebuilt after index runs; vectors stored since its build are
searched exactly and merged, and rows that left the catalog are filtered, so
results are never stale even while a watcher keeps adding photos.

A large library's visual index is built in a reduced space (``reduction``: PCA of the
library's own vectors, 1280 -> 256 dims) and split into k-means cells (``cells``), so a
query reads a few percent of it instead of mapping one big forest; its candidates are then
re-ranked exactly with the stored full vectors, so every score a query returns is an exact
cosine. Queries import no numpy (``vecmath``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag import cells as cellfiles
from phototag.errors import CatalogError
from phototag.vecmath import Projection, Rows, unit
from phototag.vectorstore import SPACES as STORED

if TYPE_CHECKING:
    from phototag.catalog import Catalog
    from phototag.reduction import Fitted

SPACES = ("visual", "semantic")
#: the visual space is reduced from this many photos on (smaller indexes are small anyway)
REDUCE_FROM = 10_000
#: an older reduced index (one forest, before cells) is searched this many times deeper
RERANK_FACTOR = 4
#: candidates re-ranked on the full vectors, per result wanted (bench/bench_scale.py: the
#: reduced order is close enough that 3 x loses nothing against 9 x)
RERANK_SHARE = 3


@dataclass
class BuildInfo:
    space: str
    count: int
    seconds: float
    skipped: bool = False


def _trees_for(count: int, dim: int) -> int:
    """More trees for more (and wider) vectors: measured recall@10 >= 0.99 at 100k (bench/)."""
    if dim <= 128:
        return int(min(20, max(10, count // 5000)))
    return int(min(60, max(10, count // 2000)))


class VectorIndex:
    """One space (visual or semantic) of one model, stored beside the catalog."""

    def __init__(self, catalog: Catalog, model: str, space: str) -> None:
        self.catalog = catalog
        self.model = model
        self.space = space
        stem = catalog.path.with_suffix("")
        self.ann_path = Path(f"{stem}.{model}.{space}.ann")
        self.meta_path = Path(f"{stem}.{model}.{space}.json")

    def meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None

    def is_current(self) -> bool:
        meta = self.meta()
        if meta is None or meta.get("token") != self.catalog.state_token(self.model):
            return False
        if meta.get("projection") and not meta.get("cells"):
            return False  # a reduced index from before cells: rebuilt as cells
        return not meta.get("count") or meta.get("ann") == self._identity(meta)

    def tail_size(self) -> int:
        meta = self.meta() or {}
        row = self.catalog.conn.execute(
            "select count(*) from vectors where model = ? and seq > ?",
            [self.model, int(meta.get("seq", 0))],
        ).fetchone()
        return int(row[0])

    def build(self, *, force: bool = False, reduce_from: int = REDUCE_FROM) -> BuildInfo:
        """Write a fresh Annoy file atomically (readers keep the old mapping meanwhile).

        Builders take turns (an OS lock), so two processes never pair one's ``.json`` with
        the other's ``.ann``; the ``.json`` also names the ``.ann`` it belongs to.
        """
        import fcntl

        try:
            fd = os.open(f"{self.ann_path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return self._build(force=force, reduce_from=reduce_from)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return self._build(force=force, reduce_from=reduce_from)
        finally:
            os.close(fd)

    def _cells_folder(self, name: str) -> Path:
        return self.ann_path.with_name(name)

    def _identity(self, meta: dict[str, Any] | None = None) -> list[int] | None:
        """(inode, size, mtime) of the file the ``.json`` was written with: the ``.ann``, or
        the cells' id file."""
        cells = (meta or {}).get("cells")
        path = self.ann_path if not cells else self._cells_folder(cells) / cellfiles.IDS
        try:
            st = os.stat(path)
            if cells:  # the files every query opens (a cell gone shows when it is read)
                for name in (cellfiles.CENTROIDS, cellfiles.PROJECTION, cellfiles.DESCRIPTION):
                    os.stat(path.with_name(name))
        except OSError:
            return None
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def disk_size(self) -> int:
        """Bytes the index files take (the ``.ann``, or the current cells)."""
        cells = (self.meta() or {}).get("cells")
        if cells:
            return sum(f.stat().st_size for f in self._cells_folder(cells).iterdir())
        return self.ann_path.stat().st_size if self.ann_path.exists() else 0

    def _sweep_cells(self, keep: str | None) -> None:
        """Remove cell folders other than ``keep``: older builds, and a crashed build's."""
        import shutil

        prefix = f"{self.ann_path.stem}.cells-"
        for path in self.ann_path.parent.iterdir():
            if path.name != keep and path.name.lstrip(".").startswith(prefix):
                shutil.rmtree(path, ignore_errors=True)

    def _build(self, *, force: bool, reduce_from: int) -> BuildInfo:
        import time

        from phototag import reduction

        started = time.perf_counter()
        token = self.catalog.state_token(self.model)
        meta = self.meta()
        if not force and meta is not None and meta.get("token") == token and self.is_current():
            return BuildInfo(self.space, int(meta["count"]), 0.0, skipped=True)
        seq = self.catalog.max_seq(self.model)
        projection = None
        if self.space == "visual":
            projection = reduction.projection_for(self.catalog, self.model, reduce_from=reduce_from)
        if projection is not None:
            count, dim, cells = self._build_cells(projection, seq)
            trees = 0
        else:
            count, dim, trees = self._build_forest(seq)
            cells = None
        meta = {
            "token": token, "seq": seq, "count": count, "trees": trees, "dim": dim,
            "projection": projection.id if projection else None, "cells": cells,
        }  # fmt: skip
        meta["ann"] = self._identity(meta)
        tmp_meta = self.meta_path.with_name(f".{self.meta_path.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self.meta_path)
        # readers of the old files have them open or read the new .json and retry
        if projection is not None:
            self.ann_path.unlink(missing_ok=True)
            self.catalog.prune_projections(self.model, self.space, keep=projection.id)
        self._sweep_cells(keep=cells)
        return BuildInfo(self.space, count, time.perf_counter() - started)

    def _build_forest(self, seq: int) -> tuple[int, int, int]:
        """One Annoy file of every vector up to ``seq``: (count, dim, trees)."""
        from annoy import AnnoyIndex

        tmp = self.ann_path.with_name(f".{self.ann_path.name}.{os.getpid()}.tmp")
        index: Any = None
        count, dim = 0, 0
        for ids, matrix in self.catalog.vector_chunks(self.model, self.space, upto_seq=seq):
            if index is None:
                dim = int(matrix.shape[1])
                index = AnnoyIndex(dim, "angular")
            for photo_id, vector in zip(ids.tolist(), matrix, strict=True):
                index.add_item(photo_id, vector)
            count += len(ids)
        if index is None:
            self.ann_path.unlink(missing_ok=True)
            return 0, 0, 0
        trees = _trees_for(count, dim)
        index.build(trees, n_jobs=-1)
        index.save(str(tmp))
        index.unload()
        os.replace(tmp, self.ann_path)
        return count, dim, trees

    def _build_cells(self, projection: Fitted, seq: int) -> tuple[int, int, str | None]:
        """The reduced vectors up to ``seq`` as cells in a new folder: (count, dim, folder
        name). They are held in memory for the k-means: 1 GB a million photos."""
        import time

        import numpy as np

        from phototag import reduction

        parts = [
            (ids, reduction.apply(projection.matrix, matrix).astype(np.float32))
            for ids, matrix in self.catalog.vector_chunks(self.model, self.space, upto_seq=seq)
        ]
        if not parts:
            return 0, 0, None
        ids = np.concatenate([i for i, _ in parts])
        vectors = np.concatenate([v for _, v in parts])
        del parts
        name = f"{self.ann_path.stem}.cells-{seq}-{os.getpid()}-{time.time_ns()}"
        tmp = self._cells_folder(f".{name}.tmp")
        tmp.mkdir()
        cellfiles.build(tmp, ids, vectors, projection.matrix)
        os.replace(tmp, self._cells_folder(name))
        return len(ids), int(vectors.shape[1]), name

    def _projection(self, meta: dict[str, Any]) -> Projection | None | bool:
        """The projection the index was built in (None: full vectors; False: it is gone,
        a rebuild replaced it, so this index file is unusable)."""
        if not meta.get("projection"):
            return None
        found = self.catalog.projection_blob(int(meta["projection"]))
        if found is None:
            return False
        dim, blob = found
        return Projection.from_blob(blob, dim)

    def query(
        self, vector: Sequence[float], k: int, *, exclude: set[int] | frozenset[int] = frozenset()
    ) -> list[tuple[int, float]]:
        """The ``k`` present photos nearest to ``vector`` as (photo id, cosine), best first."""
        vector = unit(vector)
        column_dtype = STORED[self.space][1]
        meta = self.meta()
        scores: dict[int, float] = {}
        since = 0
        if meta and meta.get("count") and meta.get("ann") == self._identity(meta):
            try:
                scores, since = self._indexed(meta, vector, k, exclude)
            except OSError:  # a rebuild replaced the cells meanwhile: read its .json again
                meta = self.meta()
                if meta and meta.get("count") and meta.get("ann") == self._identity(meta):
                    try:
                        scores, since = self._indexed(meta, vector, k, exclude)
                    except OSError as exc:  # files gone or broken: rebuild at the next run
                        self.meta_path.unlink(missing_ok=True)
                        raise CatalogError(
                            f"{self.meta_path}: search index unreadable ({exc}); "
                            "run phototag index to rebuild it"
                        ) from None
        tail_ids, tail, _ = self.catalog.tail_blobs(self.model, self.space, since_seq=since)
        if tail_ids:
            exact = Rows(tail, column_dtype, normalise=True).cosines(vector)
            for photo_id, score in zip(tail_ids, exact, strict=True):
                scores[photo_id] = score  # replaces a stale Annoy vector of the same photo
        for photo_id in exclude:
            scores.pop(photo_id, None)
        present = self.catalog.photos_by_id(scores)
        ranked = sorted(
            (
                (pid, s)
                for pid, s in scores.items()
                if pid in present and present[pid].status == "ok"
            ),
            key=lambda item: -item[1],
        )
        return ranked[:k]

    def _indexed(
        self, meta: dict[str, Any], vector: list[float], k: int,
        exclude: set[int] | frozenset[int],
    ) -> tuple[dict[int, float], int]:  # fmt: skip
        """Neighbours from the index files (re-ranked on the full vectors when they hold
        reduced ones) and the seq they cover; nothing when the files are of a projection
        the catalog no longer has (the exact tail then covers everything)."""
        from annoy import AnnoyIndex

        want = min(k + len(exclude) + 20, int(meta["count"]))
        if meta.get("cells"):  # they carry the projection they were built in
            cells = cellfiles.Cells(self._cells_folder(meta["cells"]))
            found = cells.nearest(cells.project(vector), want * RERANK_SHARE)
            return self._reranked([pid for pid, _ in found], vector), int(meta["seq"])
        projection = self._projection(meta)
        if projection is False:
            return {}, 0
        point = vector if projection is None else projection.apply(vector)
        index = AnnoyIndex(int(meta["dim"]), "angular")
        index.load(str(self.ann_path))  # memory-mapped
        factor = 1 if projection is None else RERANK_FACTOR  # candidates to re-rank
        ids, dists = index.get_nns_by_vector(
            point, want * 3 * factor, search_k=want * factor * int(meta["trees"]) * 8,
            include_distances=True,
        )  # fmt: skip
        index.unload()
        if projection is None:
            scores = {pid: 1.0 - d * d / 2.0 for pid, d in zip(ids, dists, strict=True)}
        else:
            scores = self._reranked(ids, vector)
        return scores, int(meta["seq"])

    def _reranked(self, ids: list[int], vector: list[float]) -> dict[int, float]:
        """Exact cosines of these photos' stored full vectors to ``vector``."""
        found, blobs = self.catalog.vector_blobs(ids, self.model, self.space)
        exact = Rows(blobs, STORED[self.space][1], normalise=True).cosines(vector)
        return dict(zip(found, exact, strict=True))


def refresh(
    catalog: Catalog, model: str, *, min_tail: int = 0, reduce_from: int = REDUCE_FROM
) -> list[BuildInfo]:
    """Rebuild the indexes whose exact tail grew past ``min_tail`` vectors (or that are stale)."""
    built = []
    for space in SPACES:
        index = VectorIndex(catalog, model, space)
        if index.is_current():
            continue
        if min_tail and index.meta() is not None and index.tail_size() < min_tail:
            continue
        built.append(index.build(reduce_from=reduce_from))
    return built

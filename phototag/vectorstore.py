"""The catalog's vectors: per photo and model, a visual and a semantic vector, and the
fitted projections that shrink the visual space for its search index.

A visual vector is stored as float16 (1280 dims: 2.5 kB), a semantic one as float32 (50
dims: 200 bytes). Queries read stored vectors as raw blobs (``vecmath`` decodes them
without numpy); indexing and duplicates read numpy matrices, in chunks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: space -> (column, stored dtype)
SPACES = {"visual": ("visual", "<f2"), "semantic": ("semantic", "<f4")}


def _blob(vector: np.ndarray, dtype: str) -> bytes:
    import numpy as np

    return np.asarray(vector, dtype=dtype).tobytes()


def _matrix(blobs: Sequence[bytes], dtype: str) -> np.ndarray:
    import numpy as np

    return np.frombuffer(b"".join(blobs), dtype=dtype).reshape(len(blobs), -1).astype(np.float32)


class VectorStore:
    """The vector half of ``Catalog`` (a mixin over its connection)."""

    conn: sqlite3.Connection

    def _next_seq(self) -> int:
        row = self.conn.execute("select coalesce(max(seq), 0) + 1 from vectors").fetchone()
        return int(row[0])

    def set_vectors(
        self, photo_id: int, model: str, visual: np.ndarray, semantic: np.ndarray
    ) -> None:
        self.conn.execute(
            "insert or replace into vectors (photo_id, model, seq, visual, semantic) "
            "values (?, ?, ?, ?, ?)",
            [photo_id, model, self._next_seq(), _blob(visual, "<f2"), _blob(semantic, "<f4")],
        )

    # -- raw blobs (the query path: no numpy) --------------------------------------------------

    def tail_blobs(
        self, model: str, space: str, *, since_seq: int = 0
    ) -> tuple[list[int], list[bytes], int]:
        """(photo ids, blobs, max seq) of present photos' vectors stored after ``since_seq``,
        by photo id."""
        column, _dtype = SPACES[space]
        rows = self.conn.execute(
            f"select v.photo_id, v.seq, v.{column} from vectors v indexed by vectors_seq "
            "join photos p on p.id = v.photo_id "
            "where v.seq > ? and v.model = ? and p.status = 'ok'",
            [since_seq, model],
        ).fetchall()
        rows.sort(key=lambda r: r[0])
        top = max((r[1] for r in rows), default=since_seq)
        return [r[0] for r in rows], [r[2] for r in rows], top

    def vector_blobs(
        self, photo_ids: Sequence[int], model: str, space: str
    ) -> tuple[list[int], list[bytes]]:
        """Stored vectors of these photos (those that have one), in the order given."""
        column, _dtype = SPACES[space]
        found: dict[int, bytes] = {}
        for start in range(0, len(photo_ids), 500):
            chunk = list(photo_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(
                self.conn.execute(
                    f"select photo_id, {column} from vectors "
                    f"where model = ? and photo_id in ({marks})",
                    [model, *chunk],
                )
            )
        ids = [pid for pid in photo_ids if pid in found]
        return ids, [found[pid] for pid in ids]

    def vector_blob(self, photo_id: int, model: str, space: str) -> bytes | None:
        column, _dtype = SPACES[space]
        row = self.conn.execute(
            f"select {column} from vectors where photo_id = ? and model = ?", [photo_id, model]
        ).fetchone()
        return None if row is None else bytes(row[0])

    # -- numpy matrices (indexing, duplicates, tools) ------------------------------------------

    def vectors(
        self, model: str, space: str, *, since_seq: int = 0
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(photo ids, matrix, max seq) of present photos' vectors for ``model`` in ``space``."""
        import numpy as np

        ids, blobs, top = self.tail_blobs(model, space, since_seq=since_seq)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32), since_seq
        return np.asarray(ids, dtype=np.int64), _matrix(blobs, SPACES[space][1]), top

    def vector_chunks(
        self, model: str, space: str, *, size: int = 4096, upto_seq: int | None = None,
        every: int = 1,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
        """(photo ids, float32 matrix) of present photos' vectors, ``size`` rows at a time
        (100,000 visual vectors as one float32 matrix would take 500 MB); only those stored
        up to ``upto_seq``, if given; only every ``every``-th photo (a sample), if given."""
        import numpy as np

        column, dtype = SPACES[space]
        sql = (
            f"select v.photo_id, v.{column} from vectors v join photos p on p.id = v.photo_id "
            "where v.model = ? and p.status = 'ok'"
        )
        params: list[object] = [model]
        if upto_seq is not None:
            sql += " and v.seq <= ?"
            params.append(upto_seq)
        if every > 1:
            sql += " and v.photo_id % ? = 0"
            params.append(every)
        cursor = self.conn.execute(f"{sql} order by v.photo_id", params)
        while rows := cursor.fetchmany(size):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, _matrix([r[1] for r in rows], dtype)

    def vectors_of(
        self, photo_ids: Sequence[int], model: str, space: str
    ) -> tuple[list[int], np.ndarray]:
        """Vectors of these photos (those that have one), in the order given."""
        import numpy as np

        ids, blobs = self.vector_blobs(photo_ids, model, space)
        if not ids:
            return [], np.zeros((0, 0), np.float32)
        return ids, _matrix(blobs, SPACES[space][1])

    def vector_of(self, photo_id: int, model: str, space: str) -> np.ndarray | None:
        blob = self.vector_blob(photo_id, model, space)
        return None if blob is None else _matrix([blob], SPACES[space][1])[0]

    # -- counts and state ----------------------------------------------------------------------

    def vector_count(self, model: str) -> int:
        """Present photos with vectors for ``model``."""
        row = self.conn.execute(
            "select count(*) from vectors v join photos p on p.id = v.photo_id "
            "where v.model = ? and p.status = 'ok'",
            [model],
        ).fetchone()
        return int(row[0])

    def max_seq(self, model: str) -> int:
        row = self.conn.execute(
            "select coalesce(max(seq), 0) from vectors where model = ?", [model]
        ).fetchone()
        return int(row[0])

    def state_token(self, model: str) -> str:
        """Changes whenever the set of searchable vectors changes (for the Annoy build)."""
        row = self.conn.execute(
            "select count(*), coalesce(max(v.seq), 0), coalesce(sum(p.id), 0) from vectors v "
            "join photos p on p.id = v.photo_id where v.model = ? and p.status = 'ok'",
            [model],
        ).fetchone()
        return f"{row[0]}:{row[1]}:{row[2]}"

    # -- projections (the reduced visual space of the search index) ---------------------------

    def add_projection(self, model: str, space: str, components: bytes, dim: int,
                       fitted_on: int) -> int:  # fmt: skip
        """Store a fitted projection (``dim`` rows of float32); returns its id."""
        cur = self.conn.execute(
            "insert into projections (model, space, dim, components, fitted_on, fitted_at) "
            "values (?, ?, ?, ?, ?, ?)",
            [model, space, dim, components, fitted_on, time.time()],
        )
        return int(cur.lastrowid or 0)

    def latest_projection(self, model: str, space: str) -> tuple[int, int, int] | None:
        """(id, dim, photos it was fitted on) of the newest projection, or None."""
        row = self.conn.execute(
            "select id, dim, fitted_on from projections where model = ? and space = ? "
            "order by id desc limit 1",
            [model, space],
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def projection_blob(self, projection_id: int) -> tuple[int, bytes] | None:
        """(dim, float32 components) of a stored projection, or None (pruned since)."""
        row = self.conn.execute(
            "select dim, components from projections where id = ?", [projection_id]
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def prune_projections(self, model: str, space: str, keep: int) -> None:
        """Forget the projections older than ``keep`` (no index file uses them any more)."""
        self.conn.execute(
            "delete from projections where model = ? and space = ? and id < ?",
            [model, space, keep],
        )

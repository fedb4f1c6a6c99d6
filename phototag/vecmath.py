"""Vector arithmetic for the query path, without numpy for the sizes a query meets.

Importing numpy costs a cold ``phototag find`` about 0.17 s, more than everything else it
does over 10,000 photos. A query scores a few hundred candidates (or a filtered set of a
few thousand) against a handful of term vectors: pure Python does that in milliseconds.
Above ``NUMPY_FROM`` rows numpy is imported after all, and it computes in float64 like the
pure-Python path, so both give the same scores (to the last bits of a float64).
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from operator import mul

#: rows at which numpy's import pays for itself (pure Python: ~2 us per 50-d dot product)
NUMPY_FROM = 3000

Vector = Sequence[float]


def floats(blob: bytes, dtype: str) -> Sequence[float]:
    """A stored little-endian vector (``<f4`` or ``<f2``) as a sequence of floats."""
    if dtype == "<f4":
        out = array("f", blob)
        if sys.byteorder == "big":
            out.byteswap()
        return out
    if dtype == "<f2":
        return struct.unpack(f"<{len(blob) // 2}e", blob)
    raise ValueError(f"unknown vector dtype {dtype}")


def dot(a: Vector, b: Vector) -> float:
    return sum(map(mul, a, b))


def norm(a: Vector) -> float:
    return math.sqrt(sum(map(mul, a, a)))


def unit(a: Iterable[float]) -> list[float]:
    """``a`` scaled to length 1 (a zero vector stays zero)."""
    values = [float(x) for x in a]
    length = max(norm(values), 1e-12)
    return [x / length for x in values]


def add(vectors: Sequence[Vector]) -> list[float]:
    return [sum(column) for column in zip(*vectors, strict=True)]


class Rows:
    """Stored vectors of one space, decoded once and scored against any number of terms.

    ``normalise``: divide each cosine by the row's length (visual vectors are stored as
    they came; semantic ones are unit already and are used as they are).
    """

    def __init__(self, blobs: Sequence[bytes], dtype: str, *, normalise: bool) -> None:
        self.count = len(blobs)
        self._matrix = None
        self._rows: list[Sequence[float]] = []
        self._scale: list[float] = []
        if self.count >= NUMPY_FROM:
            import numpy as np

            matrix = np.frombuffer(b"".join(blobs), dtype=dtype).reshape(self.count, -1)
            matrix = matrix.astype(np.float64)
            if normalise:
                matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            self._matrix = matrix
        else:
            self._rows = [floats(b, dtype) for b in blobs]
            if normalise:
                self._scale = [1.0 / max(norm(r), 1e-12) for r in self._rows]

    def __len__(self) -> int:
        return self.count

    def cosines(self, vector: Vector) -> list[float]:
        """Each row's dot product with ``vector`` (its cosine, for a unit ``vector``)."""
        if self._matrix is not None:
            import numpy as np

            return (self._matrix @ np.asarray(vector, dtype=np.float64)).tolist()
        out = [sum(map(mul, row, vector)) for row in self._rows]
        if self._scale:
            out = [c * s for c, s in zip(out, self._scale, strict=True)]
        return out


class Projection:
    """A fitted linear map to fewer dimensions (``reduction.fit``): the top principal
    directions of the unit vectors (uncentred, so dot products, not variances, survive),
    applied in pure Python (1280 -> 256 dims: ~10 ms)."""

    def __init__(self, components: Sequence[Vector]) -> None:
        self.components = components

    @classmethod
    def from_blob(cls, components: bytes, dim: int) -> Projection:
        flat = floats(components, "<f4")
        width = len(flat) // dim
        view = memoryview(flat)  # rows as views of one array: no copies
        return cls([view[i * width : (i + 1) * width] for i in range(dim)])

    @property
    def dim(self) -> int:
        return len(self.components)

    def apply(self, vector: Vector) -> list[float]:
        """The unit projection of ``vector`` (Annoy's angular metric wants no more)."""
        return unit(sum(map(mul, row, vector)) for row in self.components)

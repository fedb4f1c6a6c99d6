"""The reduced visual space of a large library's search index: PCA fitted on the library.

Pooled CNN features hold most of their energy in a few hundred directions, so the top
``DIM`` principal directions of the library's own unit vectors keep the neighbours that
matter; the search re-ranks them with the stored full vectors. The directions are those of
the uncentred second moment: they keep dot products (what the cosine is made of), not
variances. A fit is stored in the catalog and reused while the library grows, and refitted
once it has doubled since (a re-fit rebuilds the index in the new space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from phototag.catalog import Catalog

#: dimensions of the reduced visual space
DIM = 256
#: photos sampled for a fit (evenly through the library): enough for 256 directions of 1280
FIT_SAMPLE = 50_000
#: refit when the library has grown this many times since the last fit
REFIT_GROWTH = 2.0


@dataclass
class Fitted:
    id: int
    matrix: np.ndarray  # [DIM, source dims] float32, unit rows


def fit(catalog: Catalog, model: str, count: int, *, dim: int = DIM) -> np.ndarray:
    """The top ``dim`` principal directions of (a sample of) the library's unit visual
    vectors, [dim, source dims], largest first."""
    import numpy as np

    every = max(1, count // FIT_SAMPLE)
    moment: np.ndarray | None = None
    for _ids, matrix in catalog.vector_chunks(model, "visual", every=every):
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        part = matrix.T.astype(np.float64) @ matrix
        moment = part if moment is None else moment + part
    if moment is None:
        raise ValueError("no visual vectors to fit a projection on")
    _values, vectors = np.linalg.eigh(moment)  # ascending
    return np.ascontiguousarray(vectors[:, ::-1][:, :dim].T, dtype=np.float32)


def projection_for(catalog: Catalog, model: str, *, reduce_from: int) -> Fitted | None:
    """The projection to build ``model``'s visual index in: the stored one, a new fit if
    there is none or the library outgrew it, or None when the library is too small to
    need one (or its vectors are no wider than ``DIM``)."""
    import numpy as np

    count = catalog.vector_count(model)
    if count < max(reduce_from, 1):
        return None
    latest = catalog.latest_projection(model, "visual")
    if latest is not None and count <= REFIT_GROWTH * latest[2]:
        dim, blob = catalog.projection_blob(latest[0]) or (0, b"")
        if dim:
            return Fitted(latest[0], np.frombuffer(blob, dtype="<f4").reshape(dim, -1))
    matrix = fit(catalog, model, count)
    if matrix.shape[1] <= DIM:
        return None
    matrix = matrix[: min(DIM, count)]
    pid = catalog.add_projection(model, "visual", matrix.astype("<f4").tobytes(),
                                 len(matrix), count)  # fmt: skip
    return Fitted(pid, matrix)


def apply(matrix: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """[N, source] vectors -> [N, DIM] reduced ones (unit length: Annoy is angular)."""
    import numpy as np

    reduced = vectors @ matrix.T
    return reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)

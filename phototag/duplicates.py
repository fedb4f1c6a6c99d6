"""``phototag duplicates``: groups of the same photo, identical or nearly so. Nothing is deleted.

Identical: the same bytes (content hash). Near: the same picture resized, recompressed,
cropped a little or lightly edited, found by visual similarity. Every visual vector is
projected to PROJECTED_DIM dimensions by a fixed random projection (cosines survive it within
about 0.02 near 0.9), an Annoy index over the projections gives each photo its nearest
neighbours, and pairs within MARGIN of the threshold there are checked on the full vectors.
Pairs at or above the threshold join groups (single linkage); identical copies count once.

Within a group the best photo comes first: the largest (pixels), then the oldest, then by
path; each photo's score is its visual cosine to that best photo.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from phototag.catalog import Catalog

#: visual cosine at or above which two photos are the same picture; chosen on the generated
#: set of bench/bench_duplicates.py (see the README for its recall and precision)
DEFAULT_THRESHOLD = 0.87
PROJECTED_DIM = 128
NEIGHBOURS = 10
MARGIN = 0.06
_SEED = 20131205


@dataclass
class Member:
    photo_id: int
    path: Path
    score: float
    width: int | None
    height: int | None
    size: int
    date: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "score": round(self.score, 6), "width": self.width,
            "height": self.height, "bytes": self.size, "date": self.date,
        }  # fmt: skip


@dataclass
class Group:
    kind: str  # "identical" or "near"
    photos: list[Member] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "photos": [p.as_dict() for p in self.photos]}


class _Sets:
    """Union-find over photo ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = parent.setdefault(x, x)
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = {}
        for x in list(self.parent):
            found.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in found.values() if len(g) > 1]


def _as_array(ids: set[int]) -> np.ndarray:
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def _projected(
    catalog: Catalog, model: str, keep: set[int] | None, skip: set[int]
) -> tuple[np.ndarray, np.ndarray]:
    ids_parts, parts = [], []
    projection: np.ndarray | None = None
    wanted = None if keep is None else _as_array(keep)
    unwanted = _as_array(skip)
    for ids, matrix in catalog.vector_chunks(model, "visual"):
        mask = ~np.isin(ids, unwanted)
        if wanted is not None:
            mask &= np.isin(ids, wanted)
        ids, matrix = ids[mask], matrix[mask]
        if not len(ids):
            continue
        if projection is None:
            rng = np.random.default_rng(_SEED)
            projection = rng.standard_normal((matrix.shape[1], PROJECTED_DIM)).astype(np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        reduced = matrix @ projection
        reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
        ids_parts.append(ids)
        parts.append(reduced)
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros((0, PROJECTED_DIM), dtype=np.float32)
    return np.concatenate(ids_parts), np.concatenate(parts)


def near_pairs(
    catalog: Catalog,
    model: str,
    threshold: float,
    *,
    keep: set[int] | None = None,
    skip: Iterable[int] = (),
) -> list[tuple[int, int, float]]:
    """(photo id, photo id, visual cosine) of every pair found at or above ``threshold``
    among present photos (those in ``keep``, if given, and not in ``skip``)."""
    from annoy import AnnoyIndex

    ids, reduced = _projected(catalog, model, keep, set(skip))
    if len(ids) < 2:
        return []
    index = AnnoyIndex(PROJECTED_DIM, "angular")
    for position, vector in enumerate(reduced):
        index.add_item(position, vector)
    index.build(10, n_jobs=-1)
    floor = threshold - MARGIN
    workers = os.cpu_count() or 1

    def candidates(block: range) -> set[tuple[int, int]]:
        found = set()
        for i in block:
            near, dists = index.get_nns_by_item(i, NEIGHBOURS + 1, include_distances=True)
            for j, dist in zip(near, dists, strict=True):
                if j != i and 1.0 - dist * dist / 2.0 >= floor:
                    found.add((min(i, j), max(i, j)))
        return found

    step = -(-len(ids) // (workers * 8))
    with ThreadPoolExecutor(workers) as pool:
        blocks = [range(s, min(s + step, len(ids))) for s in range(0, len(ids), step)]
        pairs = set().union(*pool.map(candidates, blocks))
    index.unload()
    if not pairs:
        return []
    involved = sorted({int(ids[k]) for pair in pairs for k in pair})
    found, full = catalog.vectors_of(involved, model, "visual")
    full /= np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)
    row = {pid: r for r, pid in enumerate(found)}
    out = []
    for i, j in pairs:
        a, b = int(ids[i]), int(ids[j])
        if a in row and b in row:
            cos = float(full[row[a]] @ full[row[b]])
            if cos >= threshold:
                out.append((a, b, cos))
    return out


def find_groups(
    catalog: Catalog,
    model: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    keep: set[int] | None = None,
) -> list[Group]:
    """Identical groups, then near groups, each best photo first; ``keep`` limits the photos
    looked at (the PATH and filter arguments)."""
    identical = catalog.hash_groups(keep)
    photos = catalog.photos_by_id({p for g in identical for p in g})
    facts = catalog.facts_of(photos)
    # one copy of each content takes part in the near search: the best of its identical group
    copies: dict[int, list[int]] = {}
    ranked_identical = []
    for group in identical:
        ordered = _best_first(group, photos, facts)
        copies[ordered[0]] = ordered[1:]
        ranked_identical.append(ordered)
    hidden = {p for rest in copies.values() for p in rest}
    sets = _Sets()
    for a, b, _cos in near_pairs(catalog, model, threshold, keep=keep, skip=hidden):
        sets.union(a, b)
    near = sets.groups()
    photos.update(catalog.photos_by_id({p for g in near for p in g} - set(photos)))
    facts.update(catalog.facts_of({p for g in near for p in g} - set(facts)))
    groups = [Group("identical", _members(g, photos, facts, None)) for g in ranked_identical]
    for group in near:
        ordered = _best_first(group, photos, facts)
        vectors = _cosines_to_first(catalog, model, ordered)
        groups.append(Group("near", _members(ordered, photos, facts, vectors)))
    groups.sort(key=lambda g: (g.kind != "identical", -len(g.photos), str(g.photos[0].path)))
    return groups


def _best_first(ids: Iterable[int], photos: dict[int, Any], facts: dict[int, Any]) -> list[int]:
    def key(pid: int) -> tuple[int, str, str]:
        p = photos[pid]
        pixels = (p.width or 0) * (p.height or 0)
        return (-pixels, facts[pid].date or "9999", str(p.path))

    return sorted((pid for pid in ids if pid in photos), key=key)


def _cosines_to_first(catalog: Catalog, model: str, ordered: list[int]) -> dict[int, float]:
    best = ordered[0]
    ids, full = catalog.vectors_of(ordered, model, "visual")
    full /= np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)
    cos = full @ full[ids.index(best)] if best in ids else np.zeros(len(ids))
    out = {pid: float(c) for pid, c in zip(ids, cos.tolist(), strict=True)}
    out[best] = 1.0
    return out


def _members(
    ordered: list[int], photos: dict[int, Any], facts: dict[int, Any],
    scores: dict[int, float] | None,
) -> list[Member]:  # fmt: skip
    out = []
    for pid in ordered:
        p = photos[pid]
        score = 1.0 if scores is None else scores.get(pid, 0.0)
        out.append(Member(pid, p.path, score, p.width, p.height, p.size, facts[pid].date))
    return out

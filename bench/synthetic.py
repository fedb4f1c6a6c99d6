"""Synthetic catalogs for benchmarks: many photos without decoding any.

Vectors are drawn around cluster centres (photo collections are clumpy: bursts,
trips, near-duplicates), which is harder for exact-vs-approximate agreement
than uniform noise is for clustering but closer to real libraries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phototag.catalog import MACHINE, Catalog
from phototag.models import ModelSpec
from phototag.types import Tag


def clustered(n: int, dim: int, *, clusters: int = 2000, spread: float = 0.6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def word_points(model: ModelSpec, n: int = 300) -> np.ndarray:
    """[n, D] word vectors of the model's first tag words: where the synthetic photos'
    semantic vectors sit, so word queries find neighbours as they would in a library."""
    from phototag.tagging import Tagger
    from phototag.words import WordVectors

    words = Tagger.from_model(model).words
    vectors = WordVectors(words)
    return np.stack([vectors.vector(w) for w in words if w in vectors][:n])


def fill_catalog(
    path: Path, n: int, model: str, *, visual_dim: int = 1280, semantic: np.ndarray | None = None
) -> Catalog:
    """A catalog of ``n`` fake photos (paths under /bench) with vectors, two tags each, and
    dates spread evenly over 2015-2024 (a tenth of them per year)."""
    cat = Catalog(path)
    root_id, _, _ = cat.root_for(Path("/bench-photos"))
    visual = clustered(n, visual_dim, seed=1)
    sem = semantic if semantic is not None else clustered(n, 50, clusters=300, seed=2)
    words = ["cat", "dog", "bed", "sofa", "chair", "car", "tree", "beach", "cup", "lamp"]
    step = 2000
    for start in range(0, n, step):
        with cat.batch():
            for i in range(start, min(n, start + step)):
                pid = cat.upsert_photo(
                    root_id, f"{i // 1000:03d}/IMG_{i:06d}.jpg", size=1000 + i, mtime_ns=i,
                    content_hash=f"{i:032x}",
                )  # fmt: skip
                cat.set_vectors(pid, model, visual[i], sem[i % len(sem)])
                year, day = 2015 + i % 10, (i // 10) % 365
                cat.set_facts(
                    pid, taken_at=f"{year}-{1 + day // 31 % 12:02d}-{1 + day % 28:02d}T12:00:00",
                    camera=None, has_gps=False, mtime_ns=i,
                )  # fmt: skip
                cat.set_tags(
                    pid, [Tag(words[i % 10], 0.8), Tag(words[(i * 7) % 10], 0.3)],
                    source=MACHINE, model=model,
                )  # fmt: skip
    return cat


def spectral(n: int, dim: int, *, decay: float = 1.0, seed: int = 0, chunk: int = 10_000):
    """Unit vectors in chunks whose covariance spectrum falls as ``rank ** -decay``: CNN
    features are like this (a few hundred directions hold most of the variance), unlike
    isotropic noise, which no projection can shrink. The axes are the principal directions
    (a rotation would cost a 1280 x 1280 product per chunk and change nothing for PCA or for
    Annoy's random hyperplanes). Yields float32 [<=chunk, dim]."""
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, dim + 1, dtype=np.float64) ** (-decay / 2)).astype(np.float32)
    mean = rng.standard_normal(dim).astype(np.float32) * 0.05
    for start in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32) * scale
        x += mean
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def fill_bulk(
    path: Path, n: int, model: str, *, visual_dim: int = 1280, semantic: np.ndarray,
    decay: float = 1.0,
) -> Catalog:  # fmt: skip
    """Like ``fill_catalog`` (same paths, tags and dates) but in bulk statements, for
    catalogs of a million photos; visual vectors come from ``spectral``."""
    cat = Catalog(path)
    root_id, _, _ = cat.root_for(Path("/bench-photos"))
    words = ["cat", "dog", "bed", "sofa", "chair", "car", "tree", "beach", "cup", "lamp"]
    conn = cat.conn
    start = 0
    for visual in spectral(n, visual_dim, decay=decay, seed=1, chunk=20_000):
        ids = range(start + 1, start + 1 + len(visual))
        photos, vectors, tags = [], [], []
        for row, pid in enumerate(ids):
            i = pid - 1
            year, day = 2015 + i % 10, (i // 10) % 365
            date = f"{year}-{1 + day // 31 % 12:02d}-{1 + day % 28:02d}T12:00:00"
            photos.append((pid, root_id, f"{i // 1000:03d}/IMG_{i:06d}.jpg", 1000 + i, i,
                           f"{i:032x}", date))  # fmt: skip
            vectors.append((pid, model, pid, visual[row].astype("<f2").tobytes(),
                            semantic[i % len(semantic)].astype("<f4").tobytes()))  # fmt: skip
            tags.append((pid, words[i % 10], 0.8, MACHINE, model, ""))
            if (i * 7) % 10 != i % 10:
                tags.append((pid, words[(i * 7) % 10], 0.3, MACHINE, model, ""))
        with cat.batch():
            conn.executemany(
                "insert into photos (id, root_id, relpath, size, mtime_ns, hash, status, "
                "indexed_at, photo_date, has_gps) values (?, ?, ?, ?, ?, ?, 'ok', 0, ?, 0)",
                photos,
            )
            conn.executemany("insert into vectors values (?, ?, ?, ?, ?)", vectors)
            conn.executemany("insert into tags values (?, ?, ?, ?, ?, ?)", tags)
        start += len(visual)
    return cat

"""The tests' deterministic fake backend, importable without pytest (subprocess drivers use it).

It registers through the same hook as real plugins and is only ever selected explicitly
(``--backend fake``).
"""

from __future__ import annotations

import numpy as np

from phototag.backends import Backend
from phototag.hookspecs import hookimpl


class FakeBackend(Backend):
    """Vectors from a fixed random projection of the pixels: same photo, same vectors."""

    name = "fake"
    calls = 0
    photos = 0

    #: no detector: the fake is about the pipeline, fast and deterministic
    detector = None

    def embed_batch(self, views, images=None):  # type: ignore[no-untyped-def]
        """Counts inference calls and photos (what batching tests look at)."""
        FakeBackend.calls += 1
        FakeBackend.photos += len(views)
        return super().embed_batch(views, images)

    def run_batch(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        n = len(pixels)
        pooled = pixels.reshape(n, 3, 14, 16, 14, 16).mean(axis=(3, 5)).reshape(n, -1)
        rng = np.random.default_rng(0)
        # as wide as the real backbone's features, so the model's DeViSE head applies
        w_feat = rng.standard_normal((pooled.shape[1], 1280)).astype(np.float32)
        w_logit = rng.standard_normal((pooled.shape[1], 1000)).astype(np.float32)
        logits = (pooled @ w_logit) * 0.5
        # one class stands out, as with a real photo, so every photo gets a sure tag
        logits[np.arange(n), logits.argmax(axis=1)] += 10.0
        return {"features": pooled @ w_feat, "logits": logits}


class FakePlugin:
    @hookimpl
    def register_backends(self, register):  # type: ignore[no-untyped-def]
        register("fake", FakeBackend)

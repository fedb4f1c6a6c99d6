"""Shared fixtures: an isolated environment per test, sample photos, and a fake backend.

The fake backend is deterministic and registers through the same hook as real
plugins; it is only ever selected explicitly (``--backend fake``).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from phototag.backends import Backend
from phototag.hookspecs import hookimpl
from phototag.plugins import pm

SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"
INTERIORS = Path(__import__("interior_photos").__file__).parent / "images"


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
        return {"features": pooled @ w_feat, "logits": (pooled @ w_logit) * 0.5}


class FakePlugin:
    @hookimpl
    def register_backends(self, register):  # type: ignore[no-untyped-def]
        register("fake", FakeBackend)


@pytest.fixture(autouse=True)
def isolated(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test reads or writes the user's real config, catalog, cache or models."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PHOTOTAG_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("PHOTOTAG_CATALOG", str(home / "catalog.db"))
    monkeypatch.setenv("PHOTOTAG_MODELS_DIR", str(home / "models"))
    monkeypatch.setenv("PHOTOTAG_CACHE_DIR", str(_shared_cache(tmp_path_factory)))
    monkeypatch.delenv("PHOTOTAG_LOAD_PLUGINS", raising=False)
    plugin = FakePlugin()
    pm.register(plugin, name="fake-backend")
    try:
        yield
    finally:
        pm.unregister(plugin)


_CACHE: list[Path] = []


def _shared_cache(factory: pytest.TempPathFactory) -> Path:
    """The word-vector cache is built once per session and shared (it is read-only after)."""
    if not _CACHE:
        _CACHE.append(factory.mktemp("cache"))
    return _CACHE[0]


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of real sample photos (copies: tests may change them)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"):
        shutil.copy(SKIMAGE_DATA / name, folder / name)
    for src in sorted(INTERIORS.glob("*.jpg"))[:5]:
        shutil.copy(src, folder / src.name)
    return folder


def run_cli(*args: str, catalog: Path | None = None) -> tuple[int, str, str]:
    """Run the real entry point in-process; returns (exit code, stdout, stderr)."""
    from phototag.cli import main

    argv = (["--catalog", str(catalog)] if catalog else []) + list(args)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def env_for_subprocess(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env

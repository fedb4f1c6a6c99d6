"""Shared fixtures: an isolated environment per test, sample photos, and a fake backend.

The fake backend is deterministic and registers through the same hook as real
plugins; it is only ever selected explicitly (``--backend fake``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from phototag.plugins import pm
from tests.fakes import FakeBackend, FakePlugin

__all__ = ["FakeBackend", "FakePlugin", "env_for_subprocess", "run_cli"]

SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"
INTERIORS = Path(__import__("interior_photos").__file__).parent / "images"


@pytest.fixture(autouse=True)
def isolated(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test reads or writes the user's real config, catalog, cache or models."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PHOTOTAG_CONFIG", str(home / "config.toml"))
    # the pipeline tests write every listed tag into files, so the fake backend's words
    # reach them too; tests/test_tag_tiers.py checks the default (confident words only)
    (home / "config.toml").write_text('file_tags = "all"\n')
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
    """The environment for a child ``phototag``: it imports this checkout's phototag (not an
    editable install of another one)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def exif_keywords(path: Path) -> dict[str, list[str]]:
    """The keyword fields other photo software reads, as ExifTool reports them."""
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-charset", "iptc=UTF8", "-XMP-dc:Subject",
         "-XMP-lr:HierarchicalSubject", "-IPTC:Keywords", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    item = json.loads(out.stdout)[0]
    as_list = lambda v: v if isinstance(v, list) else [v] if v is not None else []  # noqa: E731
    return {k.split(":")[1]: [str(x) for x in as_list(v)] for k, v in item.items() if ":" in k}

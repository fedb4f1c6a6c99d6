"""phototag: tag and search photos with a visual-semantic model, offline."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """``phototag.__version__`` on demand: reading package metadata costs ~15 ms at start-up."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("phototag")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0"
    raise AttributeError(name)

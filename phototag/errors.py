"""Typed errors raised by the library; only ``cli.py`` turns them into messages.

Every message is one lowercase line that names the file and the problem, so the
CLI can print ``skipping {path}: {reason}`` or ``error: {message}`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class PhototagError(Exception):
    """Base class: anything the user can act on."""


class PhotoError(PhototagError):
    """One photo could not be handled; the run goes on without it."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnreadableImage(PhotoError):
    """The file is not an image we can decode (truncated, garbage, bomb, ...)."""


class WriteError(PhotoError):
    """Tags could not be written into a file or its sidecar."""


class ExifToolMissing(PhototagError):
    def __init__(self) -> None:
        super().__init__(
            "exiftool is not installed: install it (debian/ubuntu: "
            "'apt-get install libimage-exiftool-perl', macos: 'brew install exiftool') "
            "or run with --no-write"
        )


class UnknownWord(PhototagError):
    """A query word has no word vector."""

    def __init__(self, word: str, suggestions: Sequence[str] = ()) -> None:
        self.word = word
        self.suggestions = list(suggestions)
        hint = f"; did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown word '{word}'{hint}")


class ModelError(PhototagError):
    """A model is missing, damaged or does not fit the backend."""


class UnknownBackend(PhototagError):
    pass


class UnknownEngine(PhototagError):
    """No engine of that name is loaded, its optional dependency is missing, or it cannot run
    as asked (exit code 2: a usage problem, not a failure of the run)."""


class CatalogError(PhototagError):
    pass


class BadQuery(PhototagError):
    """A query the user must rephrase (a bad date, no search term): a usage error, exit 2."""


class UnknownPhoto(PhototagError):
    """No photo with this id in the catalog (``phototag serve`` addresses photos by id)."""

    def __init__(self, photo_id: int) -> None:
        self.photo_id = photo_id
        super().__init__(f"no photo {photo_id} in the catalog")


class InvalidKeyword(PhototagError):
    """A keyword the user typed cannot be written (empty, too long)."""

"""Walking folders: which files are photos, and every reason one cannot be read.

The walk never raises for one bad entry: unreadable folders, symlink loops and
special files become ``ScanError``s the caller reports, and the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from phototag.files import TEMP_PREFIX, display, is_photo_name, os_reason, valid_name

__all__ = [
    "TEMP_PREFIX", "FileEntry", "ScanError", "check_file", "display", "is_photo_name", "walk",
]  # fmt: skip


@dataclass(frozen=True)
class FileEntry:
    path: Path
    size: int
    mtime_ns: int
    #: a link to a file outside the library: indexed, but phototag never writes through it
    outside: bool = False


@dataclass(frozen=True)
class ScanError:
    path: Path
    reason: str
    is_dir: bool = False


def _inside(real: str, boundary: str) -> bool:
    return real == boundary or real.startswith(boundary.rstrip(os.sep) + os.sep)


def check_file(path: Path, *, within: Path | None = None) -> FileEntry | ScanError:
    """Stat one path given explicitly (or by an event); ``within``: the library root."""
    if problem := valid_name(path):
        return ScanError(path, problem)
    try:
        st = os.stat(path)
    except OSError as exc:
        return ScanError(path, "broken link" if os.path.islink(path) else os_reason(exc))
    if not stat.S_ISREG(st.st_mode):
        return ScanError(path, "not a regular file")
    outside = False
    if within is not None and os.path.islink(path):
        outside = not _inside(os.path.realpath(path), os.path.realpath(within))
    return FileEntry(path, st.st_size, st.st_mtime_ns, outside)


def walk(
    top: Path, *, within: Path | None = None, on_temp: Callable[[Path], object] | None = None
) -> Iterator[FileEntry | ScanError]:
    """Photos under ``top`` (a folder or one file), depth first, in a stable order.

    Folder links are followed only while they stay inside ``within`` (the library root;
    ``top`` by default); file links that leave it are marked ``outside``. phototag's own
    temp files are handed to ``on_temp`` (the indexer removes stale ones).
    """
    top = Path(os.path.abspath(top))
    boundary = os.path.realpath(within if within is not None else top)
    try:
        st = os.stat(top)
    except FileNotFoundError:
        yield ScanError(top, "no such file or folder", is_dir=True)
        return
    except OSError as exc:
        yield ScanError(top, os_reason(exc), is_dir=True)
        return
    if not stat.S_ISDIR(st.st_mode):
        if not is_photo_name(top.name):
            yield ScanError(top, "not a photo file")
            return
        yield check_file(top, within=Path(boundary) if within is not None else None)
        return
    yield from _walk_dir(top, {(st.st_dev, st.st_ino)}, boundary, on_temp)


def _walk_dir(
    folder: Path, seen: set[tuple[int, int]], boundary: str,
    on_temp: Callable[[Path], object] | None,
) -> Iterator[FileEntry | ScanError]:  # fmt: skip
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield ScanError(folder, f"cannot read folder ({os_reason(exc)})", True)
        return
    for entry in entries:
        if entry.name.startswith("."):
            if on_temp is not None and entry.name.startswith(TEMP_PREFIX):
                on_temp(folder / entry.name)
            continue
        path = folder / entry.name
        if problem := valid_name(path):
            if entry.is_dir() or is_photo_name(os.fsencode(entry.name).decode("utf-8", "replace")):
                yield ScanError(path, problem, entry.is_dir())
            continue
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            try:
                st = entry.stat()
            except OSError as exc:
                yield ScanError(path, os_reason(exc), True)
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                if entry.is_symlink():
                    yield ScanError(path, "symlink loop, skipped", True)
                continue
            if entry.is_symlink() and not _inside(os.path.realpath(path), boundary):
                yield ScanError(path, "link to a folder outside the library, not followed", True)
                continue
            yield from _walk_dir(path, seen | {key}, boundary, on_temp)
        elif is_photo_name(entry.name):
            try:
                st = entry.stat()
            except FileNotFoundError:
                yield ScanError(path, "file vanished" if not entry.is_symlink() else "broken link")
                continue
            except OSError as exc:
                yield ScanError(path, os_reason(exc))
                continue
            if not stat.S_ISREG(st.st_mode):
                yield ScanError(path, "not a regular file")
                continue
            outside = entry.is_symlink() and not _inside(os.path.realpath(path), boundary)
            yield FileEntry(path, st.st_size, st.st_mtime_ns, outside)

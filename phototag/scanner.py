"""Walking folders: which files are photos, and every reason one cannot be read.

The walk never raises for one bad entry: unreadable folders, symlink loops and
special files become ``ScanError``s the caller reports, and the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: formats we decode and tag (raws are handled through their sidecar by the writers)
PHOTO_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".tif",
        ".tiff",
        ".webp",
        ".bmp",
        ".gif",
        ".heic",
        ".heif",
        ".avif",
    }
)
#: phototag's own temp files and sidecars are never photos
TEMP_PREFIX = ".phototag-tmp-"


@dataclass(frozen=True)
class FileEntry:
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanError:
    path: Path
    reason: str
    is_dir: bool = False


def is_photo_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in PHOTO_EXTENSIONS


def display(path: Path | str) -> str:
    """A path on one line, whatever characters its name holds."""
    text = str(path)
    if any(ch in text for ch in "\n\r\t\x1b"):
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text


def check_file(path: Path) -> FileEntry | ScanError:
    """Stat one path given explicitly (or by an event)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ScanError(path, "file vanished")
    except PermissionError:
        return ScanError(path, "permission denied")
    except OSError as exc:
        return ScanError(path, (exc.strerror or str(exc)).lower())
    if not stat.S_ISREG(st.st_mode):
        return ScanError(path, "not a regular file")
    return FileEntry(path, st.st_size, st.st_mtime_ns)


def walk(top: Path) -> Iterator[FileEntry | ScanError]:
    """Photos under ``top`` (a folder or one file), depth first, in a stable order."""
    top = Path(os.path.abspath(top))
    try:
        st = os.stat(top)
    except FileNotFoundError:
        yield ScanError(top, "no such file or folder", is_dir=True)
        return
    except OSError as exc:
        yield ScanError(top, (exc.strerror or str(exc)).lower(), is_dir=True)
        return
    if not stat.S_ISDIR(st.st_mode):
        yield check_file(top) if is_photo_name(top.name) else ScanError(top, "not a photo file")
        return
    yield from _walk_dir(top, {(st.st_dev, st.st_ino)})


def _walk_dir(folder: Path, seen: set[tuple[int, int]]) -> Iterator[FileEntry | ScanError]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield ScanError(folder, f"cannot read folder ({(exc.strerror or str(exc)).lower()})", True)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            try:
                st = entry.stat()
            except OSError as exc:
                yield ScanError(path, (exc.strerror or str(exc)).lower(), True)
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                if entry.is_symlink():
                    yield ScanError(path, "symlink loop, skipped", True)
                continue
            yield from _walk_dir(path, seen | {key})
        elif is_photo_name(entry.name):
            try:
                st = entry.stat()
            except FileNotFoundError:
                yield ScanError(path, "file vanished" if not entry.is_symlink() else "broken link")
                continue
            except OSError as exc:
                yield ScanError(path, (exc.strerror or str(exc)).lower())
                continue
            if not stat.S_ISREG(st.st_mode):
                yield ScanError(path, "not a regular file")
                continue
            yield FileEntry(path, st.st_size, st.st_mtime_ns)

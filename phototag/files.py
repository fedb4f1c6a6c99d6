"""File facts in one place: which names are photos, phototag's temp files, why an OS call
failed (as a short lowercase reason), and when a file counts as unchanged.

The scanner, the indexer, the writers and the watcher all ask here, so they cannot drift
apart on a rule (they once had four versions of "unchanged" and nine of the reasons).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Protocol

#: formats phototag decodes, tags and writes tags for
PHOTO_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".heic",
     ".heif", ".avif"}
)  # fmt: skip
#: written in place: XMP + IPTC (+ XPKeywords where present)
IPTC_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".tif", ".tiff"})
#: written in place: XMP only
XMP_EXTENSIONS = frozenset({".png", ".webp", ".heic", ".heif", ".avif", ".gif"})
#: photos with no writable metadata: they always get a sidecar
SIDECAR_ONLY_EXTENSIONS = frozenset({".bmp"})

#: phototag's temp files start with this (the scanner and the watcher ignore them); the
#: writer's temps carry the writing process's id after it, so a later run knows whose they are
TEMP_PREFIX = ".phototag-tmp-"
#: a temp older than this is stale whoever made it: no single write takes an hour
STALE_TEMP_SECONDS = 3600.0
#: a temp whose name says no owner (an older phototag's) is left alone this long
UNKNOWN_OWNER_SECONDS = 600.0


class _Row(Protocol):
    size: int
    mtime_ns: int


def is_photo_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in PHOTO_EXTENSIONS


def is_temp_file(path: Path | str) -> bool:
    """True for phototag's own in-progress files (the watcher must ignore them)."""
    return os.path.basename(path).startswith(TEMP_PREFIX)


def temp_name(folder: Path, suffix: str) -> Path:
    """A fresh temp name in ``folder`` that says which process owns it."""
    return folder / f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}{suffix}"


def _owner_alive(name: str, age: float) -> bool:
    """Whether the process named in a temp's name still runs. A name without one (an
    older phototag's) counts as owned for ``UNKNOWN_OWNER_SECONDS``."""
    pid_text = name[len(TEMP_PREFIX) :].split("-", 1)[0]
    if not pid_text.isdigit() or "-" not in name[len(TEMP_PREFIX) :]:
        return age < UNKNOWN_OWNER_SECONDS
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def is_stale_temp(path: Path) -> bool:
    """A temp of phototag's whose owner is gone (killed mid-write), or that is very old."""
    if not is_temp_file(path):
        return False
    try:
        age = time.time() - os.lstat(path).st_mtime
    except OSError:
        return False
    return age > STALE_TEMP_SECONDS or not _owner_alive(path.name, age)


def remove_stale_temp(path: Path) -> bool:
    """Remove one stale temp of phototag's; True if it went."""
    if not is_stale_temp(path):
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def os_reason(exc: OSError) -> str:
    """Why an OS call failed, as the short lowercase reason a message ends with."""
    if isinstance(exc, FileNotFoundError):
        return "file vanished"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return (exc.strerror or str(exc)).lower()


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """Which file and which version of it: a rename onto it or a write changes the key."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def unchanged(row: _Row | None, st: os.stat_result | None) -> bool:
    """The one rule for "this file is as the catalog last saw it": same size and mtime."""
    return row is not None and st is not None and (row.size, row.mtime_ns) == (
        st.st_size, st.st_mtime_ns
    )  # fmt: skip


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """Read a regular file without blocking on a FIFO; the stat is that of the bytes read.

    The file is stat-ed before and after reading: if it changed meanwhile (a copy still
    arriving, an app saving) the bytes are not trusted.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            from phototag.errors import UnreadableImage

            raise UnreadableImage(path, "not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            from phototag.errors import UnreadableImage

            raise UnreadableImage(path, "file changed while it was read; it is retried next run")
        return b"".join(chunks), before
    finally:
        os.close(fd)


def valid_name(path: Path | str) -> str | None:
    """Why phototag cannot keep this path in its catalog, or None when it can."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid utf-8; rename it to index it"
    return None


def display(path: Path | str) -> str:
    """A path on one line, whatever characters its name holds."""
    text = str(path)
    if any(ch in text for ch in "\n\r\t\x1b") or valid_name(text):
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text

"""Atomic file replacement: a verified temp copy takes the original's place, or nothing does.

The original is never opened for writing. The copy gets the original's mode, owner and
extended attributes (POSIX ACLs live there too), is fsync-ed, and is swapped in with one
rename; the folder is fsync-ed after. What a new inode cannot keep is documented in
docs/architecture.md (hard links: such files are not rewritten; see ``check_replaceable``).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
from pathlib import Path

from phototag.errors import WriteError
from phototag.files import os_reason, stat_key

log = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc_renameat2() -> object | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _libc_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (Linux renameat2); False where the system cannot."""
    if _renameat2 is None:
        return False
    result = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)  # type: ignore[operator]
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def check_replaceable(path: Path, st: os.stat_result, *, what: str = "file") -> None:
    """Refuse what an atomic replacement would damage: read-only files and hard links."""
    if not st.st_mode & 0o222:
        raise WriteError(path, f"{what} is read-only")
    if st.st_nlink > 1:
        raise WriteError(
            path, f"{what} has {st.st_nlink - 1} other hard link(s) that a rewrite would split; "
            "use --sidecar for it",
        )  # fmt: skip


def prepare(tmp: Path, like: os.stat_result, *, creating: bool, source: Path | None) -> None:
    """Give the temp copy the original's mode, owner and xattrs, then fsync it."""
    mode = stat.S_IMODE(like.st_mode)
    os.chmod(tmp, mode & 0o666 if creating else mode)  # a new sidecar: no exec bits
    tmp_st = os.stat(tmp)
    if (tmp_st.st_uid, tmp_st.st_gid) != (like.st_uid, like.st_gid):
        try:
            os.chown(tmp, like.st_uid, like.st_gid)
        except PermissionError:
            log.debug("cannot give %s the owner of the original", tmp)
    if source is not None and not creating:
        copy_xattrs(source, tmp)
    fsync_file(tmp)


def copy_xattrs(source: Path, dest: Path) -> None:
    """Extended attributes (and so POSIX ACLs) of ``source`` onto ``dest``, where allowed."""
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(source)
    except OSError:
        return
    for name in names:
        try:
            os.setxattr(dest, name, os.getxattr(source, name))
        except OSError as exc:
            log.debug("cannot copy xattr %s to %s: %s", name, dest, exc)


def put_in_place(path: Path, tmp: Path, target: Path, expected: os.stat_result | None) -> None:
    """Rename ``tmp`` onto ``target``, unless the target changed since it was read.

    ``expected`` None: the target must not exist (a new sidecar; a hard link never clobbers
    one made meanwhile). Else the names are exchanged atomically and the old file checked
    afterwards, so no write by another app can slip in between the check and the rename.
    """
    if expected is None:
        try:
            os.link(tmp, target)
            os.unlink(tmp)
            return
        except FileExistsError:
            raise WriteError(path, f"{target.name} appeared meanwhile; try again") from None
        except OSError:  # no hard links here (FAT, some network shares)
            if os.path.lexists(target):
                raise WriteError(path, f"{target.name} appeared meanwhile; try again") from None
            os.replace(tmp, target)
            return
    if _exchange(tmp, target):
        old = os.lstat(tmp)  # the original, now under the temp name
        if stat_key(old) != stat_key(expected):
            _exchange(tmp, target)  # put the other app's version back
            raise WriteError(path, "file changed while tags were written; try again")
        os.unlink(tmp)
        return
    if stat_key(os.stat(target)) != stat_key(expected):
        raise WriteError(path, "file changed while tags were written; try again")
    os.replace(tmp, target)


def discard(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove temp file %s: %s", tmp, os_reason(exc))


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # not supported here (some network filesystems): the rename stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

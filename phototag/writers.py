"""Writing tags into photos and XMP sidecars, so other photo software shows them.

The writer ties three parts together: ``keywords`` plans what each keyword field should
hold (pure), ``exiftool_process`` runs the one stay-open ExifTool, and ``replace`` puts a
verified temp copy in place atomically. The original is never opened for writing.
"""

from __future__ import annotations

import logging
import os
import stat
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from phototag import replace
from phototag.errors import WriteError
from phototag.exiftool_process import (
    CONFIG_FILE,
    ExifToolDied,
    ExifToolProcess,
    exiftool_reason,
    find_executable,
)
from phototag.files import (
    IPTC_EXTENSIONS,
    PHOTO_EXTENSIONS,
    SIDECAR_ONLY_EXTENSIONS,
    TEMP_PREFIX,
    is_photo_name,
    is_temp_file,
    os_reason,
    stat_key,
    temp_name,
)
from phototag.hookspecs import hookimpl
from phototag.keywords import (
    Fields,
    Machine,
    Plan,
    dedup,
    keyword_key,
    leaf,
    machine_tags,
    plan,
    rejected,
    restore_args,
    same_snapshot,
    snapshot,
    user_keywords,
    without,
)
from phototag.types import Tag

log = logging.getLogger(__name__)
_W = TypeVar("_W", bound="TagWriter")

#: XMP namespace URI of the machine-tag record: an identifier written into files, never fetched
#: (the reserved .invalid TLD can never resolve or clash)
NAMESPACE = "http://ns.phototag.invalid/1.0/"
MODES = ("embed", "sidecar")
_READ_CHUNK = 200
_CACHE_SIZE = 256


def _is_file(path: Path) -> bool:
    """``Path.is_file`` that says False for names the system refuses (too long, ...)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _shares_stem(photo: Path) -> bool:
    """Another photo in the folder has the same name before its extension (IMG.jpg + IMG.png)."""
    try:
        names = os.listdir(photo.parent)
    except OSError:
        return False
    stem = photo.stem
    return any(
        n != photo.name and os.path.splitext(n)[0] == stem and is_photo_name(n) for n in names
    )


def sidecar_path(photo: Path) -> Path:
    """The sidecar for ``photo``: existing ``IMG.ext.xmp`` or ``IMG.xmp``, else new ``IMG.ext.xmp``.

    Updating whichever exists serves digiKam, darktable, Lightroom and Immich alike, and
    never leaves two sidecars that disagree. ``IMG.xmp`` is used only when no other photo
    is called ``IMG.*``: a sidecar shared by two photos would show one photo's tags for both.
    """
    for name in (photo.name + ".xmp", photo.name + ".XMP"):
        candidate = photo.with_name(name)
        if _is_file(candidate):
            return candidate
    for name in (photo.stem + ".xmp", photo.stem + ".XMP"):
        candidate = photo.with_name(name)
        if _is_file(candidate) and not _shares_stem(photo):
            return candidate
    return photo.with_name(photo.name + ".xmp")


@dataclass
class WriteOutcome:
    """What a write did (or would do, in a dry run) to one photo."""

    path: Path  # the photo
    target: Path  # the file written: the photo itself or its sidecar
    changed: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: the target's size and mtime after the write (None: it does not exist), so a
    #: watcher can tell phototag's own writes from the user's
    size: int | None = None
    mtime_ns: int | None = None
    #: machine keywords the user deleted from the file in another app: never written again
    rejected: list[str] = field(default_factory=list)
    #: the target's keyword fields before and after (``keywords.snapshot``), for undo
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class TagWriter(ABC):
    """Writes machine tags for photos somewhere other software reads them.

    A writer is a context manager: whatever it needs for a run (a process, a connection)
    lives from ``__enter__`` to ``__exit__``.
    """

    name: str = ""

    def __enter__(self: _W) -> _W:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire what a run needs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release it."""

    @abstractmethod
    def can_handle(self, path: Path) -> bool:
        """Whether this writer knows where tags for ``path`` go."""

    @abstractmethod
    def write(self, path: Path, tags: Sequence[Tag], *, model: str) -> WriteOutcome:
        """Make ``tags`` the photo's machine tags; the user's keywords stay as they are."""

    @abstractmethod
    def remove(self, path: Path) -> WriteOutcome:
        """Remove the photo's machine tags (``phototag untag``)."""

    def edit(
        self,
        path: Path,
        tags: Sequence[Tag],
        *,
        model: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> WriteOutcome:
        """``write``, and change the user's own keywords: ``add`` them, ``remove`` them
        (``phototag serve``). A writer that cannot change them refuses such a change."""
        if add or remove:
            raise WriteError(path, f"the {self.name or 'tag'} writer cannot change keywords")
        return self.write(path, tags, model=model)

    @abstractmethod
    def read_keywords(self, path: Path) -> list[str]:
        """The user's own keywords for the photo (machine tags excluded)."""

    def read_keywords_many(self, paths: Iterable[Path]) -> dict[Path, list[str]]:
        """``read_keywords`` for many photos; unreadable ones are left out."""
        found: dict[Path, list[str]] = {}
        for path in paths:
            try:
                found[Path(path)] = self.read_keywords(Path(path))
            except WriteError as exc:
                log.info("cannot read keywords of %s: %s", path, exc.reason)
        return found




class ExifToolWriter(TagWriter):
    """Embedded XMP/IPTC or XMP sidecars through one stay-open ExifTool process.

    ``mode`` "embed" writes into JPEG, TIFF, PNG, WebP, HEIC... and into a sidecar for
    formats without writable metadata (BMP); "sidecar" never touches a photo.
    ``machine_parent`` puts machine tags under a parent in the hierarchy
    (``phototag|animal|cat``), visible in other apps.
    """

    name = "exiftool"

    def __init__(
        self,
        mode: str = "embed",
        *,
        dry_run: bool = False,
        machine_parent: str | None = None,
        preserve_mtime: bool = False,
        executable: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown write mode {mode!r}; expected one of {', '.join(MODES)}")
        from phototag.keywords import clean

        self.mode = mode
        self.dry_run = dry_run
        self.machine_parent = clean(machine_parent) if machine_parent else None
        self.preserve_mtime = preserve_mtime  # off: catalog apps re-read only changed mtimes
        self.process = ExifToolProcess(executable)
        self._lock = self.process.lock
        self._cache: OrderedDict[Path, tuple[tuple[int, int, int, int], Fields]] = OrderedDict()

    @property
    def executable(self) -> str:
        return self.process.executable

    # -- process --------------------------------------------------------------------------

    def open(self) -> None:
        self.process.start()

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self.process.close()

    # -- reading --------------------------------------------------------------------------

    def _fields(self, files: Sequence[Path]) -> tuple[dict[Path, Fields], dict[Path, str]]:
        """Fields of ``files``, from the cache while a file's stat is unchanged."""
        found: dict[Path, Fields] = {}
        errors: dict[Path, str] = {}
        todo: list[tuple[Path, tuple[int, int, int, int]]] = []
        for path in files:
            try:
                key = stat_key(os.stat(path))
            except OSError as exc:
                errors[path] = os_reason(exc)
                continue
            hit = self._cache.get(path)
            if hit is not None and hit[0] == key:
                self._cache.move_to_end(path)
                found[path] = hit[1]
            else:
                todo.append((path, key))
        for start in range(0, len(todo), _READ_CHUNK):
            chunk = todo[start : start + _READ_CHUNK]
            try:
                fields, errs, _ = self.process.read([path for path, _ in chunk])
            except ExifToolDied:
                fields, errs = {}, {path: "exiftool stopped unexpectedly" for path, _ in chunk}
            errors.update(errs)
            for path, key in chunk:
                if path in fields:
                    found[path] = fields[path]
                    self._remember(path, key, fields[path])
        return found, errors

    def _remember(self, path: Path, key: tuple[int, int, int, int], fields: Fields) -> None:
        with self._lock:
            self._cache[path] = (key, fields)
            self._cache.move_to_end(path)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    def read_keywords(self, path: Path) -> list[str]:
        found, errors = self._keywords_many([Path(path)])
        if Path(path) in errors:
            raise WriteError(path, errors[Path(path)])
        return found[Path(path)]

    def read_keywords_many(self, paths: Iterable[Path]) -> dict[Path, list[str]]:
        found, errors = self._keywords_many([Path(p) for p in paths])
        for path, reason in errors.items():
            log.info("cannot read keywords of %s: %s", path, reason)
        return found

    def _keywords_many(
        self, paths: Sequence[Path]
    ) -> tuple[dict[Path, list[str]], dict[Path, str]]:
        """User keywords from each photo and its sidecar (if any), in one exiftool call."""
        with self._lock:
            sources: dict[Path, list[Path]] = {}
            for path in paths:
                photo = Path(os.path.abspath(path))
                sidecar = sidecar_path(photo)
                sources[path] = [photo] + ([sidecar] if _is_file(sidecar) else [])
            fields, errors = self._fields([f for files in sources.values() for f in files])
        found: dict[Path, list[str]] = {}
        failed: dict[Path, str] = {}
        for path, files in sources.items():
            if files[0] in errors:
                failed[path] = errors[files[0]]
                continue
            flat: list[str] = []
            for source in files:
                if source in fields:
                    user_flat, user_hier = user_keywords(fields[source], self.machine_parent)
                    flat += user_flat + [leaf(v) for v in user_hier]
            found[path] = [_nfc(v) for v in dedup(flat)]
        return found, failed

    # -- writing --------------------------------------------------------------------------

    def can_handle(self, path: Path) -> bool:
        return Path(path).suffix.lower() in PHOTO_EXTENSIONS and not is_temp_file(path)

    def target_for(self, path: Path) -> Path:
        """The file a write for ``path`` goes to: the photo itself or its sidecar."""
        path = Path(os.path.abspath(path))
        if self.mode == "sidecar" or path.suffix.lower() in SIDECAR_ONLY_EXTENSIONS:
            return sidecar_path(path)
        return Path(os.path.realpath(path))  # through a symlink: the link stays a link

    def write(
        self, path: Path, tags: Sequence[Tag], *, model: str, rejected: Iterable[str] = ()
    ) -> WriteOutcome:
        """Make ``tags`` the machine tags; ``rejected`` tags (and any the user deleted in
        another app since phototag wrote them) are left out."""
        machine = machine_tags(tags, model, self.machine_parent)
        return self._apply(Path(path), machine, {keyword_key(r) for r in rejected})

    def remove(self, path: Path) -> WriteOutcome:
        return self._apply(Path(path), None, set())

    def edit(
        self,
        path: Path,
        tags: Sequence[Tag],
        *,
        model: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> WriteOutcome:
        drop = frozenset(k for k in (keyword_key(v) for v in remove) if k)
        machine = machine_tags(tags, model, self.machine_parent)
        return self._apply(Path(path), machine, set(), add=tuple(add), drop=drop)

    def _apply(
        self,
        path: Path,
        machine: Machine | None,
        refused: set[str],
        *,
        add: Sequence[str] = (),
        drop: frozenset[str] = frozenset(),
    ) -> WriteOutcome:
        with self._lock:  # one exiftool process: one file at a time
            return self._apply_locked(
                Path(os.path.abspath(path)), machine, refused, add=add, drop=drop
            )

    def _stat_target(self, path: Path) -> tuple[os.stat_result, Path, os.stat_result | None]:
        """(photo stat, target, target stat or None) and the checks before any write."""
        if not self.can_handle(path):
            raise WriteError(path, "not a photo format phototag can write tags for")
        try:
            photo_st = os.stat(path)
        except OSError as exc:
            raise WriteError(path, os_reason(exc)) from None
        if not stat.S_ISREG(photo_st.st_mode):
            raise WriteError(path, "not a regular file")
        target = self.target_for(path)
        in_place = target.suffix.lower() != ".xmp"
        if not in_place and len(os.fsencode(target.name)) > 255:
            raise WriteError(path, "file name too long for a sidecar beside it")
        try:
            target_st = os.stat(target) if in_place or _is_file(target) else None
        except OSError as exc:
            raise WriteError(path, os_reason(exc)) from None
        if target_st is not None:
            replace.check_replaceable(
                path, target_st, what="file" if in_place else f"sidecar {target.name}"
            )
        return photo_st, target, target_st

    def _apply_locked(
        self,
        path: Path,
        machine: Machine | None,
        refused: set[str],
        *,
        add: Sequence[str] = (),
        drop: frozenset[str] = frozenset(),
    ) -> WriteOutcome:
        photo_st, target, target_st = self._stat_target(path)
        in_place = target.suffix.lower() != ".xmp"
        wanted = ([target] if target_st is not None else []) + ([] if in_place else [path])
        fields, errors = self._fields(wanted)
        if target in errors:
            raise WriteError(path, errors[target])
        current = fields.get(target, Fields())
        gone = rejected(current) if machine is not None else []
        if machine is not None:
            machine = without(machine, refused | {keyword_key(v) for v in gone})
        the_plan = plan(
            current, machine, parent=self.machine_parent, in_place=in_place,
            iptc=in_place
            and target.suffix.lower() in IPTC_EXTENSIONS
            and not current.iptc_legacy,
            photo=None if in_place else fields.get(path), add=add, drop=drop,
        )  # fmt: skip
        added, removed = the_plan.summary() if the_plan.changed else ([], [])
        before = snapshot(current if target_st is not None else None)
        if not the_plan.changed or self.dry_run:
            size = target_st.st_size if target_st else None
            mtime = target_st.st_mtime_ns if target_st else None
            return WriteOutcome(
                path, target, the_plan.changed, added, removed, size, mtime, gone, before, before
            )
        st, after = self._commit(path, target, target_st, photo_st, the_plan.args(
            current.has_iptc), lambda got: the_plan.verify(got, current))  # fmt: skip
        return WriteOutcome(
            path, target, True, added, removed, st.st_size, st.st_mtime_ns, gone, before,
            snapshot(after),
        )  # fmt: skip

    def _commit(
        self,
        path: Path,
        target: Path,
        target_st: os.stat_result | None,
        photo_st: os.stat_result,
        args: list[str],
        verify: Callable[[Fields], str | None],
    ) -> tuple[os.stat_result, Fields]:
        """Write a verified temp copy beside ``target`` and rename it into place."""
        creating = target_st is None
        # '.tmp' keeps other apps' watchers off it (and exiftool 12.57 refuses -o x.webp);
        # a sidecar made from scratch needs '.xmp' so exiftool knows what to create
        tmp = temp_name(target.parent, ".xmp" if creating else ".tmp")
        command: list[str | bytes] = [*args, "-o", os.fsencode(tmp)]
        if not creating:
            command.append(os.fsencode(target))
        try:
            try:
                fields, _, err = self.process.read([tmp], first=command)
            except ExifToolDied:
                raise WriteError(path, "exiftool stopped unexpectedly") from None
            if tmp not in fields or not tmp.exists():
                raise WriteError(path, exiftool_reason(err, [str(target), str(tmp)]))
            after = fields[tmp]
            problem = verify(after)
            if problem:
                raise WriteError(path, f"written copy did not verify ({problem}); file unchanged")
            replace.prepare(tmp, target_st or photo_st, creating=creating,
                            source=None if creating else target)  # fmt: skip
            if self.preserve_mtime and target_st is not None:
                os.utime(tmp, ns=(target_st.st_atime_ns, target_st.st_mtime_ns))
            replace.put_in_place(path, tmp, target, target_st)
        except OSError as exc:
            raise WriteError(path, os_reason(exc)) from None
        finally:
            replace.discard(tmp)
        replace.fsync_dir(target.parent)
        st = os.stat(target)
        self._remember(target, stat_key(st), after)
        return st, after

    # -- undo -----------------------------------------------------------------------------

    def restore(
        self, path: Path, target: Path, before: dict[str, Any], after: dict[str, Any]
    ) -> WriteOutcome:
        """Put ``target``'s keyword fields back as ``before``, if they are still ``after``.

        A sidecar that did not exist before is removed. Anything else (the file was edited
        since, or is gone) is a ``WriteError`` naming why.
        """
        with self._lock:
            return self._restore_locked(Path(path), Path(target), before, after)

    def _restore_locked(
        self, path: Path, target: Path, before: dict[str, Any], after: dict[str, Any]
    ) -> WriteOutcome:
        try:
            target_st = os.stat(target)
        except FileNotFoundError:
            raise WriteError(path, f"{target.name} is gone") from None
        except OSError as exc:
            raise WriteError(path, os_reason(exc)) from None
        fields, errors = self._fields([target])
        if target in errors:
            raise WriteError(path, errors[target])
        if not same_snapshot(snapshot(fields[target]), after):
            raise WriteError(path, "edited since phototag wrote it; left as it is")
        in_place = target.suffix.lower() != ".xmp"
        if self.dry_run:
            return WriteOutcome(path, target, True, before=after, after=before)
        if not before.get("exists"):
            os.unlink(target)
            replace.fsync_dir(target.parent)
            return WriteOutcome(path, target, True, before=after, after=before)
        replace.check_replaceable(path, target_st)
        iptc = in_place and target.suffix.lower() in IPTC_EXTENSIONS
        st, got = self._commit(
            path, target, target_st, target_st, restore_args(before, iptc=iptc),
            lambda got: None if same_snapshot(snapshot(got), before) else "keyword fields",
        )  # fmt: skip
        return WriteOutcome(path, target, True, size=st.st_size, mtime_ns=st.st_mtime_ns,
                            before=after, after=snapshot(got))  # fmt: skip


def _nfc(value: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", value)


def open_writer(
    mode: str = "embed",
    *,
    dry_run: bool = False,
    machine_parent: str | None = None,
    preserve_mtime: bool = False,
    executable: str | None = None,
) -> ExifToolWriter:
    """An ExifTool writer for ``mode``; use it in a ``with`` block (one exiftool process).

    ``executable`` (or ``PHOTOTAG_EXIFTOOL``) names the program; by default ``exiftool``.
    """
    find_executable(executable)
    return ExifToolWriter(
        mode, dry_run=dry_run, machine_parent=machine_parent, preserve_mtime=preserve_mtime,
        executable=executable,
    )  # fmt: skip


@hookimpl
def register_writers(register: Callable[[str, Any], None]) -> None:
    register("exiftool", open_writer)


__all__ = [
    "CONFIG_FILE", "NAMESPACE", "TEMP_PREFIX", "ExifToolWriter", "Plan", "TagWriter",
    "WriteOutcome", "is_temp_file", "keyword_key", "open_writer", "sidecar_path",
]  # fmt: skip

"""``phototag watch``: follow folders with filesystem events and keep the catalog in step.

Threads: watchdog's threads only drop paths into an ``_Inbox``; the thread that calls
``Watcher.run`` owns the library (its SQLite connection is used from that thread only)
and does all the indexing. The inbox and the pending set hold paths, never images, so
a burst of thousands of photos costs a few hundred bytes each until it is processed in
batches at indexing speed.

No loop: phototag's own temp files are hidden names (ignored), its rename onto the photo
is an event for a file whose size and mtime the indexer already stored after the write,
so the indexer finds it unchanged. No miss: the watcher reconciles (an incremental scan)
on start, when a folder comes back, and when it has to switch to polling.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from phototag.events import Event, EventPrinter, Summary, write_mode
from phototag.files import TEMP_PREFIX, display, is_photo_name, os_reason, unchanged

if TYPE_CHECKING:
    from phototag.indexer import Indexer
    from phototag.library import Library

#: seconds a file's size and mtime must stay the same before it is indexed
DEFAULT_SETTLE = 1.0
#: a batch is sized to take about this long, so a stop request never waits much longer
BATCH_SECONDS = 2.0
MIN_BATCH, FIRST_BATCH, MAX_BATCH = 8, 32, 256
#: between batches, rebuild the Annoy files once this many vectors are searched exactly
#: (queries always merge that exact tail, so waiting costs a little query time, nothing else)
REFRESH_TAIL = 1000
#: when idle this long, rebuild once the tail reaches IDLE_REFRESH_TAIL vectors
IDLE_REFRESH_SECONDS = 10.0
IDLE_REFRESH_TAIL = 50
#: how often watched folders are checked for disappearing or coming back
ROOT_CHECK_SECONDS = 1.0
#: snapshot interval of the polling observer: each poll walks the whole tree
POLL_SECONDS = 2.0
#: file systems whose changes made on other machines raise no inotify events
REMOTE_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs"}
)


@dataclass(frozen=True)
class _Change:
    """One filesystem change, as the main thread needs it (paths as str)."""

    kind: str  # touch | dir | moved | deleted | sidecar
    path: str
    dest: str | None = None
    is_dir: bool = False


class _Inbox:
    """Hand-off from watchdog threads: changes in order, repeated touches of a path collapsed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[_Change] = deque()
        self._touched: set[str] = set()
        self.ready = threading.Event()

    def put(self, change: _Change) -> None:
        with self._lock:
            if change.kind == "touch":
                if change.path in self._touched:
                    return
                self._touched.add(change.path)
            self._items.append(change)
        self.ready.set()

    def take(self) -> list[_Change]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._touched.clear()
            self.ready.clear()
        return items


class _Handler:
    """Runs on watchdog's thread: filters names and enqueues; never touches the catalog."""

    def __init__(self, root: str, inbox: _Inbox) -> None:
        self.root = root
        self.inbox = inbox

    def _wanted(self, path: str, *, is_dir: bool = False) -> bool:
        """Visible photo names (or folders) below the root; temp files and sidecars are not."""
        rel = os.path.relpath(path, self.root)
        if rel == "." or rel.startswith(".."):
            return rel == "."
        parts = rel.split(os.sep)
        if parts[-1].startswith(TEMP_PREFIX) or any(part.startswith(".") for part in parts):
            return False  # phototag's own temp files, and anything hidden
        return is_dir or is_photo_name(parts[-1])

    def _sidecar(self, path: str, is_dir: bool) -> bool:
        """A visible ``.xmp`` below the root: another app may have edited a photo's keywords."""
        if is_dir or not path.lower().endswith(".xmp"):
            return False
        rel = os.path.relpath(path, self.root)
        return not rel.startswith("..") and not any(p.startswith(".") for p in rel.split(os.sep))

    def dispatch(self, event: Any) -> None:
        kind, is_dir = event.event_type, event.is_directory
        src = os.fsdecode(event.src_path)
        if kind in ("moved", "created", "modified", "closed", "deleted"):
            dest = os.fsdecode(event.dest_path) if kind == "moved" else src
            if self._sidecar(dest, is_dir):
                self.inbox.put(_Change("sidecar", dest))
            elif kind in ("moved", "deleted") and self._sidecar(src, is_dir):
                self.inbox.put(_Change("sidecar", src))
        if kind == "moved":
            dest = os.fsdecode(event.dest_path)
            src_ok, dest_ok = self._wanted(src, is_dir=is_dir), self._wanted(dest, is_dir=is_dir)
            if src_ok and dest_ok:
                self.inbox.put(_Change("moved", src, dest, is_dir))
            elif src_ok:  # renamed to a hidden or non-photo name: gone for us
                self.inbox.put(_Change("deleted", src, is_dir=is_dir))
            elif dest_ok:  # a temp file renamed into place (ours, a browser's, rsync's)
                self.inbox.put(_Change("dir" if is_dir else "touch", dest, is_dir=is_dir))
            return
        if not self._wanted(src, is_dir=is_dir):
            return
        if kind == "deleted":
            self.inbox.put(_Change("deleted", src, is_dir=is_dir))
        elif is_dir:
            if kind == "created":
                self.inbox.put(_Change("dir", src, is_dir=True))
        elif kind in ("created", "modified", "closed", "attrib"):
            self.inbox.put(_Change("touch", src))


@dataclass
class _Pending:
    sig: tuple[int, int]  # (size, mtime_ns) when last looked at
    since: float  # monotonic time this sig was first seen
    due: float  # when to look again


@dataclass
class _Root:
    path: str
    ident: tuple[int, int] | None = None  # (st_dev, st_ino) while available
    available: bool = False
    said: str = ""  # last state reported, so each state is reported once
    empty_ident: tuple[int, int] | None = None  # an empty folder we took for an unmounted drive


class Watcher:
    """Reconcile, then follow events; index settled files in batches on the calling thread."""

    def __init__(
        self,
        library: Library,
        paths: Sequence[Path | str],
        *,
        write: str = "none",
        settle: float = DEFAULT_SETTLE,
        poll: bool = False,
        poll_interval: float = POLL_SECONDS,
        on_event: Callable[[Event], None] | None = None,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.library = library
        self.roots = {p: _Root(p) for p in dict.fromkeys(os.path.abspath(p) for p in paths)}
        self.write = write
        self.settle = settle
        self.poll = poll
        self.poll_interval = poll_interval
        self.on_event = on_event or (lambda event: None)
        self.on_message = on_message or (lambda message: None)
        self.started = threading.Event()
        self.total = _new_summary()
        self._stop = threading.Event()
        self._inbox = _Inbox()
        self._pending: dict[str, _Pending] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._gone: list[str] = []  # rows a reconcile found missing, swept once pending is empty
        self._batch = FIRST_BATCH
        self._observer: Any = None
        self._polling = False
        self._how = ""
        self._watches: dict[str, Any] = {}
        self._indexer: Indexer | None = None
        self._next_root_check = 0.0
        self._last_work = time.monotonic()
        self._idle_refreshed = True

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to return after the batch in flight (safe from any thread or a signal)."""
        self._stop.set()
        self._inbox.ready.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> Summary:
        """Watch until ``stop``; returns the totals of everything processed."""
        with self.library.indexer(write=self.write, on_event=self.on_event) as indexer:
            self._indexer = indexer
            try:
                self._start_observer()
                self._check_roots()
                self.on_message(f"watching {self._names()} ({self._how}); Ctrl-C stops")
                self.started.set()
                while not self._stop.is_set():
                    self._step()
            finally:
                self._stop_observer()
                self.started.set()
        return self.total

    def _step(self) -> None:
        for change in self._coalesce(self._inbox.take()):
            if self._stop.is_set():
                return
            self._guard(self._apply, change)
        worked = self._process_ready()
        now = time.monotonic()
        if now >= self._next_root_check:
            self._guard(self._check_roots)
        if worked:
            self._last_work, self._idle_refreshed = now, False
            self._refresh(REFRESH_TAIL)
            return
        if not self._pending and self._gone:
            gone, self._gone = self._gone, []
            self._guard(self._remove, gone)
        if not self._idle_refreshed and now - self._last_work >= IDLE_REFRESH_SECONDS:
            self._idle_refreshed = True
            self._refresh(IDLE_REFRESH_TAIL)
        wake = min(self._heap[0][0] if self._heap else now + 0.5, self._next_root_check)
        self._inbox.ready.wait(max(0.01, min(wake - now, 0.5)))

    # -- observers ----------------------------------------------------------------------------

    def _start_observer(self) -> None:
        reason = "--poll" if self.poll else self._native_unavailable()
        if reason is None:
            try:
                from watchdog.observers import Observer

                observer = Observer()
                observer.start()
                self._observer = observer
                self._how = "native events"
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                reason = _limit_reason(exc)
        self._use_polling(reason)

    def _use_polling(self, reason: str) -> None:
        from watchdog.observers.polling import PollingObserver

        self._polling = True
        observer = PollingObserver(timeout=self.poll_interval)
        observer.start()
        self._observer = observer
        self._how = f"polling every {self.poll_interval:g} s: {reason}"

    def _switch_to_polling(self, reason: str) -> None:
        """The native observer hit a limit: poll instead, and catch up on what it missed."""
        self._stop_observer()
        self._watches.clear()
        self._use_polling(reason)
        self.on_message(f"switching to {self._how}")
        for root in self.roots.values():
            if root.available:
                self._schedule(root)
                self._reconcile(root)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        observer.unschedule_all()
        if observer.is_alive():
            observer.stop()
            observer.join(timeout=3)

    def _native_unavailable(self) -> str | None:
        """Why native events would miss changes here, or None when they will not."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if Observer is PollingObserver:
            return "native file events are not available on this system"
        for root in self.roots:
            fs = _fs_type(root)
            if fs in REMOTE_FS:
                return f"{display(root)} is on a network file system ({fs}): changes made on " \
                    "other machines raise no events"  # fmt: skip
        limit = _inotify_limit()
        if limit is not None:
            count = _count_folders(self.roots, stop_after=limit)
            if count >= limit:
                return _limit_reason(OSError(errno.ENOSPC, "inotify watch limit reached"))
        return None

    def _schedule(self, root: _Root) -> bool:
        from watchdog import events as ev

        kinds = [
            ev.FileCreatedEvent, ev.FileModifiedEvent, ev.FileAttribEvent, ev.FileClosedEvent,
            ev.FileMovedEvent, ev.FileDeletedEvent, ev.DirCreatedEvent, ev.DirMovedEvent,
            ev.DirDeletedEvent,
        ]  # fmt: skip
        try:
            self._watches[root.path] = self._observer.schedule(
                _Handler(root.path, self._inbox), root.path, recursive=True, event_filter=kinds
            )
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE) and not self._polling:
                self._switch_to_polling(_limit_reason(exc))
                return self._schedule(root)  # now on the polling observer
            self._report(root, "unwatchable", f"cannot watch {display(root.path)}: {_reason(exc)}")
            return False
        return True

    def _unschedule(self, root: _Root) -> None:
        watch = self._watches.pop(root.path, None)
        if watch is not None and self._observer is not None:
            with contextlib.suppress(KeyError):  # its emitter already went with its folder
                self._observer.unschedule(watch)

    def _names(self) -> str:
        return ", ".join(display(r) for r in self.roots)

    # -- roots that come and go ---------------------------------------------------------------

    def _check_roots(self) -> None:
        """Report a folder that disappeared (once); watch and reconcile it when it is back."""
        self._next_root_check = time.monotonic() + ROOT_CHECK_SECONDS
        for root in self.roots.values():
            ident = _identity(root.path)
            if root.available and ident == root.ident:
                continue
            if root.available:
                self._lose(root)
            if ident is None:
                self._report(root, "missing", f"{display(root.path)} is not available "
                             "(unplugged?); watching for it to come back")  # fmt: skip
                continue
            if ident == root.empty_ident and _is_empty(root.path):
                continue
            if _is_empty(root.path) and self._has_photos(root.path):
                root.empty_ident = ident
                self._report(root, "empty", f"{display(root.path)} is empty but the catalog "
                             "holds photos there: taking it for an unmounted drive; run "
                             "'phototag index' on it if they were really deleted")  # fmt: skip
                continue
            if self._schedule(root):
                root.available, root.ident, root.empty_ident = True, ident, None
                if root.said:
                    self.on_message(f"{display(root.path)} is back; catching up")
                root.said = ""
                self._reconcile(root)

    def _lose(self, root: _Root) -> None:
        root.available, root.ident = False, None
        self._unschedule(root)
        self._drop_pending_under(root.path)

    def _report(self, root: _Root, state: str, message: str) -> None:
        if root.said != state:
            root.said = state
            self.on_message(message)

    def _has_photos(self, folder: str) -> bool:
        catalog = self.indexer.catalog
        found = catalog.find_root(Path(folder))
        if found is None:
            return False
        root_id, _root, prefix = found
        return any(p.status != "missing" for p in catalog.photos_under(root_id, prefix).values())

    def _reconcile(self, root: _Root) -> None:
        """Catch up with whatever changed while the folder was not watched."""
        self._scan(root.path)

    # -- changes ------------------------------------------------------------------------------

    @property
    def indexer(self) -> Indexer:
        assert self._indexer is not None, "only while run() is running"
        return self._indexer

    def _coalesce(self, changes: list[_Change]) -> Iterator[_Change | list[str]]:
        """Runs of deletions become one list, so ``rm -r`` of a big folder is one transaction."""
        deleted: list[str] = []
        for change in changes:
            if change.kind == "deleted" and change.path not in self.roots:
                deleted.append(change.path)
                continue
            if deleted:
                yield deleted
                deleted = []
            yield change
        if deleted:
            yield deleted

    def _apply(self, change: _Change | list[str]) -> None:
        if isinstance(change, list):
            for path in change:
                self._drop_pending_under(path)
            self._remove(change)
        elif change.kind == "touch":
            self._add_pending(change.path)
        elif change.kind == "sidecar":
            for photo in _photos_of_sidecar(change.path):
                self._add_pending(photo)
        elif change.kind == "dir":
            self._scan(change.path)
        elif change.kind == "deleted":  # a watched folder itself
            self._next_root_check = 0.0
        elif change.kind == "moved" and change.is_dir:
            self._move_folder(change.path, change.dest or "")
        elif change.kind == "moved":
            self._move_file(change.path, change.dest or "")

    def _remove(self, paths: list[str]) -> None:
        self._add(self.indexer.remove([Path(p) for p in paths]))

    def _scan(self, folder: str) -> None:
        """Incremental scan (the ``index`` rules): new or changed files become pending, rows
        whose files are gone are swept once nothing is pending (a move found meanwhile keeps
        its vectors instead of being reported deleted first)."""
        summary = Summary()
        jobs, gone = self.indexer.plan([Path(folder)], summary)
        self._add(summary)
        for job in jobs:
            self._add_pending(str(job.entry.path), (job.entry.size, job.entry.mtime_ns))
        self._gone.extend(str(row.path) for row in gone)

    def _move_file(self, src: str, dest: str) -> None:
        entry = self._pending.pop(src, None)
        if entry is not None:  # not indexed yet: follow it to its new name
            self._add_pending(dest)
            return
        if self._is_current(dest):  # already followed (a folder move carried it)
            self._remove([src])  # a no-op then; else the row left behind at src goes
            return
        summary = self.indexer.move(Path(src), Path(dest))
        self._add(summary)
        if not summary.moved:
            self._add_pending(dest)  # unknown before, or its content changed too

    def _move_folder(self, src: str, dest: str) -> None:
        """Rows under the folder follow it (vectors and tags kept), pending paths too."""
        prefix = src + os.sep
        for path in [p for p in self._pending if p.startswith(prefix)]:
            entry = self._pending.pop(path)
            self._push(dest + path[len(src) :], entry)
        self._add(self.indexer.move(Path(src), Path(dest)))
        self._scan(dest)

    def _is_current(self, path: str) -> bool:
        """The catalog already holds this file as it is now (also: phototag's own write)."""
        row = self.indexer.catalog.photo_at(Path(path))
        if row is None or row.status != "ok":
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        return unchanged(row, st)

    # -- settling -----------------------------------------------------------------------------

    def _add_pending(self, path: str, sig: tuple[int, int] | None = None) -> None:
        if sig is None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return  # its deletion event follows
            except OSError:
                sig = (-1, -1)  # the indexer names the problem
            else:
                sig = (st.st_size, st.st_mtime_ns)
        entry = self._pending.get(path)
        if entry is not None and entry.sig == sig:
            return
        now = time.monotonic()
        self._push(path, _Pending(sig, now, now + self._wait_for(sig)))

    def _wait_for(self, sig: tuple[int, int]) -> float:
        """A file untouched for ``settle`` seconds already (by its mtime) needs no more waiting."""
        age = time.time() - sig[1] / 1e9
        return min(self.settle, max(0.0, self.settle - age))

    def _push(self, path: str, entry: _Pending) -> None:
        self._pending[path] = entry
        heapq.heappush(self._heap, (entry.due, next(self._seq), path))

    def _drop_pending_under(self, path: str) -> None:
        self._pending.pop(path, None)
        prefix = path + os.sep
        for key in [p for p in self._pending if p.startswith(prefix)]:
            del self._pending[key]

    def _settled(self, limit: int) -> list[str]:
        """Pending files whose size and mtime have held still for the settle time."""
        batch: list[str] = []
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now and len(batch) < limit:
            due, _seq, path = heapq.heappop(self._heap)
            entry = self._pending.get(path)
            if entry is None or entry.due != due:
                continue  # superseded by a later look
            try:
                st = os.stat(path)
            except FileNotFoundError:
                del self._pending[path]
                continue
            except OSError:
                del self._pending[path]
                batch.append(path)  # the indexer names the problem
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if sig != entry.sig:
                self._push(path, _Pending(sig, now, now + self._wait_for(sig)))
            elif now - entry.since >= self.settle or self._wait_for(sig) == 0:
                del self._pending[path]
                batch.append(path)
            else:
                self._push(path, _Pending(sig, entry.since, entry.since + self.settle))
        return batch

    def _process_ready(self) -> bool:
        batch = self._settled(self._batch)
        if not batch:
            return False
        started = time.perf_counter()
        worked = self._index(batch)
        if worked:
            per_photo = (time.perf_counter() - started) / len(batch)
            self._batch = max(MIN_BATCH, min(MAX_BATCH, int(BATCH_SECONDS / max(per_photo, 1e-3))))
        return True

    def _index(self, paths: list[str]) -> bool:
        """Index settled files; a failure is narrowed down to the file that caused it."""
        try:
            catalog = self.indexer.catalog
            with catalog.indexing_lock(on_wait=self._waiting):
                summary = self.indexer.index_files([Path(p) for p in paths])
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the watcher
            if len(paths) == 1:
                self.on_event(Event("skipped", Path(paths[0]), reason=f"unexpected error: {exc}"))
                return False
            return any([self._index([p]) for p in paths])
        self._add(summary)
        return summary.embedded > 0 or summary.new + summary.changed + summary.moved > 0

    # -- bookkeeping --------------------------------------------------------------------------

    def _guard(self, func: Callable[..., None], *args: Any) -> None:
        """Handle one change; an unexpected error is reported and the watcher goes on."""
        try:
            func(*args)
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive any one change
            what = f" (while handling {args[0]!r})" if args else ""
            self.on_message(f"error: {exc}{what}; going on")

    def _refresh(self, min_tail: int) -> None:
        try:
            self.library.refresh_search(min_tail=min_tail)
        except Exception as exc:  # noqa: BLE001 - queries still work from the exact tail
            self.on_message(f"could not rebuild the search index: {exc}; queries stay exact")

    def _add(self, summary: Summary) -> None:
        self.total.add(summary)

    def _waiting(self) -> None:
        self.on_message("another phototag is indexing this catalog; waiting for it to finish")


def _new_summary() -> Summary:
    return Summary()


def _photos_of_sidecar(path: str) -> list[str]:
    """The photos a sidecar belongs to: ``IMG.jpg.xmp`` -> IMG.jpg; ``IMG.xmp`` -> IMG.*."""
    base = path[:-4]
    if is_photo_name(os.path.basename(base)):
        return [base]
    folder, stem = os.path.split(base)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names if os.path.splitext(n)[0] == stem
            and is_photo_name(n)]  # fmt: skip


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if os.path.isdir(path) else None


def _is_empty(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def _reason(exc: OSError) -> str:
    return os_reason(exc)


def _limit_reason(exc: OSError) -> str:
    if exc.errno == errno.EMFILE:
        return "inotify instance limit reached; raise fs.inotify.max_user_instances"
    return "inotify watch limit reached; raise it: sudo sysctl fs.inotify.max_user_watches=524288"


def _inotify_limit() -> int | None:
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except (OSError, ValueError):
        return None


def _count_folders(roots: Sequence[str] | dict[str, Any], *, stop_after: int) -> int:
    """Folders native watching needs (one inotify watch each), counting no further than needed."""
    count = 0
    for root in roots:
        for _dirpath in os.walk(root):
            count += 1
            if count >= stop_after:
                return count
    return count


def _fs_type(path: str) -> str | None:
    """The file system type of ``path`` on Linux (from /proc/self/mounts), else None."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best, fs = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, fs = mount, parts[2]
    return fs


@contextmanager
def stop_on_signals(watcher: Watcher, say: Callable[[str], None]) -> Iterator[None]:
    """SIGINT/SIGTERM: finish the batch in flight and return; a second signal interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if watcher.stopping:
            raise KeyboardInterrupt
        say("stopping after the current batch")
        watcher.stop()

    wanted = [signal.SIGINT, signal.SIGTERM]
    previous = {sig: signal.signal(sig, handler) for sig in wanted}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.command(name="watch")
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-write", is_flag=True, help="Only update the catalog.")
@click.option("--sidecar", is_flag=True, help="Write XMP sidecars; never touch photos.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per photo event.")
@click.option(
    "--settle", type=click.FloatRange(min=0), default=DEFAULT_SETTLE, show_default=True,
    help="Seconds a file's size and mtime must hold still before it is indexed.",
)  # fmt: skip
@click.option("--poll", is_flag=True, help="Poll instead of native events (network shares).")
@click.pass_context
def watch_command(
    ctx: click.Context, paths: tuple[Path, ...], no_write: bool, sidecar: bool, as_json: bool,
    settle: float, poll: bool,
) -> None:  # fmt: skip
    """Watch folders: index photos as they arrive, follow moves and deletions (Ctrl-C stops)."""
    from phototag.library import Library

    library = ctx.find_object(Library)
    assert library is not None
    printer = EventPrinter(verbose=max(1, library.verbose), json_lines=as_json)

    def say(message: str) -> None:
        click.echo(message, err=True)

    watcher = Watcher(
        library, list(paths), write=write_mode(library.config.write, no_write, sidecar),
        settle=settle,
        poll=poll, on_event=printer, on_message=say,
    )  # fmt: skip
    with stop_on_signals(watcher, say):
        summary = watcher.run()
    counts = summary.as_dict()
    keys = ("new", "changed", "moved", "deleted", "skipped", "written")
    say("stopped: " + ", ".join(f"{counts[k]} {k}" for k in keys))
    sys.stdout.flush()

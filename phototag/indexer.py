"""Incremental indexing: scan, decode ahead on a bounded pool, embed in batches, tag, store.

Rules (after rclip): an unchanged size+mtime is skipped without reading the file;
a file whose bytes are already known under another path is a move (or a copy)
and reuses its vectors; rows under a scanned folder whose file was not seen are
swept (kept as tombstones so a later move still finds them). Catalog writes go
in one transaction per batch, so ``kill -9`` loses at most the batch in flight.
"""

from __future__ import annotations

import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Any

from phototag.catalog import ERROR, MACHINE, USER, Catalog, Photo, tag_key
from phototag.errors import PhotoError, UnreadableImage, WriteError
from phototag.imaging import Decoded, content_hash, decode
from phototag.scanner import FileEntry, ScanError, check_file, walk
from phototag.types import Embedding, Tag

if TYPE_CHECKING:
    from phototag.backends import Backend
    from phototag.models import ModelSpec
    from phototag.tagging import Tagger


@dataclass
class Event:
    """What happened to one photo; the CLI and the watcher turn these into lines."""

    kind: str  # new | changed | moved | copied | deleted | skipped | unchanged | write-failed
    path: Path
    tags: list[Tag] = field(default_factory=list)
    reason: str | None = None
    old_path: Path | None = None
    written: Path | None = None  # file or sidecar that received the tags
    changes: tuple[list[str], list[str]] | None = None  # (added, removed) keywords


@dataclass
class Summary:
    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    written: int = 0
    embedded: int = 0
    seconds: float = 0.0

    @property
    def photos_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        keys = ("new", "changed", "moved", "deleted", "unchanged", "skipped", "written", "embedded")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out["seconds"] = round(self.seconds, 3)
        out["photos_per_second"] = round(self.photos_per_second, 1)
        return out


@dataclass
class _Job:
    entry: FileEntry
    root_id: int
    relpath: str
    existing: Photo | None


@dataclass
class _Prepared:
    job: _Job
    size: int = 0
    mtime_ns: int = 0
    hash: str | None = None
    decoded: Decoded | None = None
    error: str | None = None


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """Read a regular file without ever blocking on a FIFO; the stat matches the bytes read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableImage(path, "not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), os.fstat(fd)
    finally:
        os.close(fd)


def file_hash(path: Path) -> tuple[str, os.stat_result]:
    data, st = read_file(path)
    return content_hash(data), st


def remember_rewrite(catalog: Catalog, photo_id: int, path: Path) -> None:
    """phototag itself rewrote ``path``: store its new size, mtime and hash, so neither the
    next scan nor the watcher mistakes the write for a change (and moves still match)."""
    new_hash, st = file_hash(path)
    catalog.update_file_state(
        photo_id, size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=new_hash
    )


class Indexer:
    """Keeps the catalog (and, with a writer, the photos' metadata) in step with the disk."""

    def __init__(
        self,
        catalog: Catalog,
        model: ModelSpec,
        backend_factory: Callable[[], Backend],
        tagger: Tagger,
        *,
        writer: Any = None,
        on_event: Callable[[Event], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_plan: Callable[[int], None] | None = None,
        workers: int | None = None,
        batch_size: int = 16,
        dry_run: bool = False,
    ) -> None:
        self.catalog = catalog
        self.model = model
        self._backend_factory = backend_factory
        self._backend: Backend | None = None
        self._backend_lock = Lock()
        self._embed_lock: Any = nullcontext()
        self.tagger = tagger
        self.writer = writer
        self.on_event = on_event or (lambda event: None)
        self.on_progress = on_progress or (lambda n: None)
        self.on_plan = on_plan or (lambda total: None)
        self.workers = (
            workers
            or int(os.environ.get("PHOTOTAG_DECODE_WORKERS", 0))
            or min(4, os.cpu_count() or 1)
        )
        self.batch_size = batch_size
        self.dry_run = dry_run
        #: unchanged photos indexed before the catalog kept camera and GPS (see ``plan``)
        self.facts_todo: list[tuple[int, Path]] = []

    @property
    def backend(self) -> Backend:
        """Created on first need: a run with nothing to embed never loads the model."""
        with self._backend_lock:
            if self._backend is None:
                self._backend = self._backend_factory()
                if not self._backend.concurrent:  # one inference call at a time
                    self._embed_lock = Lock()
        return self._backend

    # -- public entry points ------------------------------------------------------------------

    def plan(self, paths: Sequence[Path], summary: Summary) -> tuple[list[_Job], list[Photo]]:
        """Scan ``paths``: the jobs to run and the rows whose files are gone."""
        jobs: list[_Job] = []
        gone: list[Photo] = []
        with_vectors = self.catalog.ids_with_vectors(self.model.name)
        without_facts = self.catalog.ids_without_facts()
        for top in paths:
            top = Path(os.path.abspath(top))
            root_id, _root, prefix = self.catalog.root_for(top if top.is_dir() else top.parent)
            if not top.is_dir() and top.exists():
                prefix = ""
            known = self.catalog.photos_under(root_id, prefix) if top.is_dir() else {}
            seen: set[str] = set()
            failed_dirs: list[str] = []
            top_missing = False
            for item in walk(top):
                if isinstance(item, ScanError):
                    if item.path == top and item.is_dir:
                        top_missing = True
                    if item.is_dir:
                        failed_dirs.append(_rel(item.path, _root))
                    self._skip(summary, item.path, item.reason)
                    continue
                relpath = _rel(item.path, _root)
                seen.add(relpath)
                row = known.get(relpath) or (
                    self.catalog.photo_at(item.path) if not top.is_dir() else None
                )
                if (
                    row is not None
                    and row.size == item.size
                    and row.mtime_ns == item.mtime_ns
                    and row.status != "missing"
                ):
                    if row.status == ERROR:
                        self._skip(summary, item.path, row.error or "not a readable image")
                        continue
                    if row.id in with_vectors:
                        summary.unchanged += 1
                        if row.id in without_facts:
                            self.facts_todo.append((row.id, item.path))
                        continue
                jobs.append(_Job(item, root_id, relpath, row))
            if top.is_dir() and not top_missing:
                for relpath, row in known.items():
                    if relpath in seen or row.status == "missing":
                        continue
                    if any(relpath.startswith(d + "/") or relpath == d for d in failed_dirs):
                        continue
                    gone.append(row)
        return jobs, gone

    def index(self, paths: Sequence[Path]) -> Summary:
        """Bring the catalog in step with ``paths`` (folders recursively, or files)."""
        summary = Summary()
        started = time.perf_counter()
        with self._transaction_scope():
            jobs, gone = self.plan(paths, summary)
            self.run(jobs, summary)
            self._sweep(gone, summary)
            self.backfill_facts()
        summary.seconds = time.perf_counter() - started
        return summary

    def index_files(self, paths: Iterable[Path]) -> Summary:
        """Process these files (new or changed), as the watcher does after events."""
        summary = Summary()
        started = time.perf_counter()
        jobs = []
        with_vectors = self.catalog.ids_with_vectors(self.model.name)
        for path in paths:
            item = check_file(Path(path))
            if isinstance(item, ScanError):
                self._skip(summary, item.path, item.reason)
                continue
            root_id, _root, relpath = self.catalog.place_file(item.path)
            row = self.catalog.photo_at(item.path)
            if (
                row is not None
                and (row.size, row.mtime_ns) == (item.size, item.mtime_ns)
                and row.status == "ok"
                and row.id in with_vectors
            ):
                summary.unchanged += 1
                continue
            jobs.append(_Job(item, root_id, relpath, row))
        self.run(jobs, summary)
        summary.seconds = time.perf_counter() - started
        return summary

    def remove(self, paths: Iterable[Path]) -> Summary:
        """Files (or whole folders) that were deleted: they leave the results."""
        summary = Summary()
        gone: list[Photo] = []
        for path in paths:
            path = Path(os.path.abspath(path))
            row = self.catalog.photo_at(path)
            if row is not None:
                gone.append(row)
                continue
            found = self.catalog.find_root(path)
            if found is not None:
                root_id, _root, prefix = found
                gone.extend(self.catalog.photos_under(root_id, prefix).values())
        self._sweep([g for g in gone if g.status != "missing" and not g.path.exists()], summary)
        return summary

    def move(self, old: Path, new: Path) -> Summary:
        """A file or folder was renamed: rows follow it, vectors and tags stay."""
        summary = Summary()
        old, new = Path(os.path.abspath(old)), Path(os.path.abspath(new))
        row = self.catalog.photo_at(old)
        moves = []
        if row is not None:
            moves.append((row, new))
        elif (found := self.catalog.find_root(old)) is not None:
            root_id, _root, prefix = found
            for relpath, photo in self.catalog.photos_under(root_id, prefix).items():
                tail = relpath[len(prefix) :].lstrip("/") if prefix else relpath
                moves.append((photo, new / tail))
        with self.catalog.batch():
            for photo, target in moves:
                item = check_file(target)
                if isinstance(item, ScanError):
                    continue
                root_id, _root, relpath = self.catalog.place_file(target)
                if (item.size, item.mtime_ns) != (photo.size, photo.mtime_ns):
                    continue  # content changed too: the caller indexes it as new
                self.catalog.move(photo.id, root_id, relpath, item.size, item.mtime_ns)
                summary.moved += 1
                self.on_event(Event("moved", target, old_path=photo.path))
        return summary

    def backfill_facts(self) -> int:
        """Read the header (never the pixels) of unchanged photos that were indexed before
        the catalog kept camera and GPS, and store them; nothing is re-embedded."""
        from phototag.imaging import facts_of

        todo, self.facts_todo = self.facts_todo, []
        if not todo:
            return 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="phototag-facts") as pool:
            read = list(pool.map(lambda item: facts_of(item[1]), todo))
        rows = self.catalog.photos_by_id(pid for pid, _ in todo)
        with self.catalog.batch():
            for (pid, _path), facts in zip(todo, read, strict=True):
                if pid in rows:
                    self.catalog.set_facts(
                        pid, taken_at=facts.taken_at, camera=facts.camera,
                        has_gps=facts.has_gps, mtime_ns=rows[pid].mtime_ns,
                    )  # fmt: skip
        return len(todo)

    # -- the pipeline -------------------------------------------------------------------------

    def run(self, jobs: list[_Job], summary: Summary) -> None:
        """Workers decode and embed chunks side by side; this thread tags and stores them.

        Each worker runs its own decode -> inference loop (inference single-threaded when
        the backend allows concurrent calls), so the cores never sit in an inference
        thread pool waiting on a core a decoder holds. Memory stays bounded: at most
        ``2 x workers`` chunks of ``batch_size`` photos are in flight.
        """
        if not jobs:
            return
        self.on_plan(len(jobs))
        known_hashes = self._known_hashes()
        chunks = [jobs[i : i + self.batch_size] for i in range(0, len(jobs), self.batch_size)]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="phototag-embed") as pool:
            window: deque[Future[list[tuple[_Prepared, Embedding | None]]]] = deque()
            pending = iter(chunks)

            def refill() -> None:
                while len(window) < 2 * self.workers:
                    chunk = next(pending, None)
                    if chunk is None:
                        return
                    window.append(pool.submit(self._prepare_chunk, chunk, known_hashes))

            refill()
            while window:
                done = window.popleft().result()
                refill()
                self._store(done, summary)

    def _prepare_chunk(
        self, chunk: list[_Job], known_hashes: set[str]
    ) -> list[tuple[_Prepared, Embedding | None]]:
        """Runs on the pool: prepare every job, then one inference call for those that need it."""
        prepared = [self._prepare(job, known_hashes) for job in chunk]
        todo = [p for p in prepared if p.error is None and p.decoded is not None]
        embeddings: dict[int, Embedding] = {}
        if todo:
            backend = self.backend
            with self._embed_lock:
                found = backend.embed_batch(
                    [p.decoded.views for p in todo],  # type: ignore[union-attr]
                    [p.decoded.detector_image for p in todo],  # type: ignore[union-attr]
                )
            embeddings = {id(p): e for p, e in zip(todo, found, strict=True)}
        return [(p, embeddings.get(id(p))) for p in prepared]

    def _store(self, done: list[tuple[_Prepared, Embedding | None]], summary: Summary) -> None:
        """In this thread (it owns the catalog): errors, reuses and new vectors, one transaction."""
        results = []
        with self.catalog.batch():
            for p, emb in done:
                self.on_progress(1)
                if p.error is not None:
                    self._record_error(p, summary)
                elif emb is None:
                    self._reuse(p, summary)
                else:
                    results.append(self._store_embedding(p, emb, summary))
        for photo_id, path, tags, kind in results:
            written = self._write_tags(photo_id, path, tags, summary)
            self.on_event(Event(kind, path, tags=tags, **written))

    def _known_hashes(self) -> set[str]:
        rows = self.catalog.conn.execute(
            "select distinct p.hash from photos p join vectors v on v.photo_id = p.id "
            "where v.model = ? and p.hash is not null",
            [self.model.name],
        )
        return {r[0] for r in rows}

    def _prepare(self, job: _Job, known_hashes: set[str]) -> _Prepared:
        """Runs on the pool: read once, hash, and decode unless the bytes are known."""
        prepared = _Prepared(job)
        try:
            data, st = read_file(job.entry.path)
            prepared.size, prepared.mtime_ns = st.st_size, st.st_mtime_ns
            prepared.hash = content_hash(data)
            if prepared.hash in known_hashes:
                return prepared
            prepared.decoded = decode(job.entry.path, data, self.model)
        except PhotoError as exc:
            prepared.error = exc.reason
        except FileNotFoundError:
            prepared.error = "file vanished"
        except PermissionError:
            prepared.error = "permission denied"
        except OSError as exc:
            prepared.error = f"cannot read file ({(exc.strerror or str(exc)).lower()})"
        return prepared

    def _record_error(self, p: _Prepared, summary: Summary) -> None:
        self._skip(summary, p.job.entry.path, p.error or "unknown error")
        if p.error == "file vanished":
            return  # nothing to remember; the sweep of the next scan handles its row
        with self.catalog.batch():
            self.catalog.upsert_photo(
                p.job.root_id, p.job.relpath, size=p.size or p.job.entry.size,
                mtime_ns=p.mtime_ns or p.job.entry.mtime_ns, content_hash=p.hash,
                status=ERROR, error=p.error,
            )  # fmt: skip

    def _reuse(self, p: _Prepared, summary: Summary) -> None:
        """Bytes already known: same row (touched), a move, or a copy. No decoding."""
        assert p.hash is not None
        job = p.job
        sources = self.catalog.with_hash(p.hash, self.model.name)
        same = next((s for s in sources if job.existing and s.id == job.existing.id), None)
        with self.catalog.batch():
            if same is not None:
                self.catalog.upsert_photo(
                    job.root_id, job.relpath, size=p.size, mtime_ns=p.mtime_ns, content_hash=p.hash
                )
                summary.unchanged += 1
                return
            gone = next((s for s in sources if s.status == "missing" or not s.path.exists()), None)
            if gone is not None:
                self.catalog.move(gone.id, job.root_id, job.relpath, p.size, p.mtime_ns)
                summary.moved += 1
                self.on_event(Event("moved", job.entry.path, old_path=gone.path))
                return
            source = sources[0]
            photo_id = self.catalog.upsert_photo(
                job.root_id, job.relpath, size=p.size, mtime_ns=p.mtime_ns, content_hash=p.hash,
                width=None, height=None,
            )  # fmt: skip
            self.catalog.copy_vectors_and_tags(source.id, photo_id)
            self.catalog.copy_facts(source.id, photo_id)
        summary.new += 1
        tags = [t for t, src in self.catalog.tags_of([photo_id])[photo_id] if src == MACHINE]
        self._write_tags(photo_id, job.entry.path, tags, summary)
        self.on_event(Event("copied", job.entry.path, tags=tags, old_path=source.path))

    def _store_embedding(
        self, p: _Prepared, emb: Embedding, summary: Summary
    ) -> tuple[int, Path, list[Tag], str]:
        job, decoded = p.job, p.decoded
        assert decoded is not None
        summary.embedded += 1
        tags = self.tagger.tag(emb)
        photo_id = self.catalog.upsert_photo(
            job.root_id, job.relpath, size=p.size, mtime_ns=p.mtime_ns, content_hash=p.hash,
            width=decoded.width, height=decoded.height, taken_at=decoded.taken_at,
        )  # fmt: skip
        facts = decoded.facts
        self.catalog.set_facts(
            photo_id, taken_at=facts.taken_at, camera=facts.camera, has_gps=facts.has_gps,
            mtime_ns=p.mtime_ns,
        )  # fmt: skip
        self.catalog.set_vectors(photo_id, self.model.name, emb.visual, emb.semantic)
        rejected = self.catalog.rejected_tags(photo_id)
        if rejected:  # the user said no to these for this photo: never again
            tags = [t for t in tags if tag_key(t.tag) not in rejected]
        self.catalog.set_tags(photo_id, tags, source=MACHINE, model=self.model.name)
        self.catalog.set_objects(photo_id, self.model.name, emb.objects)
        kind = "changed" if job.existing is not None and job.existing.status != "missing" else "new"
        setattr(summary, kind, getattr(summary, kind) + 1)
        return photo_id, job.entry.path, tags, kind

    def _write_tags(
        self, photo_id: int, path: Path, tags: list[Tag], summary: Summary
    ) -> dict[str, Any]:
        """Write machine tags into the file (or sidecar); read the user's keywords back."""
        if self.writer is None:
            return {}
        try:
            # the catalog keeps every likely word; a file gets the words proven right
            outcome = self.writer.write(path, self.tagger.writable(tags), model=self.model.name)
            user = self.writer.read_keywords(path)
        except WriteError as exc:
            self._skip(summary, path, f"tags kept in the catalog only: {exc.reason}", count=False)
            return {}
        with self.catalog.batch():
            self.catalog.set_tags(photo_id, [Tag(k, 1.0) for k in user], source=USER)
            if outcome.changed and outcome.target == path and not self.dry_run:
                remember_rewrite(self.catalog, photo_id, path)
        if outcome.changed:
            summary.written += 1
        return {"written": outcome.target, "changes": (outcome.added, outcome.removed)}

    def _sweep(self, gone: list[Photo], summary: Summary) -> None:
        current = self.catalog.photos_by_id(p.id for p in gone)
        # a row that moved during this run is not gone: only its old path is
        gone = [p for p in gone if p.id in current and current[p.id].path == p.path]
        if not gone:
            return
        with self.catalog.batch():
            summary.deleted += self.catalog.mark_missing(p.id for p in gone)
        for photo in gone:
            self.on_event(Event("deleted", photo.path))

    def _skip(self, summary: Summary, path: Path, reason: str, *, count: bool = True) -> None:
        if count:
            summary.skipped += 1
        self.on_event(Event("skipped", path, reason=reason))

    @contextmanager
    def _transaction_scope(self) -> Any:
        """A dry run does all the work inside one transaction, then rolls it back."""
        if not self.dry_run:
            with nullcontext():
                yield
            return
        cat = self.catalog
        cat._in_batch = True
        cat.conn.execute("begin immediate")
        try:
            yield
        finally:
            cat.conn.execute("rollback")
            cat._in_batch = False


def _rel(path: Path, root: str) -> str:
    return Path(path).relative_to(root).as_posix()

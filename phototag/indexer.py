"""Incremental indexing: scan, decode ahead on a bounded pool, embed in batches, tag, store,
then write the tags into the files.

Rules (after rclip): an unchanged size+mtime is skipped without reading the file; a file
whose bytes are already known under another path is a move (or a copy) and reuses its
vectors; rows under a scanned folder whose file was not seen are swept (kept as
tombstones for a while so a later move still finds them).

Writes are tracked per photo (``photos.written_*``): the catalog knows whether the file
(or its sidecar) holds the machine tags it should, so a write that did not happen (killed,
read-only, disk full, ``--no-write``, a deleted sidecar) is done by the next run. Order
per chunk: one catalog transaction stores vectors and tags (write state: pending), the
writes run with no transaction open, then one transaction records what each write did.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag.catalog import ERROR, MACHINE, TOMBSTONE_DAYS, USER, Catalog, Photo
from phototag.engines import Computed, Engine, LocalEngine, Work
from phototag.errors import PhotoError, WriteError
from phototag.events import Event, Summary
from phototag.files import read_file, remove_stale_temp, unchanged, valid_name
from phototag.imaging import content_hash
from phototag.scanner import FileEntry, ScanError, check_file, walk
from phototag.types import Embedding, Tag

if TYPE_CHECKING:
    from phototag.backends import Backend
    from phototag.models import ModelSpec
    from phototag.tagging import Tagger

__all__ = ["Event", "Indexer", "Summary", "file_hash", "read_file"]


@dataclass
class _Job:
    entry: FileEntry
    root_id: int
    relpath: str
    existing: Photo | None
    write_only: bool = False  # unchanged and embedded: only its tags still need writing


@dataclass
class _Write:
    """One photo whose machine tags go into its file (or sidecar) after the transaction."""

    photo_id: int
    path: Path
    tags: list[Tag]
    kind: str  # the event reported once written
    outside: bool = False
    old_path: Path | None = None
    remove: bool = False  # untag: machine tags out


def file_hash(path: Path) -> tuple[str, os.stat_result]:
    data, st = read_file(path)
    return content_hash(data), st


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
        command: str = "index",
        engine: Engine | None = None,
        backend_name: str = "",
    ) -> None:
        self.catalog = catalog
        self.model = model
        self._backend_factory = backend_factory
        #: computes the embeddings; everything else (catalog, tags, writes) stays here
        self.engine = engine or LocalEngine()
        self.backend_name = backend_name
        self.tagger = tagger
        self.writer = writer
        self.mode: str | None = getattr(writer, "mode", None) if writer is not None else None
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
        self._without_facts: set[int] = set()
        self.command = command
        self.run_id: int | None = None  # created with the first file this run changes

    # -- what needs doing ---------------------------------------------------------------------

    def needs_write(self, row: Photo) -> bool:
        """The row's file (or sidecar) does not hold what the catalog says it should."""
        if self.writer is None or row.status != "ok":
            return False
        if not row.written_as(self.mode or ""):
            return True
        if row.written_target:  # a sidecar: it must still be there, as written
            try:
                st = os.stat(row.path.with_name(row.written_target))
            except OSError:
                return row.written_size is not None  # None: there was nothing to write
            return (st.st_size, st.st_mtime_ns) != (row.written_size, row.written_mtime_ns)
        return (row.size, row.mtime_ns) != (row.written_size, row.written_mtime_ns)

    def plan(self, paths: Sequence[Path], summary: Summary) -> tuple[list[_Job], list[Photo]]:
        """Scan ``paths``: the jobs to run and the rows whose files are gone."""
        jobs: list[_Job] = []
        gone: list[Photo] = []
        with_vectors = self.catalog.ids_with_vectors(self.model.name)
        self._without_facts = self.catalog.ids_without_facts()
        for top in paths:
            top = Path(os.path.abspath(top))
            if problem := valid_name(top):
                self._skip(summary, top, problem)
                continue
            is_dir = top.is_dir()
            if not is_dir and not top.exists():
                self._skip(summary, top, "no such file or folder")
                continue
            if is_dir:
                root_id, root, prefix = self.catalog.root_for(top)
            else:
                first = next(iter(walk(top)), None)
                if isinstance(first, ScanError):
                    self._skip(summary, first.path, first.reason)
                    continue
                root_id, root, _rel_file = self.catalog.place_file(top)
                prefix = ""
            known = self.catalog.photos_under(root_id, prefix) if is_dir else {}
            seen: set[str] = set()
            failed_dirs: list[str] = []
            top_missing = False
            for item in walk(top, within=Path(root), on_temp=self._stale_temp):
                if isinstance(item, ScanError):
                    if item.path == top and item.is_dir:
                        top_missing = True
                    if item.is_dir:
                        failed_dirs.append(_rel(item.path, root))
                    self._skip(summary, item.path, item.reason)
                    continue
                relpath = _rel(item.path, root)
                seen.add(relpath)
                row = known.get(relpath) or (
                    self.catalog.photo_at(item.path) if not is_dir else None
                )
                job = self._job_for(item, root_id, relpath, row, with_vectors, summary)
                if job is not None:
                    jobs.append(job)
            if is_dir and not top_missing:
                for relpath, row in known.items():
                    if relpath in seen or row.status == "missing":
                        continue
                    if any(relpath.startswith(d + "/") or relpath == d for d in failed_dirs):
                        continue
                    gone.append(row)
        return jobs, gone

    def _job_for(
        self, item: FileEntry, root_id: int, relpath: str, row: Photo | None,
        with_vectors: set[int], summary: Summary,
    ) -> _Job | None:  # fmt: skip
        """The one rule for a scanned file: embed it, only write its tags, or nothing.

        Errors are always retried: a file fixed since (permissions, a finished copy) may
        keep its size and mtime.
        """
        current = row is not None and row.status == "ok" and unchanged(row, _entry_stat(item))
        if not current or row is None or row.id not in with_vectors:
            return _Job(item, root_id, relpath, row)
        if self.needs_write(row) and not (item.outside and self._in_place(item.path)):
            return _Job(item, root_id, relpath, row, write_only=True)
        summary.unchanged += 1
        if row.id in self._without_facts:  # indexed before the catalog kept camera and GPS
            self.facts_todo.append((row.id, item.path))
        return None

    def _in_place(self, path: Path) -> bool:
        target = getattr(self.writer, "target_for", None)
        return target is None or target(path).suffix.lower() != ".xmp"

    def _stale_temp(self, path: Path) -> None:
        if not self.dry_run and remove_stale_temp(path):
            self.on_event(Event("cleaned", path, reason="stale temp file of phototag removed"))

    # -- public entry points ------------------------------------------------------------------

    def index(self, paths: Sequence[Path]) -> Summary:
        """Bring the catalog in step with ``paths`` (folders recursively, or files)."""
        summary = Summary()
        started = time.perf_counter()
        with self._transaction_scope():
            jobs, gone = self.plan(paths, summary)
            self.run(jobs, summary)
            self._sweep(gone, summary)
            self.backfill_facts()
            if not self.dry_run:
                self.catalog.purge_missing(older_than_days=TOMBSTONE_DAYS)
        self.finish()
        summary.seconds = time.perf_counter() - started
        return summary

    def finish(self) -> None:
        """Close this run's journal entry (``phototag runs``)."""
        if self.run_id is not None and not self.dry_run:
            self.catalog.finish_run(self.run_id)
        self.run_id = None

    def index_files(self, paths: Iterable[Path]) -> Summary:
        """Process these files (new or changed), as the watcher does after events."""
        summary = Summary()
        started = time.perf_counter()
        jobs = []
        with_vectors = self.catalog.ids_with_vectors(self.model.name)
        for path in paths:
            found = self.catalog.find_root(Path(path))
            item = check_file(Path(path), within=Path(found[1]) if found else None)
            if isinstance(item, ScanError):
                self._skip(summary, item.path, item.reason)
                continue
            root_id, _root, relpath = self.catalog.place_file(item.path)
            row = self.catalog.photo_at(item.path)
            job = self._job_for(item, root_id, relpath, row, with_vectors, summary)
            if job is not None:
                jobs.append(job)
        self.run(jobs, summary)
        summary.seconds = time.perf_counter() - started
        return summary

    def untag(self, paths: Sequence[Path]) -> Summary:
        """Remove phototag's machine tags from files (or sidecars) and the catalog."""
        summary = Summary()
        with self._transaction_scope():
            items: list[_Write] = []
            for top in paths:
                for item in walk(Path(top), on_temp=self._stale_temp):
                    if isinstance(item, ScanError):
                        self._skip(summary, item.path, item.reason)
                        continue
                    row = self.catalog.photo_at(item.path)
                    items.append(
                        _Write(row.id if row else 0, item.path, [], "untagged", remove=True)
                    )
            for start in range(0, len(items), self.batch_size * 4):
                self._write_all(items[start : start + self.batch_size * 4], summary)
        self.finish()
        return summary

    def undo(self, run_id: int | None) -> tuple[Summary, int]:
        """Put back what run ``run_id`` (default: the latest) changed in files; returns the
        summary and the run undone. Files edited since are left alone, each named."""
        from phototag.errors import PhototagError

        run = self.catalog.run(run_id)
        if run is None:
            raise PhototagError("no run to undo" if run_id is None else f"no run {run_id}")
        if run.undone_by is not None:
            raise PhototagError(f"run {run.id} was already undone (by run {run.undone_by})")
        summary = Summary()
        for entry in self.catalog.journal_of(run.id):
            try:
                outcome = self.writer.restore(entry.path, entry.target, entry.before, entry.after)
            except WriteError as exc:
                self._skip(summary, entry.path, f"cannot undo: {exc.reason}")
                continue
            summary.written += 1
            with self.catalog.batch():
                self._journal(_Write(entry.photo_id or 0, entry.path, [], "undone"), outcome)
                if entry.photo_id and not self.dry_run:
                    self._restore_catalog(entry.photo_id, entry.path, outcome)
            self.on_event(Event("undone", entry.path, written=entry.target))
        if not self.dry_run:
            with self.catalog.batch():
                self.catalog.mark_undone(run.id, self.run_id or 0)
        self.finish()
        return summary, run.id

    def _restore_catalog(self, photo_id: int, path: Path, outcome: Any) -> None:
        """The catalog's machine tags become what the restored file says (its namespace)."""
        ns = (outcome.after or {}).get("namespace")
        tags = [Tag(name, float(score), hier) for name, score, hier in ns[2]] if ns else []
        self.catalog.set_tags(photo_id, tags, source=MACHINE, model=ns[3] if ns else "")
        in_place = outcome.target.suffix.lower() != ".xmp"
        if in_place:
            self._remember_rewrite(photo_id, path)
        target = "" if in_place else outcome.target.name
        self.catalog.mark_written(photo_id, self.mode or "", target, outcome.size,
                                  outcome.mtime_ns)  # fmt: skip

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
                if not unchanged(photo, _entry_stat(item)):
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
        """The engine computes embeddings; this thread tags, stores and writes each group as
        it arrives (one transaction per group), so a killed run loses no finished photo."""
        if not jobs:
            return
        self.on_plan(len(jobs))
        write_only = [j for j in jobs if j.write_only]
        jobs = [j for j in jobs if not j.write_only]
        for start in range(0, len(write_only), self.batch_size * 4):
            self._write_only(write_only[start : start + self.batch_size * 4], summary)
        if not jobs:
            return
        work = Work(
            self.model, self.backend_name, self.catalog.known_hashes(self.model.name),
            batch_size=self.batch_size, workers=self.workers,
            backend_factory=self._backend_factory,
        )  # fmt: skip
        for done in self.engine.compute([j.entry.path for j in jobs], work):
            self._store([(jobs[i], c) for i, c in done], summary)

    def _store(self, done: list[tuple[_Job, Computed]], summary: Summary) -> None:
        """In this thread (it owns the catalog): one transaction, then the writes."""
        writes: list[_Write] = []
        events: list[Event] = []
        with self.catalog.batch():
            for job, c in done:
                self.on_progress(1)
                if c.error is not None:
                    self._record_error(job, c, summary)
                elif c.embedding is None:
                    self._reuse(job, c, summary, writes, events)
                else:
                    writes.append(self._store_embedding(job, c, c.embedding, summary))
        for event in events:
            self.on_event(event)
        self._write_all(writes, summary)

    def _write_only(self, jobs: list[_Job], summary: Summary) -> None:
        """Unchanged photos whose tags are not (or no longer) in their file or sidecar."""
        ids = [j.existing.id for j in jobs if j.existing is not None]
        tags = self.catalog.tags_of(ids)
        writes = []
        for job in jobs:
            assert job.existing is not None
            self.on_progress(1)
            machine = [t for t, src in tags.get(job.existing.id, []) if src == MACHINE]
            writes.append(
                _Write(job.existing.id, job.entry.path, machine, "written", job.entry.outside)
            )
        self._write_all(writes, summary)

    def _record_error(self, job: _Job, c: Computed, summary: Summary) -> None:
        self._skip(summary, job.entry.path, c.error or "unknown error")
        if c.error == "file vanished":
            return  # nothing to remember; the sweep of the next scan handles its row
        self.catalog.upsert_photo(
            job.root_id, job.relpath, size=c.size or job.entry.size,
            mtime_ns=c.mtime_ns or job.entry.mtime_ns, content_hash=c.hash,
            status=ERROR, error=c.error,
        )  # fmt: skip

    def _reuse(
        self, job: _Job, p: Computed, summary: Summary, writes: list[_Write], events: list[Event]
    ) -> None:
        """Bytes already known: same row (touched), a move, or a copy. No decoding."""
        assert p.hash is not None
        sources = self.catalog.with_hash(p.hash, self.model.name)
        same = next((s for s in sources if job.existing and s.id == job.existing.id), None)
        if same is not None:
            photo_id = self.catalog.upsert_photo(
                job.root_id, job.relpath, size=p.size, mtime_ns=p.mtime_ns, content_hash=p.hash
            )
            summary.unchanged += 1
            self._write_if_needed(photo_id, job, writes, "written")
            return
        gone = next((s for s in sources if s.status == "missing" or not s.path.exists()), None)
        if gone is not None:
            self.catalog.move(gone.id, job.root_id, job.relpath, p.size, p.mtime_ns)
            summary.moved += 1
            events.append(Event("moved", job.entry.path, old_path=gone.path))
            self._write_if_needed(gone.id, job, writes, "written")
            return
        source = sources[0]
        photo_id = self.catalog.upsert_photo(
            job.root_id, job.relpath, size=p.size, mtime_ns=p.mtime_ns, content_hash=p.hash,
            width=None, height=None,
        )  # fmt: skip
        self.catalog.copy_vectors_and_tags(source.id, photo_id)
        self.catalog.copy_facts(source.id, photo_id)
        summary.new += 1
        tags = self.catalog.machine_tags(photo_id)
        writes.append(
            _Write(photo_id, job.entry.path, tags, "copied", job.entry.outside, source.path)
        )

    def _write_if_needed(self, photo_id: int, job: _Job, writes: list[_Write], kind: str) -> None:
        row = self.catalog.photos_by_id([photo_id]).get(photo_id)
        if row is not None and self.needs_write(row):
            tags = self.catalog.machine_tags(photo_id)
            writes.append(_Write(photo_id, job.entry.path, tags, kind, job.entry.outside))

    def _store_embedding(self, job: _Job, p: Computed, emb: Embedding, summary: Summary) -> _Write:
        summary.embedded += 1
        tags = self.tagger.tag(emb)
        photo_id = self.catalog.upsert_photo(
            job.root_id, job.relpath, size=p.size, mtime_ns=p.mtime_ns, content_hash=p.hash,
            width=p.width, height=p.height, taken_at=p.taken_at,
        )  # fmt: skip
        facts = p.facts
        self.catalog.set_facts(
            photo_id, taken_at=facts.taken_at, camera=facts.camera, has_gps=facts.has_gps,
            mtime_ns=p.mtime_ns,
        )  # fmt: skip
        rejected = self.catalog.rejected_tags([photo_id]).get(photo_id, set()) if (
            job.existing is not None
        ) else set()  # fmt: skip
        if rejected:
            low = {r.lower() for r in rejected}
            tags = [t for t in tags if t.tag.lower() not in low]
        self.catalog.set_vectors(photo_id, self.model.name, emb.visual, emb.semantic)
        self.catalog.set_tags(photo_id, tags, source=MACHINE, model=self.model.name)
        self.catalog.set_objects(photo_id, self.model.name, emb.objects)
        kind = "changed" if job.existing is not None and job.existing.status != "missing" else "new"
        setattr(summary, kind, getattr(summary, kind) + 1)
        return _Write(photo_id, job.entry.path, tags, kind, job.entry.outside)

    # -- writing tags into files --------------------------------------------------------------

    def _write_all(self, items: list[_Write], summary: Summary) -> None:
        """Write each photo's tags (no transaction open), then record the results in one."""
        if not items:
            return
        if self.writer is None:
            for item in items:
                if item.remove and item.photo_id:
                    self.catalog.set_tags(item.photo_id, [], source=MACHINE)
                self.on_event(Event(item.kind, item.path, tags=item.tags, old_path=item.old_path))
            return
        rejected = self.catalog.rejected_tags(i.photo_id for i in items if i.photo_id)
        done = []
        for item in items:
            outcome, user = self._write_one(item, rejected.get(item.photo_id, set()), summary)
            done.append((item, outcome, user))
        with self.catalog.batch():
            for item, outcome, user in done:
                if outcome is not None:
                    self._record_write(item, outcome, user)
        for item, outcome, _user in done:
            extra: dict[str, Any] = {}
            if outcome is not None:
                extra = {"written": outcome.target, "changes": (outcome.added, outcome.removed)}
            self.on_event(
                Event(item.kind, item.path, tags=item.tags, old_path=item.old_path, **extra)
            )

    def _write_one(
        self, item: _Write, rejected: set[str], summary: Summary
    ) -> tuple[Any, list[str] | None]:
        if item.outside and self._in_place(item.path):
            reason = "a link to a file outside the library: indexed, never written through"
            self._skip(summary, item.path, f"tags kept in the catalog only: {reason}", count=False)
            return None, None
        try:
            if item.remove:
                outcome = self.writer.remove(item.path)
            else:
                # the catalog keeps every likely word; a file gets the words proven right
                outcome = self.writer.write(
                    item.path, self.tagger.writable(item.tags), model=self.model.name,
                    rejected=rejected,
                )  # fmt: skip
            user = self.writer.read_keywords(item.path)
        except WriteError as exc:
            what = "" if item.remove else "tags kept in the catalog only: "
            self._skip(summary, item.path, f"{what}{exc.reason}", count=item.remove)
            return None, None
        if outcome.changed:
            summary.written += 1
        return outcome, user

    def _record_write(self, item: _Write, outcome: Any, user: list[str] | None) -> None:
        """What the file now holds: user keywords, rejected tags, write state, journal."""
        if not item.photo_id:
            return self._journal(item, outcome)
        cat = self.catalog
        if user is not None:
            cat.set_tags(item.photo_id, [Tag(k, 1.0) for k in user], source=USER)
        if item.remove:
            cat.set_tags(item.photo_id, [], source=MACHINE)
        if outcome.rejected and not self.dry_run:
            cat.reject_tags(item.photo_id, outcome.rejected)
        if self.dry_run:
            return None
        in_place = outcome.target.suffix.lower() != ".xmp"
        if outcome.changed and in_place:
            self._remember_rewrite(item.photo_id, item.path)
        target = "" if in_place else outcome.target.name
        cat.mark_written(item.photo_id, self.mode or "", target, outcome.size, outcome.mtime_ns)
        return self._journal(item, outcome)

    def _journal(self, item: _Write, outcome: Any) -> None:
        if self.dry_run or not outcome.changed or outcome.before is None:
            return
        if self.run_id is None:
            self.run_id = self.catalog.start_run(self.command, self.mode)
        self.catalog.journal(
            self.run_id, item.photo_id or None, item.path, outcome.target, outcome.before,
            outcome.after or {},
        )  # fmt: skip

    def _remember_rewrite(self, photo_id: int, path: Path) -> None:
        """phototag itself rewrote ``path``: store its new size, mtime and hash, so neither the
        next scan nor the watcher mistakes the write for a change (and moves still match)."""
        try:
            new_hash, st = file_hash(path)
        except (OSError, PhotoError):
            return  # changed again meanwhile: the next run looks at it
        self.catalog.update_file_state(
            photo_id, size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=new_hash
        )

    # -- bookkeeping --------------------------------------------------------------------------

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
    def _transaction_scope(self) -> Iterator[None]:
        """A dry run does all the work inside one transaction, then rolls it back."""
        with self.catalog.rolled_back() if self.dry_run else nullcontext():
            yield


def _entry_stat(item: FileEntry) -> Any:
    """A scanned entry's size and mtime in the shape ``files.unchanged`` reads."""
    return _Sig(item.size, item.mtime_ns)


@dataclass(frozen=True)
class _Sig:
    st_size: int
    st_mtime_ns: int


def _rel(path: Path, root: str) -> str:
    return Path(path).relative_to(root).as_posix()

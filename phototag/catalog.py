"""The SQLite catalog: photos, their vectors per model, tags, and library roots.

Paths are stored relative to a root, so a library that moves to another disk is
re-pointed with one UPDATE (``relocate``) instead of being re-embedded. A photo
that disappears becomes a tombstone (``status = 'missing'``) that keeps its
vectors, so if it turns up elsewhere later its content hash brings them back.
Schema changes are append-only sqlite-utils migrations: never edit a shipped one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag.errors import CatalogError
from phototag.types import Tag
from phototag.vectorstore import VectorStore

if TYPE_CHECKING:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

    from phototag.detection import Detection

MIGRATION_SET = "phototag"
#: ``pragma user_version`` this phototag writes (0: it never set one); higher: a newer phototag
USER_VERSION = 0

OK, ERROR, MISSING = "ok", "error", "missing"
MACHINE, USER = "machine", "user"


def m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        create table roots (
            id integer primary key,
            path text not null unique
        )"""
    )
    db.execute(
        """
        create table photos (
            id integer primary key,
            root_id integer not null references roots(id),
            relpath text not null,
            size integer not null,
            mtime_ns integer not null,
            hash text,
            width integer,
            height integer,
            taken_at text,
            status text not null default 'ok',
            error text,
            indexed_at real,
            unique (root_id, relpath)
        )"""
    )
    db.execute("create index photos_hash on photos(hash)")
    db.execute("create index photos_status on photos(status)")
    db.execute(
        """
        create table vectors (
            photo_id integer not null references photos(id) on delete cascade,
            model text not null,
            seq integer not null,
            visual blob not null,
            semantic blob not null,
            primary key (photo_id, model)
        )"""
    )
    db.execute("create index vectors_seq on vectors(seq)")
    db.execute(
        """
        create table tags (
            photo_id integer not null references photos(id) on delete cascade,
            tag text not null,
            score real,
            source text not null,
            model text not null default '',
            hierarchy text not null default '',
            primary key (photo_id, source, tag)
        )"""
    )
    db.execute("create index tags_tag on tags(tag collate nocase)")
    db.execute("create table meta (key text primary key, value text)")


def m002_objects(db: sqlite_utils.Database) -> None:
    """Detected objects per photo and model: label, score, box normalised to 0..1."""
    db.execute(
        """
        create table objects (
            photo_id integer not null references photos(id) on delete cascade,
            model text not null,
            label text not null,
            score real not null,
            x1 real not null,
            y1 real not null,
            x2 real not null,
            y2 real not null
        )"""
    )
    db.execute("create index objects_photo on objects(photo_id, model)")
    db.execute("create index objects_label on objects(label)")


def m005_photo_facts(db: sqlite_utils.Database) -> None:
    """What search filters on: the photo's date (EXIF date taken, else the file's mtime, in
    local time like EXIF dates), camera model and GPS presence, with an index for dates.

    Existing rows get their date here, from ``taken_at`` or the stored mtime (nothing is
    read or re-embedded); camera and GPS stay NULL ("not read yet") until the next
    ``phototag index`` reads the file's header for them.
    """
    db.execute("alter table photos add column photo_date text")
    db.execute("alter table photos add column camera text")
    db.execute("alter table photos add column has_gps integer")
    db.execute(
        "update photos set photo_date = coalesce(taken_at, "
        "strftime('%Y-%m-%dT%H:%M:%S', mtime_ns / 1000000000, 'unixepoch', 'localtime'))"
    )
    db.execute("create index photos_photo_date on photos(photo_date)")


def m010_write_state(db: sqlite_utils.Database) -> None:
    """What the photo's file (or sidecar) holds: the machine tags written, in which mode,
    and the written target's size and mtime. ``written_mode`` null: not written yet."""
    for column, kind in (("written_mode", "text"), ("written_target", "text"),
                         ("written_size", "integer"), ("written_mtime_ns", "integer")):  # fmt: skip
        db.execute(f"alter table photos add column {column} {kind}")


def m011_runs_journal(db: sqlite_utils.Database) -> None:
    """Runs that wrote files, what each changed (for undo), and tags the user rejected."""
    db.execute(
        """
        create table runs (
            id integer primary key,
            command text not null,
            mode text,
            started_at real not null,
            finished_at real,
            undone_by integer
        )"""
    )
    db.execute(
        """
        create table journal (
            id integer primary key,
            run_id integer not null references runs(id) on delete cascade,
            photo_id integer,
            path text not null,
            target text not null,
            before text not null,
            after text not null
        )"""
    )
    db.execute("create index journal_run on journal(run_id)")
    db.execute(
        """
        create table rejected_tags (
            photo_id integer not null references photos(id) on delete cascade,
            tag text not null collate nocase,
            at real not null,
            primary key (photo_id, tag)
        )"""
    )


def m012_tombstone_age(db: sqlite_utils.Database) -> None:
    """When a photo went missing, so tombstones can be purged after a while."""
    db.execute("alter table photos add column missing_at real")
    db.execute("update photos set missing_at = indexed_at where status = 'missing'")


def m013_projections(db: sqlite_utils.Database) -> None:
    """Fitted projections of a vector space (PCA of the library's visual vectors): the
    search index is built in the reduced space; each index file names the one it used."""
    db.execute(
        """
        create table projections (
            id integer primary key,
            model text not null,
            space text not null,
            dim integer not null,
            components blob not null,
            fitted_on integer not null,
            fitted_at real not null
        )"""
    )
    db.execute("create index projections_model on projections(model, space)")


def m014_tags_by_score(db: sqlite_utils.Database) -> None:
    """A word's photos best first, straight from an index: ``find`` asks for the top few
    hundred of a word that may tag a fifth of a million-photo library."""
    db.execute(
        "create index tags_tag_score on tags(tag collate nocase, coalesce(score, 1.0) desc, "
        "photo_id)"
    )


#: Append-only: a migration that has shipped is never edited, only followed by a new one.
MIGRATIONS = [
    m001_initial, m002_objects, m005_photo_facts, m010_write_state, m011_runs_journal,
    m012_tombstone_age, m013_projections, m014_tags_by_score,
]
#: tombstones older than this are forgotten (a move found later re-embeds instead)
TOMBSTONE_DAYS = 30.0


def migrations() -> Migrations:
    """The sqlite-utils migration set, built on demand: importing sqlite-utils costs ~60 ms
    that a query process does not need when the catalog is already current."""
    from sqlite_utils.migrations import Migrations

    found = Migrations(MIGRATION_SET)
    for fn in MIGRATIONS:
        found()(fn)
    return found


@dataclass
class Photo:
    id: int
    root: str
    relpath: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    error: str | None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    written_mode: str | None = None
    written_target: str | None = None
    written_size: int | None = None
    written_mtime_ns: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.root) / self.relpath

    def written_as(self, mode: str) -> bool:
        """Whether its machine tags were written in ``mode`` (the target may have changed
        since: see ``Indexer`` for the stat check)."""
        return self.written_mode == mode


@dataclass
class PhotoFacts:
    date: str | None  # EXIF date taken, else the file's mtime (ISO 8601, local time)
    camera: str | None
    has_gps: bool | None  # None: not read yet (indexed before the catalog kept it)


@dataclass
class Stats:
    photos: int
    tagged: int
    errors: int
    pending: int
    missing: int
    roots: list[str]
    unwritten: int = 0  # catalogued photos whose machine tags are not in their file (or sidecar)


@dataclass
class Run:
    id: int
    command: str
    mode: str | None
    started_at: float
    finished_at: float | None
    files: int
    undone_by: int | None


@dataclass
class JournalEntry:
    id: int
    run_id: int
    photo_id: int | None
    path: Path
    target: Path
    before: dict[str, Any]
    after: dict[str, Any]


def default_catalog_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("phototag")) / "catalog.db"


#: a file's mtime (``?`` in ns) as an ISO 8601 local time, like EXIF dates
_LOCAL_MTIME = "strftime('%Y-%m-%dT%H:%M:%S', ? / 1000000000, 'unixepoch', 'localtime')"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def tag_key(text: str) -> str:
    """How tags compare: NFC, case-folded, whitespace collapsed ("Café" == "café ")."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return " ".join(folded.split())


def describe(exc: BaseException) -> str:
    """A SQLite error as the one line a user can act on."""
    text = str(exc).lower()
    if "disk is full" in text or "disk i/o" in text:
        return "the disk is full (or failing); free some space and run again"
    if "readonly" in text or "read-only" in text:
        return "the catalog is read-only; check its permissions"
    if "locked" in text or "busy" in text:
        return "the catalog is busy (another phototag holds it); try again"
    return text


class Catalog(VectorStore):
    """All SQL lives here (vectors in ``vectorstore``); callers see Photos, Tags and vectors."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: each statement commits unless ``batch()`` opened a transaction
            self.conn = sqlite3.connect(
                str(self.path), timeout=30, check_same_thread=False, isolation_level=None
            )
            self.conn.execute("pragma busy_timeout = 30000")
            self.conn.execute("pragma journal_mode = wal")
            self.conn.execute("pragma synchronous = normal")
            self.conn.execute("pragma foreign_keys = on")
            self._in_batch = False
            if self._migrations_pending():
                self._migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise CatalogError(f"cannot open catalog {self.path}: {describe(exc)}") from None

    def _migrations_pending(self) -> bool:
        """A cheap check, so queries need not import sqlite-utils at all.

        A catalog written by a newer phototag (a migration this one does not know, or a
        higher ``user_version``) is refused before anything touches it.
        """
        version = int(self.conn.execute("pragma user_version").fetchone()[0])
        try:
            applied = {
                r[0] for r in self.conn.execute(
                    "select name from _sqlite_migrations where migration_set = ?",
                    [MIGRATION_SET],
                )
            }  # fmt: skip
        except sqlite3.OperationalError:
            applied = set()
        unknown = sorted(applied - {fn.__name__ for fn in MIGRATIONS})
        if unknown or version > USER_VERSION:
            self.conn.close()
            what = f"unknown migration {unknown[0]}" if unknown else f"user_version {version}"
            raise CatalogError(
                f"catalog {self.path} was made by a newer phototag ({what}); "
                "upgrade phototag to use it (it was left untouched)"
            )
        return not {fn.__name__ for fn in MIGRATIONS} <= applied

    def _migrate(self) -> None:
        """Apply pending migrations under SQLite's write lock.

        Two processes opening a new catalog at once would otherwise both see it empty and
        both create its tables; the second one waits here, then finds nothing left to do.
        """
        self.conn.execute("begin immediate")
        try:
            if self._migrations_pending():
                migrations().apply(self.db)  # nested: each migration is a savepoint
            self.conn.execute("commit")
        except BaseException:
            with suppress(sqlite3.ProgrammingError):  # closed: a newer phototag's catalog
                if self.conn.in_transaction:
                    self.conn.execute("rollback")
            raise

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection (migrations, ad-hoc inspection)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for many writes: fast, and all-or-nothing if the process dies."""
        if self._in_batch:
            yield
            return
        conn = self.conn
        conn.execute("begin immediate")  # may fail (busy, disk full): then no flag is left set
        self._in_batch = True
        try:
            yield
        except BaseException:
            self._in_batch = False
            if conn.in_transaction:
                conn.execute("rollback")
            raise
        try:
            conn.execute("commit")
        except BaseException:
            if conn.in_transaction:
                conn.execute("rollback")
            raise
        finally:
            self._in_batch = False

    @contextmanager
    def rolled_back(self) -> Iterator[None]:
        """Everything inside is one transaction that is rolled back (a dry run)."""
        self.conn.execute("begin immediate")
        self._in_batch = True
        try:
            yield
        finally:
            self._in_batch = False
            if self.conn.in_transaction:
                self.conn.execute("rollback")

    @contextmanager
    def indexing_lock(self, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """One indexing process per catalog at a time; another one waits here.

        An OS lock on ``<catalog>.lock``: it goes with the process, so a killed run never
        leaves it held. Where no lock file can be made (a read-only folder) runs go unlocked.
        """
        import fcntl

        try:
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- roots --------------------------------------------------------------------------------

    def roots(self) -> list[str]:
        return [r[0] for r in self.conn.execute("select path from roots order by path").fetchall()]

    def root_for(self, path: Path) -> tuple[int, str, str]:
        """The root holding ``path`` (created if none does) and the path relative to it.

        A new root that contains existing roots absorbs them: their photos are
        re-homed under it so each file has exactly one row.
        """
        path = Path(os.path.abspath(path))
        found = self.find_root(path)
        if found is not None:
            return found
        with self.batch():
            cur = self.conn.execute("insert into roots (path) values (?)", [str(path)])
            new_id = cur.lastrowid
            for old_id, old in self.conn.execute(
                "select id, path from roots where id != ?", [new_id]
            ).fetchall():
                if path in Path(old).parents:
                    prefix = Path(old).relative_to(path).as_posix() + "/"
                    self.conn.execute(
                        "update photos set root_id = ?, relpath = ? || relpath where root_id = ?",
                        [new_id, prefix, old_id],
                    )
                    self.conn.execute("delete from roots where id = ?", [old_id])
        return int(new_id), str(path), ""

    def find_root(self, path: Path) -> tuple[int, str, str] | None:
        """The root holding ``path`` and the path relative to it, or None (nothing is created)."""
        path = Path(os.path.abspath(path))
        for root_id, root in self.conn.execute("select id, path from roots").fetchall():
            if path == Path(root):
                return root_id, root, ""
            if Path(root) in path.parents:
                return root_id, root, path.relative_to(root).as_posix()
        return None

    def place_file(self, path: Path) -> tuple[int, str, str]:
        """(root id, root, relpath) of a file: the root holding it, or its folder as a new root."""
        path = Path(os.path.abspath(path))
        root_id, root, _prefix = self.root_for(path.parent)
        return root_id, root, path.relative_to(root).as_posix()

    def relocate(self, old: Path, new: Path) -> int:
        """Point a root at its new place (the library moved); returns photos re-pointed."""
        old_s, new_s = os.path.abspath(old), os.path.abspath(new)
        row = self.conn.execute("select id from roots where path = ?", [old_s]).fetchone()
        if row is None:
            raise CatalogError(f"{old_s} is not a library root; roots: {', '.join(self.roots())}")
        old_p, new_p = Path(old_s), Path(new_s)
        if new_p == old_p or old_p in new_p.parents or new_p in old_p.parents:
            raise CatalogError(f"cannot relocate {old_s} to {new_s}: one is inside the other")
        clash = self.find_root(new_p)
        if clash is not None or any(new_p in Path(r).parents for r in self.roots()):
            raise CatalogError(f"cannot relocate {old_s} to {new_s}: it is (or holds, or is "
                               "inside) another library root")  # fmt: skip
        with self.batch():
            self.conn.execute("update roots set path = ? where id = ?", [new_s, row[0]])
        return int(
            self.conn.execute("select count(*) from photos where root_id = ?", [row[0]]).fetchone()[
                0
            ]
        )

    # -- photos -------------------------------------------------------------------------------

    _PHOTO_COLUMNS = (
        "p.id, r.path, p.relpath, p.size, p.mtime_ns, p.hash, p.status, p.error, "
        "p.width, p.height, p.taken_at, p.written_mode, p.written_target, p.written_size, "
        "p.written_mtime_ns"
    )

    def _photos(self, where: str, params: Sequence[object]) -> list[Photo]:
        sql = (
            f"select {self._PHOTO_COLUMNS} from photos p join roots r on r.id = p.root_id "
            f"where {where}"
        )
        return [Photo(*row) for row in self.conn.execute(sql, list(params)).fetchall()]

    def photos_under(self, root_id: int, prefix: str) -> dict[str, Photo]:
        """Rows below ``prefix`` of a root (all of it for ""), keyed by relpath."""
        if prefix:
            like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            rows = self._photos(
                "p.root_id = ? and (p.relpath = ? or p.relpath like ? escape '\\')",
                [root_id, prefix, like],
            )
        else:
            rows = self._photos("p.root_id = ?", [root_id])
        return {row.relpath: row for row in rows}

    def photo_at(self, path: Path) -> Photo | None:
        path = Path(os.path.abspath(path))
        for root_id, root in self.conn.execute("select id, path from roots").fetchall():
            if Path(root) in path.parents:
                found = self._photos(
                    "p.root_id = ? and p.relpath = ?",
                    [root_id, path.relative_to(root).as_posix()],
                )
                return found[0] if found else None
        return None

    def photos_by_id(self, ids: Iterable[int]) -> dict[int, Photo]:
        ids = list(ids)
        found: dict[int, Photo] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for photo in self._photos(f"p.id in ({marks})", chunk):
                found[photo.id] = photo
        return found

    def with_hash(self, content_hash: str, model: str) -> list[Photo]:
        """Photos with these exact bytes that have vectors for ``model`` (move/copy sources)."""
        return self._photos(
            "p.hash = ? and p.status != 'error' and exists "
            "(select 1 from vectors v where v.photo_id = p.id and v.model = ?)",
            [content_hash, model],
        )

    def has_vectors(self, photo_id: int, model: str) -> bool:
        return (
            self.conn.execute(
                "select 1 from vectors where photo_id = ? and model = ?", [photo_id, model]
            ).fetchone()
            is not None
        )

    def ids_with_vectors(self, model: str) -> set[int]:
        return {
            r[0] for r in self.conn.execute("select photo_id from vectors where model = ?", [model])
        }

    def upsert_photo(
        self,
        root_id: int,
        relpath: str,
        *,
        size: int,
        mtime_ns: int,
        content_hash: str | None,
        status: str = OK,
        error: str | None = None,
        width: int | None = None,
        height: int | None = None,
        taken_at: str | None = None,
    ) -> int:
        self.conn.execute(
            """
            insert into photos (root_id, relpath, size, mtime_ns, hash, status, error,
                                width, height, taken_at, indexed_at)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            on conflict (root_id, relpath) do update set
                size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash,
                status = excluded.status, error = excluded.error,
                width = coalesce(excluded.width, width), height = coalesce(excluded.height, height),
                taken_at = coalesce(excluded.taken_at, taken_at), indexed_at = excluded.indexed_at
            """,
            [root_id, relpath, size, mtime_ns, content_hash, status, error,
             width, height, taken_at, time.time()],
        )  # fmt: skip
        row = self.conn.execute(
            "select id from photos where root_id = ? and relpath = ?", [root_id, relpath]
        ).fetchone()
        return int(row[0])

    def update_file_state(
        self, photo_id: int, *, size: int, mtime_ns: int, content_hash: str
    ) -> None:
        """After phototag itself rewrote a file: remember its new state so it is not re-indexed."""
        self.conn.execute(
            "update photos set size = ?, mtime_ns = ?, hash = ? where id = ?",
            [size, mtime_ns, content_hash, photo_id],
        )

    def move(self, photo_id: int, root_id: int, relpath: str, size: int, mtime_ns: int) -> None:
        """A file moved or was renamed: keep its row (vectors, tags), change where it is."""
        self.conn.execute(
            "delete from photos where root_id = ? and relpath = ? and id != ?",
            [root_id, relpath, photo_id],
        )
        self.conn.execute(
            "update photos set root_id = ?, relpath = ?, size = ?, mtime_ns = ?, status = 'ok', "
            "error = null where id = ?",
            [root_id, relpath, size, mtime_ns, photo_id],
        )

    def copy_vectors_and_tags(self, source_id: int, target_id: int) -> None:
        """A copy of a known photo: reuse its vectors and machine tags."""
        self.conn.execute("delete from vectors where photo_id = ?", [target_id])
        seq = self._next_seq()
        self.conn.execute(
            "insert into vectors (photo_id, model, seq, visual, semantic) "
            "select ?, model, ? , visual, semantic from vectors where photo_id = ?",
            [target_id, seq, source_id],
        )
        self.conn.execute("delete from objects where photo_id = ?", [target_id])
        self.conn.execute(
            "insert into objects (photo_id, model, label, score, x1, y1, x2, y2) "
            "select ?, model, label, score, x1, y1, x2, y2 from objects where photo_id = ?",
            [target_id, source_id],
        )
        self.conn.execute(
            "delete from tags where photo_id = ? and source = ?", [target_id, MACHINE]
        )
        self.conn.execute("update photos set written_mode = null where id = ?", [target_id])
        self.conn.execute(
            "insert into tags (photo_id, tag, score, source, model, hierarchy) "
            "select ?, tag, score, source, model, hierarchy from tags "
            "where photo_id = ? and source = ? order by rowid",
            [target_id, source_id, MACHINE],
        )

    def mark_missing(self, photo_ids: Iterable[int]) -> int:
        ids = list(photo_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            self.conn.execute(
                f"update photos set status = 'missing', missing_at = ? where id in ({marks})",
                [time.time(), *chunk],
            )
        return len(ids)

    def purge_missing(self, *, older_than_days: float = 0.0) -> int:
        """Forget tombstones for good (their vectors and tags go with them)."""
        cutoff = time.time() - older_than_days * 86400
        with self.batch():
            return self.conn.execute(
                "delete from photos where status = 'missing' and coalesce(missing_at, 0) <= ?",
                [cutoff],
            ).rowcount

    def known_hashes(self, model: str) -> set[str]:
        """Content hashes that already have vectors for ``model`` (moves and copies)."""
        rows = self.conn.execute(
            "select distinct p.hash from photos p join vectors v on v.photo_id = p.id "
            "where v.model = ? and p.hash is not null",
            [model],
        )
        return {r[0] for r in rows}

    # -- write state --------------------------------------------------------------------------

    def mark_written(
        self, photo_id: int, mode: str, target: str, size: int | None, mtime_ns: int | None
    ) -> None:
        """The file (or sidecar ``target``, a name beside the photo; "" for the photo itself)
        now holds the catalog's machine tags, verified; its size and mtime are these."""
        self.conn.execute(
            "update photos set written_mode = ?, written_target = ?, written_size = ?, "
            "written_mtime_ns = ? where id = ?",
            [mode, target, size, mtime_ns, photo_id],
        )

    def mark_unwritten(self, photo_id: int) -> None:
        self.conn.execute("update photos set written_mode = null where id = ?", [photo_id])

    def machine_tags(self, photo_id: int) -> list[Tag]:
        return [t for t, src in self.tags_of([photo_id])[photo_id] if src == MACHINE]

    # -- rejected tags ------------------------------------------------------------------------

    def reject_tags(self, photo_id: int, tags: Iterable[str]) -> None:
        """The user removed these machine tags: they are dropped and never written again."""
        tags = [t for t in tags if t]
        if not tags:
            return
        now = time.time()
        self.conn.executemany(
            "insert or ignore into rejected_tags (photo_id, tag, at) values (?, ?, ?)",
            [(photo_id, t, now) for t in tags],
        )
        self.conn.executemany(
            "delete from tags where photo_id = ? and source = ? and tag = ? collate nocase",
            [(photo_id, MACHINE, t) for t in tags],
        )

    def rejected_tags(self, photo_ids: Iterable[int]) -> dict[int, set[str]]:
        ids = list(photo_ids)
        found: dict[int, set[str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, tag in self.conn.execute(
                f"select photo_id, tag from rejected_tags where photo_id in ({marks})", chunk
            ):
                found.setdefault(pid, set()).add(tag)
        return found

    # -- runs and their journal (undo) --------------------------------------------------------

    def start_run(self, command: str, mode: str | None) -> int:
        cur = self.conn.execute(
            "insert into runs (command, mode, started_at) values (?, ?, ?)",
            [command, mode, time.time()],
        )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int) -> None:
        """A run that changed no file leaves no trace in ``runs``."""
        with self.batch():
            used = self.conn.execute(
                "select 1 from journal where run_id = ? limit 1", [run_id]
            ).fetchone()
            if used is None:
                self.conn.execute("delete from runs where id = ?", [run_id])
            else:
                self.conn.execute(
                    "update runs set finished_at = ? where id = ?", [time.time(), run_id]
                )

    def journal(
        self, run_id: int, photo_id: int | None, path: Path, target: Path,
        before: dict[str, Any], after: dict[str, Any],
    ) -> None:  # fmt: skip
        self.conn.execute(
            "insert into journal (run_id, photo_id, path, target, before, after) "
            "values (?, ?, ?, ?, ?, ?)",
            [run_id, photo_id, str(path), str(target), json.dumps(before, ensure_ascii=False),
             json.dumps(after, ensure_ascii=False)],
        )  # fmt: skip

    def runs(self, limit: int = 20) -> list[Run]:
        rows = self.conn.execute(
            "select r.id, r.command, r.mode, r.started_at, r.finished_at, "
            "(select count(*) from journal j where j.run_id = r.id), r.undone_by "
            "from runs r order by r.id desc limit ?",
            [limit],
        ).fetchall()
        return [Run(*row) for row in rows]

    def run(self, run_id: int | None) -> Run | None:
        """A run by id; None: the latest that is not undone (and is not itself an undo)."""
        where = "r.id = ?" if run_id is not None else (
            "r.undone_by is null and r.command != 'undo'"
        )  # fmt: skip
        row = self.conn.execute(
            "select r.id, r.command, r.mode, r.started_at, r.finished_at, "
            "(select count(*) from journal j where j.run_id = r.id), r.undone_by "
            f"from runs r where {where} order by r.id desc limit 1",
            [run_id] if run_id is not None else [],
        ).fetchone()
        return None if row is None else Run(*row)

    def journal_of(self, run_id: int) -> list[JournalEntry]:
        rows = self.conn.execute(
            "select id, run_id, photo_id, path, target, before, after from journal "
            "where run_id = ? order by id desc",
            [run_id],
        ).fetchall()
        return [
            JournalEntry(i, r, p, Path(path), Path(target), json.loads(b), json.loads(a))
            for i, r, p, path, target, b, a in rows
        ]

    def mark_undone(self, run_id: int, by: int) -> None:
        self.conn.execute("update runs set undone_by = ? where id = ?", [by, run_id])

    # -- facts (date, camera, GPS) and filters ------------------------------------------------

    def set_facts(
        self, photo_id: int, *, taken_at: str | None, camera: str | None, has_gps: bool,
        mtime_ns: int,
    ) -> None:  # fmt: skip
        """Store what a photo's header said. Its date is the EXIF date, else the date it
        already has, else the file's mtime (local time, like EXIF dates)."""
        self.conn.execute(
            f"update photos set photo_date = coalesce(?, photo_date, {_LOCAL_MTIME}), "
            "camera = ?, has_gps = ? where id = ?",
            [taken_at, mtime_ns, camera, int(has_gps), photo_id],
        )

    def copy_facts(self, source_id: int, target_id: int) -> None:
        """A copy of a known photo has the same header: the same date, camera and GPS."""
        self.conn.execute(
            "update photos set (photo_date, camera, has_gps) = "
            "(select photo_date, camera, has_gps from photos where id = ?) where id = ?",
            [source_id, target_id],
        )

    def ids_without_facts(self) -> set[int]:
        """Present photos indexed before the catalog kept camera and GPS."""
        rows = self.conn.execute("select id from photos where status = 'ok' and has_gps is null")
        return {int(r[0]) for r in rows}

    def facts_of(self, photo_ids: Iterable[int]) -> dict[int, PhotoFacts]:
        ids = list(photo_ids)
        found: dict[int, PhotoFacts] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, date, camera, gps in self.conn.execute(
                f"select id, photo_date, camera, has_gps from photos where id in ({marks})", chunk
            ):
                found[pid] = PhotoFacts(date, camera, None if gps is None else bool(gps))
        return found

    def select_ids(
        self,
        *,
        places: Sequence[tuple[int, str]] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        tag_groups: Sequence[Iterable[str]] = (),
    ) -> set[int]:
        """Present photos passing every filter given: under one of ``places`` ((root id,
        relpath prefix), "" for the whole root), dated ``date_from <= date < date_to`` (ISO
        text), and carrying, for each group of ``tag_groups``, at least one of its words
        (any source, case-insensitive)."""
        where, params = ["p.status = 'ok'"], []  # type: ignore[var-annotated]
        if places is not None:
            if not places:
                return set()
            alternatives = []
            for root_id, prefix in places:
                if prefix:
                    like = _like_escape(prefix) + "/%"
                    alternatives.append(
                        "(p.root_id = ? and (p.relpath = ? or p.relpath like ? escape '\\'))"
                    )
                    params += [root_id, prefix, like]
                else:
                    alternatives.append("p.root_id = ?")
                    params.append(root_id)
            where.append("(" + " or ".join(alternatives) + ")")
        if date_from is not None:
            where.append("p.photo_date >= ?")
            params.append(date_from)
        if date_to is not None:
            where.append("p.photo_date < ?")
            params.append(date_to)
        for group in tag_groups:
            words = sorted({w.lower() for w in group})
            marks = ",".join("?" * len(words))
            where.append(
                f"exists (select 1 from tags t where t.photo_id = p.id "
                f"and t.tag collate nocase in ({marks}))"
            )
            params += words
        sql = f"select p.id from photos p where {' and '.join(where)}"
        return {int(r[0]) for r in self.conn.execute(sql, params)}

    def hash_groups(self, ids: Iterable[int] | None = None) -> list[list[int]]:
        """Present photos sharing their exact bytes: lists of ids (two or more), by hash."""
        rows = self.conn.execute(
            "select hash, id from photos where status = 'ok' and hash in "
            "(select hash from photos where status = 'ok' and hash is not null "
            "group by hash having count(*) > 1) order by hash, id"
        ).fetchall()
        keep = None if ids is None else set(ids)
        groups: dict[str, list[int]] = {}
        for content_hash, pid in rows:
            if keep is None or pid in keep:
                groups.setdefault(content_hash, []).append(int(pid))
        return [g for g in groups.values() if len(g) > 1]

    # -- tags ---------------------------------------------------------------------------------

    def set_tags(self, photo_id: int, tags: Sequence[Tag], *, source: str, model: str = "") -> None:
        """Replace one source's tags: a re-run replaces machine tags, never the user's.

        New machine tags are not in the file yet: the photo's write state is reset, so the
        next run with a writer (or this one) writes them.
        """
        self.conn.execute("delete from tags where photo_id = ? and source = ?", [photo_id, source])
        if source == MACHINE:
            self.conn.execute("update photos set written_mode = null where id = ?", [photo_id])
        self.conn.executemany(
            "insert or replace into tags (photo_id, tag, score, source, model, hierarchy) "
            "values (?, ?, ?, ?, ?, ?)",
            [(photo_id, t.tag, t.score, source, model, t.hierarchy) for t in tags],
        )

    def set_objects(self, photo_id: int, model: str, objects: Sequence[Detection]) -> None:
        """Replace one model's detected objects of a photo."""
        self.conn.execute(
            "delete from objects where photo_id = ? and model = ?", [photo_id, model]
        )
        self.conn.executemany(
            "insert into objects (photo_id, model, label, score, x1, y1, x2, y2) "
            "values (?, ?, ?, ?, ?, ?, ?, ?)",
            [(photo_id, model, o.label, o.score, *o.box) for o in objects],
        )

    def tags_of(self, photo_ids: Iterable[int]) -> dict[int, list[tuple[Tag, str]]]:
        """Tags per photo as (Tag, source), user tags first, then by score."""
        ids = list(photo_ids)
        found: dict[int, list[tuple[Tag, str]]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, tag, score, source, hierarchy in self.conn.execute(
                f"select photo_id, tag, score, source, hierarchy from tags "
                f"where photo_id in ({marks}) order by source = 'machine', rowid",
                chunk,
            ):
                found[pid].append(
                    (Tag(tag, score if score is not None else 1.0, hierarchy), source)
                )
        return found

    def photos_tagged(
        self, words: Iterable[str], *, among: Iterable[int] | None = None
    ) -> dict[int, float]:
        """Present photos carrying any of ``words`` (case-insensitive): id -> best score;
        only those ``among`` these photos, if given (a query's candidates: a word tags a
        fifth of a million photos, the query scores a few hundred)."""
        words = sorted({w.lower() for w in words})
        if not words:
            return {}
        marks = ",".join("?" * len(words))
        sql = (
            f"select t.photo_id, max(coalesce(t.score, 1.0)) from tags t "
            f"join photos p on p.id = t.photo_id "  # "collate nocase" uses the tags_tag index
            f"where t.tag collate nocase in ({marks}) and p.status = 'ok'"
        )
        if among is None:
            rows = self.conn.execute(f"{sql} group by t.photo_id", words)
            return {int(pid): float(score) for pid, score in rows}
        ids = sorted(set(among))
        found: dict[int, float] = {}
        # "+t.tag": look the candidates up by photo id, never scan every row of the words
        sql = sql.replace("where t.tag collate", "where +t.tag collate")
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.conn.execute(
                f"{sql} and t.photo_id in ({','.join('?' * len(chunk))}) group by t.photo_id",
                [*words, *chunk],
            )
            found.update((int(pid), float(score)) for pid, score in rows)
        return found

    def top_tagged(self, words: Iterable[str], limit: int) -> list[int]:
        """The ``limit`` present photos carrying any of ``words`` with the best scores
        (ties: lowest id first). Each word's rows come in score order from the
        ``tags_tag_score`` index, so only the first ``limit`` photos of each are read."""
        best: dict[int, float] = {}
        for word in sorted({w.lower() for w in words}):
            rows = self.conn.execute(
                "select t.photo_id, coalesce(t.score, 1.0) s from tags t "
                "indexed by tags_tag_score join photos p on p.id = t.photo_id "
                "where t.tag = ? collate nocase and p.status = 'ok' "
                "order by coalesce(t.score, 1.0) desc, t.photo_id",
                [word],
            )
            seen: set[int] = set()  # a photo may carry the word twice (machine and user)
            for pid, score in rows:
                if len(seen) >= limit:
                    break
                seen.add(pid)
                if score > best.get(pid, -1.0):
                    best[pid] = float(score)
        return sorted(best, key=lambda pid: (-best[pid], pid))[: max(limit, 0)]

    def data_version(self) -> tuple[int, int]:
        """Changes whenever the catalog does (another process's commit, or one of ours)."""
        row = self.conn.execute("pragma data_version").fetchone()
        return int(row[0]), self.conn.total_changes

    def tag_counts(self, limit: int | None = 50) -> list[tuple[str, int]]:
        """Tags with the number of present photos carrying them (any source), most first."""
        return [
            (tag, count)
            for tag, count in self.conn.execute(
                "select t.tag, count(distinct t.photo_id) c from tags t "
                "join photos p on p.id = t.photo_id where p.status = 'ok' "
                "group by lower(t.tag) order by c desc, lower(t.tag) limit ?",
                [-1 if limit is None else limit],
            )
        ]

    # -- corrections (rejected tags) ----------------------------------------------------------

    def rejected_keys(self, photo_id: int) -> set[str]:
        """The tags the user rejected for this photo, in their comparison form (``tag_key``)."""
        rows = self.conn.execute("select tag from rejected_tags where photo_id = ?", [photo_id])
        return {tag_key(r[0]) for r in rows}

    def record_rejections(
        self, photo_id: int, *, reject: Iterable[str] = (), allow: Iterable[str] = ()
    ) -> None:
        """Remember tags rejected for a photo; ``allow`` forgets a rejection (added back)."""
        now = time.time()
        self.conn.executemany(
            "insert or replace into rejected_tags (photo_id, tag, at) values (?, ?, ?)",
            [(photo_id, " ".join(t.split()), now) for t in reject if tag_key(t)],
        )
        self.conn.executemany(
            "delete from rejected_tags where photo_id = ? and tag = ? collate nocase",
            [(photo_id, " ".join(t.split())) for t in allow],
        )

    # -- detected objects ---------------------------------------------------------------------

    def objects_of(self, photo_id: int, model: str | None = None) -> list[Detection]:
        """Boxes detected in a photo (by ``model``, or by any), best first."""
        from phototag.detection import Detection

        sql = "select label, score, x1, y1, x2, y2 from objects where photo_id = ?"
        params: list[object] = [photo_id]
        if model is not None:
            sql += " and model = ?"
            params.append(model)
        rows = self.conn.execute(sql + " order by score desc", params).fetchall()
        return [Detection(label, float(score), tuple(box)) for label, score, *box in rows]

    # -- browsing -----------------------------------------------------------------------------

    def folders(self) -> list[tuple[str, int]]:
        """Every folder holding present photos directly, with their count, by path."""
        rows = self.conn.execute(
            "select r.path, rtrim(p.relpath, replace(p.relpath, '/', '')) d, count(*) "
            "from photos p join roots r on r.id = p.root_id where p.status = 'ok' "
            "group by p.root_id, d"
        ).fetchall()
        found = [
            (os.path.join(root, folder.rstrip("/")).rstrip("/"), n) for root, folder, n in rows
        ]
        return sorted(found)

    def photos_in_folder(
        self, folder: Path, *, offset: int = 0, limit: int = 60
    ) -> tuple[list[Photo], int]:
        """A page of the present photos directly in ``folder`` (by name) and how many it has."""
        found = self.find_root(Path(folder))
        if found is None:
            return [], 0
        root_id, _root, prefix = found
        low = prefix + "/" if prefix else ""
        # a range on (root_id, relpath) uses the unique index; '0' sorts right after '/'
        where = "p.root_id = ? and p.status = 'ok' and instr(substr(p.relpath, ?), '/') = 0"
        params: list[object] = [root_id, len(low) + 1]
        if low:
            where += " and p.relpath >= ? and p.relpath < ?"
            params += [low, prefix + "0"]
        total = self.conn.execute(f"select count(*) from photos p where {where}", params)
        count = int(total.fetchone()[0])
        page = self._photos(
            f"{where} order by p.relpath limit ? offset ?", [*params, limit, offset]
        )
        return page, count

    def photos_by_month(self) -> list[tuple[str, list[int]]]:
        """Present photos' ids per ``YYYY-MM`` (date taken, else file date), newest month
        first, by date within a month: one pass, for a caller to page through and cache."""
        rows = self.conn.execute(
            "select id, coalesce(taken_at, strftime('%Y-%m-%dT%H:%M:%S', mtime_ns / 1000000000, "
            "'unixepoch')) d from photos where status = 'ok' order by d, id"
        )
        months: dict[str, list[int]] = {}
        for photo_id, date in rows:
            months.setdefault((date or "undated")[:7], []).append(photo_id)
        return sorted(months.items(), reverse=True)

    def photos_with_tag(
        self, tag: str, *, offset: int = 0, limit: int = 60
    ) -> tuple[list[Photo], int]:
        """Present photos carrying ``tag`` (any source, case-insensitive), best score first."""
        tagged = (  # "collate nocase" uses the tags_tag index
            "select photo_id, max(coalesce(score, 1.0)) s from tags "
            "where tag = ? collate nocase group by photo_id"
        )
        base = f"from ({tagged}) t join photos p on p.id = t.photo_id where p.status = 'ok'"
        count = int(self.conn.execute(f"select count(*) {base}", [tag]).fetchone()[0])
        ids = [
            r[0]
            for r in self.conn.execute(
                f"select p.id {base} order by t.s desc, p.id limit ? offset ?", [tag, limit, offset]
            )
        ]
        photos = self.photos_by_id(ids)
        return [photos[i] for i in ids if i in photos], count

    # -- status -------------------------------------------------------------------------------

    def stats(self, model: str) -> Stats:
        one = lambda sql, *p: int(self.conn.execute(sql, list(p)).fetchone()[0])  # noqa: E731
        return Stats(
            photos=one("select count(*) from photos where status = 'ok'"),
            tagged=one(
                "select count(distinct t.photo_id) from tags t join photos p on p.id = t.photo_id "
                "where p.status = 'ok' and t.source = 'machine' and t.model = ?",
                model,
            ),
            errors=one("select count(*) from photos where status = 'error'"),
            pending=one(
                "select count(*) from photos p where p.status = 'ok' and not exists "
                "(select 1 from vectors v where v.photo_id = p.id and v.model = ?)",
                model,
            ),
            missing=one("select count(*) from photos where status = 'missing'"),
            roots=self.roots(),
            unwritten=one(
                "select count(*) from photos p where p.status = 'ok' and p.written_mode is null "
                "and exists (select 1 from tags t where t.photo_id = p.id and t.source = 'machine')"
            ),
        )

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("select value from meta where key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("insert or replace into meta (key, value) values (?, ?)", [key, value])

    def integrity_ok(self) -> bool:
        return self.conn.execute("pragma integrity_check").fetchone()[0] == "ok"

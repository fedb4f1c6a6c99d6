"""The library facade: each CLI command makes one call here.

It wires the catalog, the model, the backend plugin, the tagger and the writer
together, opening each only when a command needs it (``find`` never loads
onnxruntime unless it must embed a photo).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag.catalog import MACHINE, USER, Catalog, default_catalog_path, tag_key
from phototag.config import Config
from phototag.errors import (
    InvalidKeyword,
    PhotoError,
    PhototagError,
    UnknownPhoto,
    UnreadableImage,
    WriteError,
)
from phototag.types import Tag

if TYPE_CHECKING:

    from phototag.backends import Backend
    from phototag.catalog import Run
    from phototag.detection import Detection
    from phototag.duplicates import Group
    from phototag.engines import Engine
    from phototag.events import Event, Summary
    from phototag.indexer import Indexer
    from phototag.models import ModelSpec
    from phototag.query import Filters, Query, QueryEngine
    from phototag.tagging import Tagger


#: more results than this are never useful, and would overflow the Annoy search
MAX_LIMIT = 100_000


@dataclass
class Hit:
    path: Path
    score: float
    tags: list[str] = field(default_factory=list)
    #: the catalog's photo id (not part of the CLI's JSON)
    id: int | None = None
    #: what made the score: matched tags, vector score, each term's part (``find``)
    why: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"path": str(self.path), "score": round(self.score, 6), "tags": self.tags}
        if self.why is not None:
            out["why"] = self.why
        return out


@dataclass
class PhotoTags:
    path: Path
    tags: list[Tag]
    source: str  # "catalog" or "computed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "tags": [{"tag": t.tag, "score": round(t.score, 6)} for t in self.tags],
        }


@dataclass
class PhotoTag:
    tag: str
    score: float
    source: str  # "machine" or "user"
    hierarchy: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "score": round(self.score, 6), "source": self.source}


@dataclass
class PhotoInfo:
    """One catalogued photo as ``phototag serve`` shows it."""

    id: int
    path: Path
    status: str
    error: str | None
    size: int
    width: int | None
    height: int | None
    taken_at: str | None
    tags: list[PhotoTag]
    objects: list[Detection] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "path": str(self.path), "status": self.status, "error": self.error,
            "size": self.size, "width": self.width, "height": self.height,
            "taken_at": self.taken_at, "tags": [t.as_dict() for t in self.tags],
            "objects": [o.as_dict() for o in self.objects],
            "rejected": self.rejected,
        }  # fmt: skip


#: the longest keyword the page accepts (IPTC holds 64 bytes; XMP takes longer ones)
MAX_KEYWORD_CHARS = 200


def _keywords(values: Sequence[str], what: str) -> list[str]:
    """Typed keywords, cleaned: single spaces, no empties, no duplicates (by tag_key)."""
    found: dict[str, str] = {}
    for value in values:
        if not isinstance(value, str):
            raise InvalidKeyword(f"{what}: keywords are text, not {type(value).__name__}")
        text = " ".join(value.split())
        if not text:
            continue
        if len(text) > MAX_KEYWORD_CHARS:
            raise InvalidKeyword(f"{what}: keyword longer than {MAX_KEYWORD_CHARS} characters")
        found.setdefault(tag_key(text), text)
    return list(found.values())


class Library:
    def __init__(
        self,
        catalog_path: Path | str | None = None,
        *,
        backend: str | None = None,
        model: str | None = None,
        config: Config | None = None,
        vocabulary: Path | str | None = None,
        verbose: int = 0,
    ) -> None:
        self.config = config or Config()
        self.verbose = verbose
        path = catalog_path or self.config.catalog or os.environ.get("PHOTOTAG_CATALOG")
        self.catalog_path = Path(path).expanduser() if path else default_catalog_path()
        self.backend_name = backend or self.config.backend
        self.model_name = model or self.config.model
        vocab = vocabulary or self.config.vocabulary
        self.vocabulary = Path(vocab).expanduser() if vocab else None

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.catalog_path)

    @cached_property
    def model(self) -> ModelSpec:
        from phototag.models import load_model

        return load_model(self.model_name)

    @cached_property
    def tagger(self) -> Tagger:
        from phototag.tagging import Tagger

        tagger = Tagger.from_model(self.model, vocabulary=self.vocabulary)
        tagger.file_tags_all = self.config.file_tags == "all"
        return tagger

    @cached_property
    def backend(self) -> Backend:
        from phototag import plugins

        return plugins.get_backend(self.backend_name)(self.model)

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.close()

    # -- indexing -----------------------------------------------------------------------------

    @contextmanager
    def open_writer(self, mode: str, *, dry_run: bool = False) -> Iterator[Any]:
        """The metadata writer for ``mode`` ("embed", "sidecar"), or None for "none"."""
        if mode == "none":
            yield None
            return
        from phototag import plugins

        available = plugins.writers()
        if "exiftool" not in available:
            raise PhototagError("no metadata writer is loaded; run with --no-write")
        factory = available["exiftool"]
        with factory(mode, dry_run=dry_run, machine_parent=self.config.machine_parent) as writer:
            yield writer

    def _wait_notice(self, on_event: Callable[[Event], None] | None) -> Callable[[], None]:
        from phototag.events import Event

        def notice() -> None:
            if on_event is not None:
                on_event(Event("notice", self.catalog_path, reason="another phototag is "
                               "indexing this catalog; waiting for it to finish"))  # fmt: skip

        return notice

    @contextmanager
    def indexer(
        self,
        *,
        write: str = "none",
        dry_run: bool = False,
        on_event: Callable[[Event], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_plan: Callable[[int], None] | None = None,
        command: str = "index",
        engine: str = "local",
        address: str | None = None,
    ) -> Iterator[Indexer]:
        """An indexer whose embeddings come from ``engine`` (``address``: its cluster)."""
        from phototag.indexer import Indexer

        engine_cls = self.plugins_check(engine)
        with self.open_writer(write, dry_run=dry_run) as writer:
            runner = engine_cls(address=address)
            indexer = Indexer(
                self.catalog, self.model, self._indexing_backend, self.tagger, writer=writer,
                on_event=on_event, on_progress=on_progress, on_plan=on_plan, dry_run=dry_run,
                command=command, engine=runner, backend_name=self.backend_name,
            )  # fmt: skip
            try:
                yield indexer
            finally:
                indexer.finish()
                runner.close()

    def _indexing_backend(self) -> Backend:
        from phototag.engines import make_backend

        return make_backend(self.backend_name, self.model)

    def plugins_check(self, engine: str = "local") -> type[Engine]:
        """Fail before any work if the chosen backend or engine is not installed."""
        from phototag import plugins

        plugins.get_backend(self.backend_name)
        return plugins.get_engine(engine)

    def index(
        self,
        paths: Sequence[Path],
        *,
        write: str = "none",
        dry_run: bool = False,
        on_event: Callable[[Event], None] | None = None,
        on_plan: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        engine: str = "local",
        address: str | None = None,
    ) -> Summary:
        for path in paths:
            if not os.path.lexists(path):
                raise PhototagError(f"cannot index {path}: no such file or folder")
        with self.catalog.indexing_lock(on_wait=self._wait_notice(on_event)), self.indexer(
            write=write, dry_run=dry_run, on_event=on_event, on_progress=on_progress,
            on_plan=on_plan, engine=engine, address=address,
        ) as indexer:  # fmt: skip
            summary = indexer.index(paths)
        if not dry_run:
            self.refresh_search()
        return summary

    def refresh_search(self, *, min_tail: int = 0) -> None:
        from phototag.search import refresh

        refresh(self.catalog, self.model.name, min_tail=min_tail)

    # -- queries ------------------------------------------------------------------------------

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        photos = self.catalog.photos_by_id(pid for pid, _ in ranked)
        tags = self.catalog.tags_of(pid for pid, _ in ranked)
        return [
            Hit(photos[pid].path, score, [t.tag for t, _src in tags.get(pid, [])], id=pid)
            for pid, score in ranked
            if pid in photos
        ]

    def query_engine(self) -> QueryEngine:
        from phototag.query import QueryEngine
        from phototag.words import WordVectors

        return QueryEngine(
            self.catalog, self.model.name, lambda: self.tagger,
            words=lambda: WordVectors(self.tagger.words), visual_vector=self._visual_vector,
        )  # fmt: skip

    def find(self, query: Query | str, *, limit: int = 20) -> list[Hit]:
        """Photos best matching a query (see ``phototag.query``); a plain string is one word
        or phrase. Each hit says why: the tags that matched and the vector scores."""
        from dataclasses import replace

        from phototag.query import Query

        if isinstance(query, str):
            query = Query(words=(query,), limit=limit)
        if not 1 <= query.limit <= MAX_LIMIT:
            query = replace(query, limit=max(1, min(query.limit, MAX_LIMIT)))
        engine = self.query_engine()
        scored = engine.run(query)
        matching = engine.hyponyms(query)
        photos = self.catalog.photos_by_id(s.photo_id for s in scored)
        tags = self.catalog.tags_of(s.photo_id for s in scored)
        hits = []
        for found in scored:
            names = [t.tag for t, _src in tags.get(found.photo_id, [])]
            why = {
                "tags": [t for t in names if t.lower() in matching],
                "vector": round(found.vector, 6),
                "terms": [term.as_dict() for term in found.terms],
            }
            hits.append(
                Hit(photos[found.photo_id].path, found.score, names, id=found.photo_id, why=why)
            )
        return hits

    def similar(
        self, image: Path, *, limit: int = 20, filters: Filters | None = None
    ) -> list[Hit]:
        """Photos most like ``image`` (``find --like``); a catalogued photo's stored vector is
        reused, so only a photo from outside the catalog loads the model."""
        from phototag.query import Filters, Query

        return self.find(Query(like=(Path(image),), limit=limit, filters=filters or Filters()))

    def duplicates(
        self,
        paths: Sequence[Path] = (),
        *,
        threshold: float | None = None,
        filters: Filters | None = None,
    ) -> list[Group]:
        """Groups of the same photo under ``paths`` (everywhere if none): identical bytes, and
        near-identical by visual similarity; best photo first. Nothing is deleted."""
        from dataclasses import replace

        from phototag.duplicates import DEFAULT_THRESHOLD, find_groups
        from phototag.query import Filters

        filters = replace(filters or Filters(), folders=tuple(paths))
        keep = self.query_engine().allowed(filters)
        if threshold is None:  # --min-score means the same here: the least similarity
            threshold = DEFAULT_THRESHOLD if filters.min_score is None else filters.min_score
        return find_groups(self.catalog, self.model.name, keep=keep, threshold=threshold)

    def _current_row(self, image: Path) -> Any:
        """The catalog row of ``image`` if the file is unchanged since it was indexed."""
        from phototag.files import unchanged

        row = self.catalog.photo_at(image)
        if row is None or row.status != "ok":
            return None
        try:
            st = image.stat()
        except OSError:
            return None
        return row if unchanged(row, st) else None

    def _visual_vector(self, image: Path) -> tuple[Sequence[float], set[int]]:
        """A photo's visual vector: stored (read without numpy), else embedded now."""
        from phototag.vecmath import floats

        row = self._current_row(image)
        if row is not None:
            blob = self.catalog.vector_blob(row.id, self.model.name, "visual")
            if blob is not None:
                return floats(blob, "<f2"), {row.id}
        embedding, content_hash = self.embed_file(image)
        same = {
            p.id for p in self.catalog.with_hash(content_hash, self.model.name)
        }  # the query photo itself, wherever it is catalogued
        return embedding.visual.tolist(), same

    def embed_file(self, image: Path) -> tuple[Any, str]:
        from phototag.files import os_reason, read_file
        from phototag.imaging import content_hash, decode

        self.plugins_check()
        try:
            data, _st = read_file(image)
        except FileNotFoundError:
            raise UnreadableImage(image, "no such file") from None
        except OSError as exc:
            raise UnreadableImage(image, os_reason(exc)) from None
        decoded = decode(image, data, self.model)
        return (
            self.backend.embed_batch([decoded.views], [decoded.detector_image])[0],
            content_hash(data),
        )

    def tags(self, image: Path) -> PhotoTags:
        """Tags of one photo: from the catalog when current, else computed now."""
        image = Path(os.path.abspath(image))
        row = self._current_row(image)
        if row is not None and self.catalog.has_vectors(row.id, self.model.name):
            stored = self.catalog.tags_of([row.id])[row.id]
            machine = [t for t, src in stored if src == MACHINE]
            user = [t for t, src in stored if src != MACHINE]
            return PhotoTags(image, machine + user, "catalog")
        embedding, _hash = self.embed_file(image)
        return PhotoTags(image, self.tagger.tag(embedding), "computed")

    def status(self) -> dict[str, Any]:
        from phototag.search import SPACES, VectorIndex

        model = self.model
        stats = self.catalog.stats(model.name)
        indexes = {space: VectorIndex(self.catalog, model.name, space) for space in SPACES}
        return {
            "catalog": str(self.catalog_path),
            "model": model.name,
            "model_version": model.version,
            "backend": self.backend_name,
            "photos": stats.photos,
            "tagged": stats.tagged,
            "errors": stats.errors,
            "pending": stats.pending,
            "missing": stats.missing,
            "unwritten": stats.unwritten,
            "roots": stats.roots,
            "index_current": all(ix.is_current() for ix in indexes.values()),
            "index_tail": {space: ix.tail_size() for space, ix in indexes.items()},
        }

    def untag(
        self,
        paths: Sequence[Path],
        *,
        mode: str = "embed",
        dry_run: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> Summary:
        """Remove phototag's machine tags from files (or sidecars) and the catalog."""
        with self.catalog.indexing_lock(on_wait=self._wait_notice(on_event)), self.indexer(
            write=mode, dry_run=dry_run, on_event=on_event, command="untag"
        ) as indexer:  # fmt: skip
            return indexer.untag(paths)

    def undo(
        self,
        run: int | None = None,
        *,
        dry_run: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> tuple[Summary, int]:
        """Restore exactly what run ``run`` (default: the latest) changed in files."""
        found = self.catalog.run(run)
        mode = found.mode if found is not None and found.mode in ("embed", "sidecar") else "embed"
        with self.catalog.indexing_lock(on_wait=self._wait_notice(on_event)), self.indexer(
            write=mode, dry_run=dry_run, on_event=on_event, command="undo"
        ) as indexer:  # fmt: skip
            return indexer.undo(run)

    def runs(self, limit: int = 20) -> list[Run]:
        """Runs that changed files, newest first (``phototag undo RUN`` takes their id)."""
        return self.catalog.runs(limit)

    def reject(self, image: Path, tag: str) -> None:
        """The user does not want ``tag`` on ``image``: never again, and out of its file on
        the next run (the web page's reject uses this too)."""
        row = self.catalog.photo_at(Path(os.path.abspath(image)))
        if row is None:
            raise PhototagError(f"{image} is not in the catalog")
        with self.catalog.batch():
            self.catalog.reject_tags(row.id, [tag])
            self.catalog.mark_unwritten(row.id)

    # -- one photo: details and corrections (phototag serve) ------------------------------------

    def photo(self, photo_id: int) -> PhotoInfo:
        """A catalogued photo with its tags (user first, one entry per tag) and detected objects."""
        row = self.catalog.photos_by_id([photo_id]).get(photo_id)
        if row is None:
            raise UnknownPhoto(photo_id)
        seen: set[str] = set()
        tags = []
        for tag, source in self.catalog.tags_of([photo_id])[photo_id]:
            key = tag_key(tag.tag)
            if key not in seen:  # an accepted machine tag is listed once, as the user's
                seen.add(key)
                tags.append(PhotoTag(tag.tag, tag.score, source, tag.hierarchy))
        return PhotoInfo(
            row.id, row.path, row.status, row.error, row.size, row.width, row.height,
            row.taken_at, tags, self.catalog.objects_of(photo_id, self.model.name),
            sorted(self.catalog.rejected_keys(photo_id)),
        )  # fmt: skip

    def similar_to(self, photo_id: int, *, limit: int = 20) -> list[Hit]:
        """Photos most like a catalogued one, from its stored vector (none without one)."""
        from phototag.search import VectorIndex
        from phototag.vecmath import floats

        blob = self.catalog.vector_blob(photo_id, self.model.name, "visual")
        if blob is None:
            return []
        vector = floats(blob, "<f2")
        index = VectorIndex(self.catalog, self.model.name, "visual")
        return self._hits(index.query(vector, limit, exclude={photo_id}))

    def edit_keywords(
        self,
        photo_id: int,
        *,
        add: Sequence[str] = (),
        accept: Sequence[str] = (),
        reject: Sequence[str] = (),
        writer: Any = None,
    ) -> PhotoInfo:
        """Correct a photo's tags, in its file (through ``writer``, as ``index`` writes) and in
        the catalog: ``accept`` makes machine tags user keywords, ``reject`` removes tags and
        remembers never to write them again for this photo, ``add`` adds user keywords.
        Without a writer only the catalog changes."""
        from phototag.indexer import file_hash

        add, accept, reject = (
            _keywords(add, "add"),
            _keywords(accept, "accept"),
            _keywords(reject, "reject"),
        )
        info = self.photo(photo_id)
        if info.status != "ok":
            raise PhotoError(info.path, "the photo is not on disk any more; run phototag index")
        rejected = {tag_key(t) for t in reject}
        accepted = {tag_key(t) for t in accept} - rejected
        stored = self.catalog.tags_of([photo_id])[photo_id]
        machine = [t for t, src in stored if src == MACHINE]
        user = [t.tag for t, src in stored if src == USER]
        kept = [t for t in machine if tag_key(t.tag) not in accepted | rejected]
        new_user = [t.tag for t in machine if tag_key(t.tag) in accepted] + [
            t for t in add if tag_key(t) not in rejected
        ]
        if writer is not None:
            unchanged = self._current_row(info.path) is not None
            try:
                outcome = writer.edit(
                    info.path, self.tagger.writable(kept), model=self.model.name,
                    add=new_user, remove=reject,
                )  # fmt: skip
                user = writer.read_keywords(info.path)
            except WriteError as exc:
                raise WriteError(info.path, f"nothing changed: {exc.reason}") from None
        else:
            outcome, unchanged = None, False
            user = [u for u in user if tag_key(u) not in rejected] + new_user
        with self.catalog.batch():
            self.catalog.set_tags(photo_id, kept, source=MACHINE, model=self.model.name)
            self.catalog.set_tags(photo_id, [Tag(k, 1.0) for k in user], source=USER)
            self.catalog.record_rejections(photo_id, reject=reject, allow=new_user)
            # only a file that was current: else the next index run must see the user's change
            if unchanged and outcome.changed and outcome.target == info.path:
                new_hash, st = file_hash(info.path)
                self.catalog.update_file_state(
                    photo_id, size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=new_hash
                )
            if outcome is not None and outcome.changed:  # the file holds the catalog's tags
                in_place = outcome.target == info.path
                self.catalog.mark_written(
                    photo_id, "embed" if in_place else "sidecar",
                    "" if in_place else outcome.target.name, outcome.size, outcome.mtime_ns,
                )  # fmt: skip
        return self.photo(photo_id)

    def models(self) -> list[dict[str, Any]]:
        """Shipped and trained models, user models first (they hide a shipped one's name)."""
        from phototag.models import DEFAULT_MODEL, list_models, user_models_dir

        user_dir = user_models_dir().resolve()
        rows = []
        for spec in list_models():
            head = spec.manifest.get("semantic_head", {})
            rows.append(
                {
                    "name": spec.name,
                    "version": spec.version,
                    "kind": "trained" if spec.path.resolve().parent == user_dir else "shipped",
                    "default": spec.name == DEFAULT_MODEL,
                    "semantic_head": head.get("kind", "conse"),
                    "labels": list(head.get("labels", [])),
                    "path": str(spec.path),
                }
            )
        return rows

    def relocate(self, old: Path, new: Path) -> int:
        return self.catalog.relocate(old, new)

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

from phototag.catalog import MACHINE, Catalog, default_catalog_path
from phototag.config import Config
from phototag.errors import PhototagError, UnreadableImage
from phototag.types import Tag

if TYPE_CHECKING:
    import numpy as np

    from phototag.backends import Backend
    from phototag.catalog import Run
    from phototag.events import Event, Summary
    from phototag.indexer import Indexer
    from phototag.models import ModelSpec
    from phototag.tagging import Tagger


#: more results than this are never useful, and would overflow the Annoy search
MAX_LIMIT = 100_000


@dataclass
class Hit:
    path: Path
    score: float
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "score": round(self.score, 6), "tags": self.tags}


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

        return Tagger.from_model(self.model, vocabulary=self.vocabulary)

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
    ) -> Iterator[Indexer]:
        from phototag.indexer import Indexer

        self.plugins_check()
        with self.open_writer(write, dry_run=dry_run) as writer:
            indexer = Indexer(
                self.catalog, self.model, self._indexing_backend, self.tagger, writer=writer,
                on_event=on_event, on_progress=on_progress, on_plan=on_plan, dry_run=dry_run,
                command=command,
            )  # fmt: skip
            try:
                yield indexer
            finally:
                indexer.finish()

    def _indexing_backend(self) -> Backend:
        """For the indexer's workers: single-threaded inference per worker where the backend
        takes concurrent calls (no shared thread pool stalling on busy cores)."""
        from phototag import plugins

        cls = plugins.get_backend(self.backend_name)
        return cls(self.model, threads=1) if cls.concurrent else cls(self.model)

    def plugins_check(self) -> None:
        """Fail before any work if the chosen backend is not installed."""
        from phototag import plugins

        plugins.get_backend(self.backend_name)

    def index(
        self,
        paths: Sequence[Path],
        *,
        write: str = "none",
        dry_run: bool = False,
        on_event: Callable[[Event], None] | None = None,
        on_plan: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> Summary:
        for path in paths:
            if not os.path.lexists(path):
                raise PhototagError(f"cannot index {path}: no such file or folder")
        with self.catalog.indexing_lock(on_wait=self._wait_notice(on_event)), self.indexer(
            write=write, dry_run=dry_run, on_event=on_event, on_progress=on_progress,
            on_plan=on_plan,
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
            Hit(photos[pid].path, score, [t.tag for t, _src in tags.get(pid, [])])
            for pid, score in ranked
            if pid in photos
        ]

    def find(self, phrase: str, *, limit: int = 20) -> list[Hit]:
        """Photos nearest to a word or phrase, rewarding photos tagged with it or its hyponyms."""
        from phototag.search import VectorIndex
        from phototag.tagging import word_scores
        from phototag.words import WordVectors

        limit = max(1, min(limit, MAX_LIMIT))
        query = WordVectors(self.tagger.words).vector(phrase)
        tagged = self.catalog.photos_tagged(self.tagger.hyponyms(phrase) | {phrase.lower()})
        index = VectorIndex(self.catalog, self.model.name, "semantic")
        candidates = [pid for pid, _ in index.query(query, max(limit * 5, 50))]
        candidates += sorted(set(tagged) - set(candidates), key=lambda p: -tagged[p])[: limit * 5]
        if not candidates:
            return []
        ids, semantic = self.catalog.vectors_of(candidates, self.model.name, "semantic")
        scores = word_scores(query, semantic, [{"hit": tagged.get(i, 0.0)} for i in ids], {"hit"})
        ranked = sorted(zip(ids, scores.tolist(), strict=True), key=lambda item: -item[1])
        return self._hits(ranked[:limit])

    def similar(self, image: Path, *, limit: int = 20) -> list[Hit]:
        """Photos most like ``image``; a catalogued photo's stored vector is reused."""
        from phototag.search import VectorIndex

        limit = max(1, min(limit, MAX_LIMIT))
        vector, exclude = self._visual_vector(Path(image))
        ranked = VectorIndex(self.catalog, self.model.name, "visual").query(
            vector, limit, exclude=exclude
        )
        return self._hits(ranked)

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

    def _visual_vector(self, image: Path) -> tuple[np.ndarray, set[int]]:
        row = self._current_row(image)
        if row is not None:
            vector = self.catalog.vector_of(row.id, self.model.name, "visual")
            if vector is not None:
                return vector, {row.id}
        embedding, content_hash = self.embed_file(image)
        same = {
            p.id for p in self.catalog.with_hash(content_hash, self.model.name)
        }  # the query photo itself, wherever it is catalogued
        return embedding.visual, same

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
        return self.backend.embed_batch([decoded.views])[0], content_hash(data)

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

"""Engines: how the embeddings of an index run get computed.

The indexer (the driver) scans, keeps the catalog, chooses tags and writes metadata; an
engine only turns photo paths into file state + embeddings (or a reason why not). The
local engine runs a bounded decode -> inference pipeline on this machine's cores; other
engines (``ray``, or a third party's Dask or Spark) register through the same
``register_engines`` hook and may run that same pipeline elsewhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Any, ClassVar

from phototag.errors import PhotoError, UnknownEngine
from phototag.files import os_reason, read_file
from phototag.hookspecs import hookimpl
from phototag.imaging import Decoded, Facts, content_hash, decode

if TYPE_CHECKING:
    from phototag.backends import Backend
    from phototag.models import ModelSpec
    from phototag.types import Embedding


@dataclass
class Computed:
    """What an engine found for one photo: small and picklable (no pixels), so a remote
    worker can send it back. ``embedding`` None and no ``error``: the bytes are known."""

    size: int = 0
    mtime_ns: int = 0
    hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    facts: Facts = field(default_factory=Facts)
    embedding: Embedding | None = None
    error: str | None = None


#: one finished photo: its index in the paths given to ``Engine.compute``, and the result
Done = tuple[int, Computed]


@dataclass
class Work:
    """What every engine is given besides the paths."""

    model: ModelSpec
    backend: str  # the backend's plugin name, for engines that build it in another process
    known_hashes: set[str]  # bytes already embedded: hashed, never decoded
    batch_size: int = 16  # photos per inference call
    workers: int = 2  # decode -> inference loops side by side (per machine)
    #: builds the backend in this process (the local engine's; None: by name)
    backend_factory: Callable[[], Backend] | None = None


class Engine(ABC):
    """Computes embeddings for the photos an index run must embed."""

    name: ClassVar[str]

    def __init__(self, *, address: str | None = None) -> None:
        self.address = address  # where the cluster is, for engines that use one

    @abstractmethod
    def compute(self, paths: Sequence[Path], work: Work) -> Iterator[list[Done]]:
        """Yield every photo exactly once, in groups as they finish (each group is one
        catalog transaction in the driver); a photo that could not be done carries an
        ``error`` (a short lowercase reason), never an exception."""

    def close(self) -> None:  # noqa: B027 - most engines hold nothing
        """Release what the engine started (a local cluster, worker processes)."""


def make_backend(name: str, model: ModelSpec) -> Backend:
    """The backend as the indexer's workers want it: single-threaded inference per worker
    where the backend takes concurrent calls (no shared thread pool stalling on busy cores)."""
    from phototag import plugins

    cls = plugins.get_backend(name)
    return cls(model, threads=1) if cls.concurrent else cls(model)


def prepare(
    path: Path, known_hashes: set[str], model: ModelSpec
) -> tuple[Computed, Decoded | None]:
    """Read once, hash, and decode unless the bytes are known; every failure is a reason."""
    out = Computed()
    try:
        data, st = read_file(path)
        out.size, out.mtime_ns = st.st_size, st.st_mtime_ns
        out.hash = content_hash(data)
        if out.hash in known_hashes:
            return out, None
        decoded = decode(path, data, model)
    except PhotoError as exc:
        out.error = exc.reason
        return out, None
    except OSError as exc:
        reason = os_reason(exc)
        out.error = reason if reason in ("file vanished", "permission denied") else (
            f"cannot read file ({reason})"
        )  # fmt: skip
        return out, None
    out.width, out.height, out.taken_at = decoded.width, decoded.height, decoded.taken_at
    out.facts = decoded.facts
    return out, decoded


class LocalEngine(Engine):
    """This machine: ``workers`` threads each run decode -> one inference call per chunk.

    Memory stays bounded: at most ``2 x workers`` chunks of ``batch_size`` photos are in
    flight. The backend is created on first need (a run with nothing to decode never loads
    the model) and kept, so an engine that lives in a remote worker loads it once.
    """

    name = "local"

    def __init__(self, *, address: str | None = None) -> None:
        if address:
            raise UnknownEngine("engine local runs here: a cluster address needs --engine ray")
        super().__init__(address=address)
        self._backend: Backend | None = None
        self._backend_lock = Lock()
        self._embed_lock: Any = nullcontext()

    def backend(self, work: Work) -> Backend:
        with self._backend_lock:
            if self._backend is None:
                factory = work.backend_factory or (lambda: make_backend(work.backend, work.model))
                self._backend = factory()
                if not self._backend.concurrent:  # one inference call at a time
                    self._embed_lock = Lock()
        return self._backend

    def compute(self, paths: Sequence[Path], work: Work) -> Iterator[list[Done]]:
        step = max(1, work.batch_size)
        chunks = [range(i, min(i + step, len(paths))) for i in range(0, len(paths), step)]
        workers = max(1, work.workers)
        with ThreadPoolExecutor(workers, thread_name_prefix="phototag-embed") as pool:
            window: deque[Future[list[Done]]] = deque()
            pending = iter(chunks)

            def refill() -> None:
                while len(window) < 2 * workers:
                    chunk = next(pending, None)
                    if chunk is None:
                        return
                    window.append(pool.submit(self._chunk, [(i, paths[i]) for i in chunk], work))

            refill()
            while window:
                done = window.popleft().result()
                refill()
                yield done

    def _chunk(self, chunk: list[tuple[int, Path]], work: Work) -> list[Done]:
        """Runs on the pool: prepare every photo, then one inference call for those decoded."""
        prepared = [(i, *prepare(path, work.known_hashes, work.model)) for i, path in chunk]
        todo = [(c, d) for _i, c, d in prepared if d is not None]
        if todo:
            backend = self.backend(work)
            with self._embed_lock:
                found = backend.embed_batch(
                    [d.views for _c, d in todo], [d.detector_image for _c, d in todo]
                )
            for (c, _d), emb in zip(todo, found, strict=True):
                c.embedding = emb
        return [(i, c) for i, c, _d in prepared]


@hookimpl
def register_engines(register):  # type: ignore[no-untyped-def]
    register("local", LocalEngine)

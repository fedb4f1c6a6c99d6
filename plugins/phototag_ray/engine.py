"""Ray Data ``map_batches`` over an actor pool: each actor builds the backend once and runs
the local engine's bounded decode -> inference pipeline on its batches; results stream back
to the driver (the indexer), which commits them as they arrive.

Failures: an actor that dies is restarted and its batch retried once; a batch that fails
twice is dropped by Ray Data (``max_errored_blocks``) and its photos come back as skipped.
"""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag.engines import Computed, Done, Engine, LocalEngine, Work
from phototag.errors import PhototagError, UnknownEngine

if TYPE_CHECKING:
    from phototag.models import ModelSpec

#: CPUs per actor, and decode -> inference loops it runs (on a local instance: all of them)
ACTOR_CPUS = 2
#: tries per batch: the first, and one retry after the actor died
TRIES = 2
#: the cores of the local instance started without --ray-address
LOCAL_CPUS = 2
LOST = "not embedded: the ray worker died on its batch twice"


def import_ray() -> Any:
    """Ray, or the one-line way to get it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UnknownEngine("engine ray needs ray: pip install 'phototag[ray]'") from None
    return ray


class RayEngine(Engine):
    """Embeds on the Ray cluster at ``address``, or on a small local instance it starts."""

    name = "ray"

    def __init__(self, *, address: str | None = None) -> None:
        super().__init__(address=address)
        self._started = False
        import_ray()  # fail before any work if the extra is not installed

    def connect(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **quiet)
            else:
                ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, **quiet)
            self._started = True
        with warnings.catch_warnings():  # Ray's notices about its own renamed settings
            warnings.simplefilter("ignore")
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.max_errored_blocks = -1  # a batch that failed twice is dropped, not the run
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        _notices_to_stderr()
        return ray

    def compute(self, paths: Sequence[Path], work: Work) -> Iterator[list[Done]]:
        if not paths:
            return
        ray = self.connect()
        seen: set[int] = set()
        try:
            for batch in self._dataset(ray, paths, work).iter_batches(
                batch_size=None, batch_format="numpy"
            ):
                pairs = zip(batch["i"].tolist(), batch["result"], strict=True)
                done = [(i, pickle.loads(blob)) for i, blob in pairs if i not in seen]
                seen.update(i for i, _c in done)  # a retried batch never counts twice
                if done:
                    yield done
        except Exception as exc:  # the run itself failed: what arrived is committed already
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PhototagError(f"the ray engine stopped: {reason}") from None
        lost = [i for i in range(len(paths)) if i not in seen]
        if lost:
            yield [(i, Computed(error=LOST)) for i in lost]

    def _dataset(self, ray: Any, paths: Sequence[Path], work: Work) -> Any:
        """One block per batch (a batch that fails twice drops just its photos); an actor
        takes ``ACTOR_CPUS`` cores and runs that many decode -> inference loops."""
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        per_actor = min(ACTOR_CPUS, cpus)
        per_batch = max(1, work.batch_size) * per_actor  # one chunk per decode loop
        items = [{"i": i, "path": str(p)} for i, p in enumerate(paths)]
        ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / per_batch))
        # small constructor arguments (a restarted actor rebuilds from them): the model by
        # folder, the known hashes (maybe millions) once in the object store, by reference
        known = ray.put(work.known_hashes)
        with warnings.catch_warnings():  # the retry settings are extra kwargs in Ray 2.60
            warnings.simplefilter("ignore")
            return ds.map_batches(
                _Worker, batch_size=per_batch, batch_format="numpy", num_cpus=per_actor,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cpus // per_actor)),
                fn_constructor_kwargs={
                    "model": (work.model.name, work.model.version, str(work.model.path)),
                    "backend": work.backend, "known_hashes": [known],
                    "batch_size": work.batch_size, "workers": per_actor,
                },
                max_restarts=-1, max_task_retries=TRIES - 1,
            )  # fmt: skip

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class _Worker:
    """One actor: the backend loads once (first batch) and stays for every later batch."""

    def __init__(
        self, model: tuple[str, str, str], backend: str, known_hashes: list[Any],
        batch_size: int, workers: int,
    ) -> None:  # fmt: skip
        import ray

        self.engine = LocalEngine()
        known = ray.get(known_hashes[0])  # in a list: Ray leaves the reference unresolved
        self.work = Work(_local_model(*model), backend, known, batch_size, workers)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        paths = [Path(p) for p in batch["path"]]
        index, results = [], []
        for done in self.engine.compute(paths, self.work):
            for i, c in done:
                index.append(int(batch["i"][i]))
                results.append(pickle.dumps(c, protocol=pickle.HIGHEST_PROTOCOL))
        return {"i": np.array(index, dtype=np.int64), "result": np.array(results, dtype=object)}


def _local_model(name: str, version: str, folder: str) -> ModelSpec:
    """The driver's model as this node has it (phototag may be installed elsewhere here)."""
    from phototag.models import ModelSpec, load_model

    here = ModelSpec.from_dir(Path(folder)) if Path(folder).is_dir() else load_model(name)
    if here.version != version:
        raise PhototagError(f"model {name}: v{here.version} on this node, v{version} on the driver")
    return here


def _notices_to_stderr() -> None:
    """Ray prints the raylet's notices (a worker died...) on stdout, where ``--json`` puts
    its data: send them to stderr. Ray 2.60's private printer; left alone if it moved."""
    from ray._private import worker

    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "phototag", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.phototag = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr

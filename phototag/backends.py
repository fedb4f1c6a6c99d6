"""The contract an inference backend fulfils, and the code all backends share.

A backend only runs its graph on a batch of pixels (``run_batch``); batching,
averaging views, softmax, the semantic head and normalising live here so every
backend gives the same vectors for the same outputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from phototag.detection import class_evidence
from phototag.types import Embedding

if TYPE_CHECKING:
    from phototag.detection import Detection, Detector
    from phototag.models import ModelSpec


def cpu_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session the way phototag runs every graph (backbone, detector):
    ``threads`` intra-op threads that yield the cores when idle (the decoders need them),
    and no memory arena (it would keep the largest batch's activations for good)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Backend(ABC):
    """Embeds photos with one model; subclasses implement ``run_batch`` only."""

    name: ClassVar[str]
    #: photos per inference call; views of a photo always travel together
    batch_size: ClassVar[int] = 16
    #: images per ``run_batch`` call: small batches keep a CNN's activations in cache
    #: (EfficientNet-Lite0 on one core: 9.2 ms/image at 4, 13.7 ms/image at 16)
    run_batch_size: ClassVar[int] = 4
    #: True if ``run_batch`` may run in several threads at once (the indexer then gives each
    #: worker its own single-threaded inference instead of sharing one thread pool)
    concurrent: ClassVar[bool] = False

    def __init__(self, model: ModelSpec, *, threads: int | None = None) -> None:
        self.model = model
        self.threads = threads  # inference threads per call; None: the backend's default

    @abstractmethod
    def run_batch(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on ``pixels`` [N,3,H,W]: return ``features`` and ``logits``
        (and ``semantic`` when the graph has its own semantic head), one row per input."""

    @cached_property
    def detector(self) -> Detector | None:
        """The model's detector stage, in onnxruntime whichever backend this is."""
        spec = self.model.detector
        if spec is None:
            return None
        from phototag.detection import Detector

        return Detector(self.model, spec, threads=self.threads or 1)

    def embed_batch(
        self,
        views: Sequence[np.ndarray],
        images: Sequence[tuple[np.ndarray, tuple[int, int]] | None] | None = None,
    ) -> list[Embedding]:
        """Embed photos given as view stacks [V,3,H,W]; one inference call for all of them.
        ``images`` are the detector's inputs (``Decoded.detector_image``), one per photo."""
        if not views:
            return []
        counts = [v.shape[0] for v in views]
        pixels = np.ascontiguousarray(np.concatenate(views), dtype=np.float32)
        step = max(1, self.run_batch_size)
        parts = [self.run_batch(pixels[i : i + step]) for i in range(0, len(pixels), step)]
        out = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        starts = np.cumsum([0, *counts[:-1]])
        features = np.add.reduceat(out["features"], starts, axis=0) / np.array(counts)[:, None]
        probs = np.add.reduceat(softmax(out["logits"]), starts, axis=0) / np.array(counts)[:, None]
        objects = self._detect(images, len(views))
        evidence = None
        if self.model.detector is not None:
            classes = self.model.detector.classes
            evidence = np.stack([class_evidence(o, classes) for o in objects])
        if "semantic" in out:  # a trained model's graph has its own semantic head
            semantic = np.add.reduceat(l2_normalise(out["semantic"]), starts, axis=0)
            projected = self.model.project(features, evidence)
        else:
            semantic, projected = self.model.semantic(features, probs, evidence)
        visual = l2_normalise(features)
        semantic = l2_normalise(semantic)
        return [
            Embedding(
                visual=visual[i], semantic=semantic[i], probs=probs[i].astype(np.float32),
                objects=objects[i], projection=None if projected is None else projected[i],
            )  # fmt: skip
            for i in range(len(views))
        ]

    def _detect(self, images: Sequence[Any] | None, n: int) -> list[list[Detection]]:
        detector = self.detector
        if detector is None or images is None:
            return [[] for _ in range(n)]
        todo = [i for i, im in enumerate(images) if im is not None]
        found = detector.detect([images[i] for i in todo]) if todo else []
        out: list[list[Detection]] = [[] for _ in range(n)]
        for i, dets in zip(todo, found, strict=True):
            out[i] = dets
        return out

    def embed(self, views: Iterable[np.ndarray]) -> Iterator[Embedding]:
        """Embed a stream of photos in batches of ``batch_size``, preserving order."""
        it = iter(views)
        while chunk := list(islice(it, self.batch_size)):
            yield from self.embed_batch(chunk)

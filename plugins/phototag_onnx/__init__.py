"""The default backend: the shipped ONNX model on onnxruntime (CPU)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from phototag.backends import Backend, cpu_session
from phototag.hookspecs import hookimpl

if TYPE_CHECKING:
    from phototag.models import ModelSpec


class OnnxBackend(Backend):
    name = "onnx"
    concurrent = True  # onnxruntime sessions accept concurrent run() calls

    def __init__(self, model: ModelSpec, *, threads: int | None = None) -> None:
        super().__init__(model, threads=threads)
        self._threads = threads or int(os.environ.get("PHOTOTAG_THREADS", 0)) or os.cpu_count() or 1
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        """One onnxruntime session per backend; imported and created on first use."""
        with self._lock:
            if self._session is None:
                self._session = self._create_session()
        return self._session

    def _create_session(self) -> Any:
        self.model.verify()
        session = cpu_session(self.model.onnx_path, self._threads)
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()]
        return session

    def run_batch(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        results = self.session.run(self._outputs, {self._input: pixels})
        return dict(zip(self._outputs, results, strict=True))


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register("onnx", OnnxBackend)

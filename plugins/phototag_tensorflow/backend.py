"""The ``tensorflow`` backend: the same model as the onnx backend, run by TensorFlow/Keras.

The Keras graph is built from the model's ONNX file (see ``keras_model``), so both backends
read one set of weights. A trained model's ``semantic`` head (a MatMul + Add appended to the
graph by ``phototag train``) is read from the same file and applied here too, so a trained
model gives the same tags under either backend.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np

from phototag.backends import Backend

if TYPE_CHECKING:
    from phototag.models import ModelSpec


def import_tensorflow() -> Any:
    """Import TensorFlow quietly: its C++ start-up lines (oneDNN notices, absl warnings) go
    straight to file descriptor 2, before any Python logging setting can apply, so stderr
    is pointed at a temp file for the import and what it caught is shown only if the
    import fails. (``TF_ENABLE_ONEDNN_OPTS=0`` would also silence it, at half the speed.)"""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


class TensorflowBackend(Backend):
    name = "tensorflow"

    def __init__(self, model: ModelSpec, *, threads: int | None = None) -> None:
        super().__init__(model)
        self._threads = threads or int(os.environ.get("PHOTOTAG_THREADS", 0)) or os.cpu_count() or 1
        self._run: Any = None
        self._head: tuple[np.ndarray, np.ndarray] | None = None

    def _load(self) -> Any:
        """Build the Keras model on first use; one per backend instance."""
        if self._run is None:
            tf = import_tensorflow()
            from phototag_tensorflow.heads import read_semantic_head
            from phototag_tensorflow.keras_model import build_keras_model

            self.model.verify()
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self._threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # already initialised in this process: keep its setting
                pass
            keras_model = build_keras_model(self.model.onnx_path)
            self._head = read_semantic_head(self.model.onnx_path)
            size = self.model.input_size
            spec = tf.TensorSpec([None, 3, size, size], tf.float32)
            self._run = tf.function(
                lambda x: keras_model(x, training=False), input_signature=[spec]
            )
        return self._run

    def run_batch(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        out = self._load()(pixels)
        result = {"features": out["features"].numpy(), "logits": out["logits"].numpy()}
        if self._head is not None:
            weight, bias = self._head
            result["semantic"] = result["features"] @ weight + bias
        return result

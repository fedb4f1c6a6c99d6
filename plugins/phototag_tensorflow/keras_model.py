"""EfficientNet-Lite0 in Keras, with its weights read from the shipped ONNX graph.

The ONNX file is the one source of truth for the weights: nothing here stores a second
copy that could drift. The exporter already folded every BatchNorm into the conv before
it (each ONNX ``Conv`` carries a bias and no ``BatchNormalization`` node exists), so the
Keras convs take a bias and there is no BatchNorm layer to mirror.

What the graph decides, this module reads from it rather than assuming:

- the padding of each strided/depthwise conv: the PyTorch model pads explicitly
  ("static same padding", computed for a 224 input and exported as a ``Pad`` node whose
  amounts come from a small constant subgraph). Those amounts are folded here with numpy
  and mirrored with ``ZeroPadding2D`` + a ``valid`` conv, instead of trusting Keras
  ``same`` to pad the same sides;
- the clip range of the activations (ReLU6: EfficientNet-*Lite* drops swish);
- every kernel and bias, matched to the Keras layers in graph order with shape checks.

The block layout (repeats, kernel, stride, expansion, channels) is EfficientNet-Lite0's;
a graph whose convs do not line up with it is refused with a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phototag.errors import ModelError

#: (repeats, kernel, first stride, expansion, output channels) per stage of EfficientNet-Lite0
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass
class OnnxConv:
    """One conv of the ONNX graph as Keras needs it: weights, stride, groups, padding."""

    weight: np.ndarray  # [out, in/groups, kh, kw]
    bias: np.ndarray
    stride: int
    groups: int
    pads: tuple[int, int, int, int]  # top, bottom, left, right (from the Pad node before it)
    clip: tuple[float, float] | None  # the activation that follows, if any


@dataclass
class OnnxWeights:
    convs: list[OnnxConv]
    fc_weight: np.ndarray  # [classes, features]
    fc_bias: np.ndarray
    input_size: int


# ------------------------------------------------------------------ reading the graph


def _fold_constants(graph: Any) -> dict[str, np.ndarray]:
    """Evaluate the nodes that depend only on constants (the padding subgraphs) with numpy.

    Only the handful of ops the exporter uses there are understood; anything else is left
    unevaluated, and a ``Pad`` that needs it is reported as unsupported.
    """
    from onnx import numpy_helper

    values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if any(name not in values for name in node.input if name):
            continue
        ins = [values[name] for name in node.input if name]
        attrs = {a.name: a for a in node.attribute}
        op = node.op_type
        if op == "Constant":
            out = numpy_helper.to_array(attrs["value"].t)
        elif op == "ConstantOfShape":
            fill = numpy_helper.to_array(attrs["value"].t) if "value" in attrs else np.zeros(1)
            out = np.full(tuple(int(d) for d in ins[0]), fill.reshape(-1)[0], dtype=fill.dtype)
        elif op == "Concat":
            out = np.concatenate(ins, axis=attrs["axis"].i)
        elif op == "Reshape":
            out = ins[0].reshape(tuple(int(d) for d in ins[1]))
        elif op == "Transpose":
            perm = list(attrs["perm"].ints) if "perm" in attrs else None
            out = np.transpose(ins[0], perm)
        elif op == "Cast":
            from onnx.helper import tensor_dtype_to_np_dtype

            out = ins[0].astype(tensor_dtype_to_np_dtype(attrs["to"].i))
        elif op == "Slice":
            out = _slice(*ins)
        else:
            continue
        values[node.output[0]] = np.asarray(out)
    return values


def _slice(
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    axes: np.ndarray | None = None,
    steps: np.ndarray | None = None,
) -> np.ndarray:
    axes = np.arange(len(starts)) if axes is None else axes
    steps = np.ones(len(starts), dtype=np.int64) if steps is None else steps
    index = [slice(None)] * data.ndim
    big = np.iinfo(np.int64).max // 2
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        # ONNX clamps out-of-range ends; Python slicing needs them inside int range
        index[int(axis)] = slice(int(start), int(np.clip(end, -big, big)), int(step))
    return data[tuple(index)]


def read_onnx_weights(path: Path) -> OnnxWeights:
    """Walk the ONNX graph once: every conv with its padding and activation, and the classifier."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several types for a damaged file
        raise ModelError(f"{path}: unreadable onnx graph ({exc})") from None
    graph = model.graph
    values = _fold_constants(graph)
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    ops = {node.op_type for node in graph.node}
    if "BatchNormalization" in ops:
        raise ModelError(f"{path}: unfolded BatchNormalization is not supported by this backend")

    convs: list[OnnxConv] = []
    fc: tuple[np.ndarray, np.ndarray] | None = None
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            weight = init[node.input[1]]
            bias = init[node.input[2]] if len(node.input) > 2 else np.zeros(weight.shape[0])
            strides = list(attrs.get("strides", [1, 1]))
            own = list(attrs.get("pads", [0, 0, 0, 0]))
            pads = (own[0], own[2], own[1], own[3])
            source = producer.get(node.input[0])
            if source is not None and source.op_type == "Pad":
                amounts = values.get(source.input[1])
                if amounts is None:
                    raise ModelError(f"{path}: padding of '{node.name}' is not a constant")
                # ONNX pads: begins of N,C,H,W then ends of N,C,H,W
                a = [int(x) for x in amounts]
                if a[0] or a[1] or a[4] or a[5]:
                    raise ModelError(f"{path}: '{node.name}' pads batch or channels")
                pads = (pads[0] + a[2], pads[1] + a[6], pads[2] + a[3], pads[3] + a[7])
            convs.append(
                OnnxConv(
                    weight=weight, bias=bias, stride=int(strides[0]),
                    groups=int(attrs.get("group", 1)), pads=pads,
                    clip=_following_clip(node, consumers, values),
                )
            )  # fmt: skip
        elif node.op_type == "Gemm":
            weight = init[node.input[1]]
            fc = (weight if attrs.get("transB", 0) else weight.T, init[node.input[2]])
    if fc is None:
        raise ModelError(f"{path}: no classifier (Gemm) in the graph")
    size = graph.input[0].type.tensor_type.shape.dim[-1].dim_value or 224
    return OnnxWeights(convs=convs, fc_weight=fc[0], fc_bias=fc[1], input_size=int(size))


def _following_clip(
    node: Any, consumers: dict[str, list[Any]], values: dict[str, np.ndarray]
) -> tuple[float, float] | None:
    """The (min, max) of a ``Clip`` that consumes the conv's output, i.e. its activation."""
    for user in consumers.get(node.output[0], []):
        if user.op_type == "Clip":
            low = float(values[user.input[1]]) if len(user.input) > 1 else -np.inf
            high = float(values[user.input[2]]) if len(user.input) > 2 else np.inf
            return (low, high)
    return None


# ------------------------------------------------------------------ the Keras model


def _lite0_plan() -> list[dict[str, Any]]:
    """The MBConv blocks of EfficientNet-Lite0 in order, with their channel counts."""
    blocks = []
    channels = STEM_CHANNELS
    for repeats, kernel, stride, expand, out in LITE0_STAGES:
        for i in range(repeats):
            blocks.append(
                {"in": channels, "out": out, "kernel": kernel, "expand": expand,
                 "stride": stride if i == 0 else 1}
            )  # fmt: skip
            channels = out
    return blocks


class _ConvFeed:
    """Hands out the ONNX convs in graph order, checking each fits the layer asked for."""

    def __init__(self, convs: list[OnnxConv], path: Path) -> None:
        self.convs = convs
        self.path = path
        self.next = 0

    def take(self, *, out: int, kernel: int, stride: int, depthwise: bool) -> OnnxConv:
        if self.next >= len(self.convs):
            raise self._mismatch("fewer convs than EfficientNet-Lite0 has")
        conv = self.convs[self.next]
        self.next += 1
        groups_ok = conv.groups == out if depthwise else conv.groups == 1
        shape_ok = conv.weight.shape[0] == out and conv.weight.shape[2:] == (kernel, kernel)
        if not (groups_ok and shape_ok and conv.stride == stride):
            raise self._mismatch(f"conv {self.next} has shape {conv.weight.shape}")
        return conv

    def _mismatch(self, detail: str) -> ModelError:
        return ModelError(f"{self.path}: not an EfficientNet-Lite0 graph ({detail})")


def _conv(keras: Any, x: Any, conv: OnnxConv, *, depthwise: bool, weights: list) -> Any:
    """A conv mirroring the ONNX one: explicit zero padding, then a 'valid' conv, then ReLU6."""
    top, bottom, left, right = conv.pads
    if top or bottom or left or right:
        x = keras.layers.ZeroPadding2D(((top, bottom), (left, right)))(x)
    kernel = conv.weight.shape[2]
    if depthwise:
        layer = keras.layers.DepthwiseConv2D(kernel, strides=conv.stride, padding="valid")
        # ONNX [C, 1, kh, kw] -> Keras [kh, kw, C, 1]
        kernel_value = conv.weight.transpose(2, 3, 0, 1)
    else:
        layer = keras.layers.Conv2D(conv.weight.shape[0], kernel, strides=conv.stride,
                                    padding="valid")  # fmt: skip
        # ONNX [out, in, kh, kw] -> Keras [kh, kw, in, out]
        kernel_value = conv.weight.transpose(2, 3, 1, 0)
    x = layer(x)
    weights.append((layer, [kernel_value, conv.bias]))
    if conv.clip is not None:
        low, high = conv.clip
        if low != 0.0:
            raise ModelError(f"unsupported activation clip({low}, {high})")
        x = keras.layers.ReLU(max_value=None if np.isinf(high) else high)(x)
    return x


def build_keras_model(onnx_path: Path) -> Any:
    """A Keras model: pixels [N,3,S,S] (NCHW, as the ONNX graph takes them) ->
    {"features": [N,1280], "logits": [N,1000]}, with the ONNX graph's weights."""
    import keras

    src = read_onnx_weights(onnx_path)
    feed = _ConvFeed(src.convs, onnx_path)
    weights: list[tuple[Any, list[np.ndarray]]] = []
    size = src.input_size
    pixels = keras.Input((3, size, size), name="pixels")
    # the graph is NCHW (PyTorch); Keras convs on CPU want NHWC
    x = keras.layers.Permute((2, 3, 1))(pixels)
    x = _conv(keras, x, feed.take(out=STEM_CHANNELS, kernel=3, stride=2, depthwise=False),
              depthwise=False, weights=weights)  # fmt: skip
    for block in _lite0_plan():
        inputs = x
        hidden = block["in"] * block["expand"]
        if block["expand"] != 1:
            expand = feed.take(out=hidden, kernel=1, stride=1, depthwise=False)
            x = _conv(keras, x, expand, depthwise=False, weights=weights)
        dw = feed.take(out=hidden, kernel=block["kernel"], stride=block["stride"], depthwise=True)
        x = _conv(keras, x, dw, depthwise=True, weights=weights)
        project = feed.take(out=block["out"], kernel=1, stride=1, depthwise=False)
        x = _conv(keras, x, project, depthwise=False, weights=weights)
        if block["stride"] == 1 and block["in"] == block["out"]:
            x = keras.layers.Add()([x, inputs])
    head = feed.take(out=HEAD_CHANNELS, kernel=1, stride=1, depthwise=False)
    x = _conv(keras, x, head, depthwise=False, weights=weights)
    if feed.next != len(src.convs):
        raise feed._mismatch(f"{len(src.convs) - feed.next} convs left over")
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    dense = keras.layers.Dense(src.fc_weight.shape[0], name="logits")
    logits = dense(features)
    weights.append((dense, [src.fc_weight.T, src.fc_bias]))
    model = keras.Model(pixels, {"features": features, "logits": logits}, name="efficientnet_lite0")
    for layer, values in weights:
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])
    return model

"""ncnn .param/.bin -> ONNX, without torch and without ncnn itself.

The .param file is a text graph (one layer a line: type, name, blob counts, blob names,
`key=value` parameters; `-233KK=n,v1,..` is the array parameter KK). The .bin file holds each
weighted layer's data in layer order: a Convolution's weights behind a 4-byte storage tag (fp16,
fp32 or untagged fp32), padded to 4 bytes, then its bias as raw float32; a PReLU's slopes as
raw float32. The layer types Real-ESRGAN's exports use are translated one by one into ONNX
nodes with the `onnx.helper` API; any other type is refused by name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0x0002C056
TAG_INT8 = 0x000D4B38
ARRAY_KEY_BASE = -23300
"""`-23300 - k` marks the array form of parameter k."""
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
# ncnn activation types fused into a Convolution (parameter 9).
ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_SIGMOID = 0, 1, 2, 3, 4
# ncnn Interp resize types (parameter 0).
INTERP_MODES = {1: "nearest", 2: "linear", 3: "cubic"}
NCNN_CUBIC_A = -0.75
"""ncnn's bicubic kernel coefficient (OpenCV's too)."""


class NcnnFormatError(ValueError):
    """The .param/.bin pair cannot be read or uses something the converter does not know."""


@dataclass(frozen=True)
class Layer:
    """One line of a .param file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, float | tuple[float, ...]] = field(default_factory=dict)

    def geti(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise NcnnFormatError(f"layer {self.name}: parameter {key} is an array")
        return int(value)

    def getf(self, key: int, default: float = 0.0) -> float:
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise NcnnFormatError(f"layer {self.name}: parameter {key} is an array")
        return float(value)

    def array(self, key: int) -> tuple[float, ...]:
        value = self.params.get(key, ())
        return value if isinstance(value, tuple) else (float(value),)


def _number(text: str) -> float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(text: str) -> list[Layer]:
    """The layers of a .param file, in file order."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise NcnnFormatError("not an ncnn .param file (magic number missing)")
    layers = []
    for parts in lines[2:]:
        if len(parts) < 4:
            raise NcnnFormatError(f"short layer line: {' '.join(parts)}")
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        blobs = parts[4 : 4 + n_in + n_out]
        params: dict[int, float | tuple[float, ...]] = {}
        for item in parts[4 + n_in + n_out :]:
            key_text, _, value = item.partition("=")
            key = int(key_text)
            if key <= ARRAY_KEY_BASE:
                count, *values = value.split(",")
                if int(count) != len(values):
                    raise NcnnFormatError(f"layer {name}: array {key} has a wrong count")
                params[ARRAY_KEY_BASE - key] = tuple(float(v) for v in values)
            else:
                params[key] = _number(value)
        layers.append(Layer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params))
    return layers


class _BinReader:
    """Reads weight blocks from a .bin file in order."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise NcnnFormatError("the .bin file ends before the .param file says it should")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def raw_float32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), "<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        """A block with a storage tag (ncnn's `load(w, 0)`)."""
        (tag,) = struct.unpack("<I", self._take(4))
        if tag == TAG_FP16:
            values = np.frombuffer(self._take(2 * count), "<f2").astype(np.float32)
            self._take((-2 * count) % 4)  # padded to 4 bytes
            return values
        if tag in (TAG_FP32, 0):
            return self.raw_float32(count)
        if tag == TAG_INT8:
            raise NcnnFormatError("int8-quantised ncnn weights are not supported")
        raise NcnnFormatError(f"unknown ncnn weight tag {tag:#010x} (quantisation tables?)")

    def finished(self) -> bool:
        return self._pos == len(self._data)


@dataclass
class _Graph:
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    counter: int = 0

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        from onnx import helper

        self.counter += 1
        self.nodes.append(helper.make_node(op, inputs, outputs, f"{op}_{self.counter}", **attrs))


def _convolution(graph: _Graph, layer: Layer, weights: _BinReader, out: str) -> None:
    n_out = layer.geti(0)
    kw = layer.geti(1)
    kh = layer.geti(11, kw)
    size = layer.geti(6)
    if layer.geti(8):
        raise NcnnFormatError(f"layer {layer.name}: int8 convolutions are not supported")
    if size % (n_out * kw * kh):
        raise NcnnFormatError(f"layer {layer.name}: weight size does not match its shape")
    n_in = size // (n_out * kw * kh)
    w = weights.tagged(size).reshape(n_out, n_in, kh, kw)
    inputs = [layer.inputs[0], graph.const(f"{layer.name}.weight", w)]
    if layer.geti(5):
        inputs.append(graph.const(f"{layer.name}.bias", weights.raw_float32(n_out)))
    pad_l = layer.geti(4)
    pad_t, pad_r = layer.geti(14, pad_l), layer.geti(15, pad_l)
    pad_b = layer.geti(16, pad_t)
    if min(pad_l, pad_t, pad_r, pad_b) < 0:
        raise NcnnFormatError(f"layer {layer.name}: automatic ('same') padding is not supported")
    activation = layer.geti(9)
    conv_out = out if activation == ACT_NONE else f"{layer.name}.conv"
    dilation = (layer.geti(12, layer.geti(2, 1)), layer.geti(2, 1))
    stride = (layer.geti(13, layer.geti(3, 1)), layer.geti(3, 1))
    graph.node(
        "Conv",
        inputs,
        [conv_out],
        kernel_shape=[kh, kw],
        pads=[pad_t, pad_l, pad_b, pad_r],
        strides=list(stride),
        dilations=list(dilation),
    )
    act_params = layer.array(10)
    if activation == ACT_RELU:
        graph.node("Relu", [conv_out], [out])
    elif activation == ACT_LEAKY:
        graph.node("LeakyRelu", [conv_out], [out], alpha=act_params[0] if act_params else 0.0)
    elif activation == ACT_SIGMOID:
        graph.node("Sigmoid", [conv_out], [out])
    elif activation == ACT_CLIP:
        lo = graph.const(f"{layer.name}.lo", np.array(act_params[0], np.float32))
        hi = graph.const(f"{layer.name}.hi", np.array(act_params[1], np.float32))
        graph.node("Clip", [conv_out, lo, hi], [out])
    elif activation != ACT_NONE:
        raise NcnnFormatError(f"layer {layer.name}: activation type {activation} unsupported")


def _interp(graph: _Graph, layer: Layer, out: str) -> None:
    mode = INTERP_MODES.get(layer.geti(0))
    if mode is None:
        raise NcnnFormatError(f"layer {layer.name}: resize type {layer.geti(0)} unsupported")
    if layer.geti(3) or layer.geti(4):
        raise NcnnFormatError(f"layer {layer.name}: fixed output sizes are not supported")
    scales = np.array([1, 1, layer.getf(1, 1.0), layer.getf(2, 1.0)], np.float32)
    attrs: dict[str, Any] = {"mode": mode}
    if mode == "nearest":
        attrs |= {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs["coordinate_transformation_mode"] = "align_corners" if layer.geti(6) else "half_pixel"
        if mode == "cubic":
            attrs["cubic_coeff_a"] = NCNN_CUBIC_A
    scale_name = graph.const(f"{layer.name}.scales", scales)
    graph.node("Resize", [layer.inputs[0], "", scale_name], [out], **attrs)


def _eltwise(graph: _Graph, layer: Layer, out: str) -> None:
    op = layer.geti(0, 1)
    coeffs = layer.array(1)
    if op != 1:
        ops = {0: "Mul", 2: "Max"}
        if op not in ops or coeffs:
            raise NcnnFormatError(f"layer {layer.name}: eltwise op {op} unsupported")
        graph.node(ops[op], list(layer.inputs), [out])
        return
    terms = []
    for i, blob in enumerate(layer.inputs):
        if coeffs and coeffs[i] != 1.0:
            scaled = f"{layer.name}.term{i}"
            factor = graph.const(f"{layer.name}.coeff{i}", np.array(coeffs[i], np.float32))
            graph.node("Mul", [blob, factor], [scaled])
            terms.append(scaled)
        else:
            terms.append(blob)
    graph.node("Sum", terms, [out])


BINARY_OPS = {0: "Add", 1: "Sub", 2: "Mul", 3: "Div", 4: "Max", 5: "Min"}


def _layer(graph: _Graph, layer: Layer, weights: _BinReader, names: dict[str, str]) -> None:
    """Translate one layer; `names` maps ncnn blob names to ONNX value names."""
    kind = layer.type
    if kind == "Input":
        names[layer.outputs[0]] = INPUT_NAME
        return
    if kind == "Split":
        for blob in layer.outputs:
            names[blob] = names[layer.inputs[0]]
        return
    inputs = [names[b] for b in layer.inputs]
    layer = Layer(kind, layer.name, tuple(inputs), layer.outputs, layer.params)
    out = f"{layer.name}.out"
    names[layer.outputs[0]] = out
    if kind == "Convolution":
        _convolution(graph, layer, weights, out)
    elif kind == "PReLU":
        count = layer.geti(0, 1)
        slope = weights.raw_float32(count).reshape(count, 1, 1)
        graph.node("PRelu", [inputs[0], graph.const(f"{layer.name}.slope", slope)], [out])
    elif kind == "Concat":
        graph.node("Concat", inputs, [out], axis=layer.geti(0) + 1)
    elif kind == "Eltwise":
        _eltwise(graph, layer, out)
    elif kind == "BinaryOp" and not layer.geti(1) and layer.geti(0) in BINARY_OPS:
        graph.node(BINARY_OPS[layer.geti(0)], inputs, [out])
    elif kind == "Interp":
        _interp(graph, layer, out)
    elif kind == "PixelShuffle" and layer.geti(1) == 0:
        graph.node("DepthToSpace", inputs, [out], blocksize=layer.geti(0), mode="CRD")
    else:
        raise NcnnFormatError(f"layer {layer.name}: ncnn layer type {kind} is not supported")


def to_onnx(param: Path, weights: Path) -> bytes:
    """An ONNX model (serialised) equal to the ncnn network in `param` + `weights`.

    Input `input` and output `output` are N x 3 x H x W floats in [0, 1], H and W free.
    """
    from onnx import TensorProto, checker, helper

    layers = parse_param(param.read_text())
    reader = _BinReader(weights.read_bytes())
    graph = _Graph()
    names: dict[str, str] = {}
    for layer in layers:
        _layer(graph, layer, reader, names)
    if not reader.finished():
        raise NcnnFormatError("the .bin file holds more data than the .param file uses")
    last = layers[-1].outputs[-1]
    graph.node("Identity", [names[last]], [OUTPUT_NAME])
    dims_in: list[str | int] = ["batch", 3, "height", "width"]
    dims_out: list[str | int] = ["batch", 3, "out_height", "out_width"]
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            param.stem,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, dims_in)],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims_out)],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="facecast",
    )
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    checker.check_model(model)
    return bytes(model.SerializeToString())

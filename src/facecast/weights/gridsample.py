"""5-D GridSample rewritten into gathers, for onnxruntime's CUDA provider.

LivePortrait's warping network samples a 3-D feature volume with two 5-D `GridSample` nodes.
onnxruntime's CUDA kernel handles 4-D inputs only, so on a GPU those nodes either fail at run
time or are placed on the CPU, with a device round trip around each. This module replaces
every 5-D `GridSample` (linear mode, zeros or border padding) by its definition: the eight
corner voxels gathered with `GatherElements` and summed with trilinear weights, all ops the
CUDA provider runs. On the CPU onnxruntime's own kernel is faster, so the rewrite is applied
only where CUDA is used (`accel.session`). Corner indices are computed in int64: a float16
or float32 index cannot address all 65,536 voxels of a 16x64x64 volume exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LINEAR_MODES = {"linear", "bilinear"}
PADDINGS = {"zeros", "border"}


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _tensor_info(model: Any) -> dict[str, tuple[int, int]]:
    """(rank, element type) of every tensor whose shape inference knows it."""
    from onnx import shape_inference

    # Inference only needs the graph; large initialisers stay out of the copy.
    inferred = shape_inference.infer_shapes(model, strict_mode=False)
    found: dict[str, tuple[int, int]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            found[value.name] = (len(tensor.shape.dim), tensor.elem_type)
    for init in model.graph.initializer:
        found[init.name] = (len(init.dims), init.data_type)
    return found


def five_d_nodes(model: Any, info: dict[str, tuple[int, int]] | None = None) -> list[Any]:
    """The graph's GridSample nodes whose grid is 5-D (N, D, H, W, 3)."""
    info = info if info is not None else _tensor_info(model)
    return [
        node
        for node in model.graph.node
        if node.op_type == "GridSample" and info.get(node.input[1], (0, 0))[0] == 5
    ]


class _Builder:
    """Appends nodes and constants with names unique to one rewritten GridSample."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}/{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}
"""ONNX element types the rewrite computes coordinates in, as numpy types."""


def _expand(node: Any, b: _Builder, elem_type: int) -> None:
    """Nodes computing `node`'s output without GridSample."""
    padding = _padding(node)
    aligned = bool(_attrs(node).get("align_corners", 0))
    x, grid = node.input[0], node.input[1]
    f32 = elem_type  # the grid's float type (fp16 graphs stay fp16)
    real = FLOAT_TYPES[elem_type]
    i64 = 7  # TensorProto.INT64

    shape_x = b.op("Shape", [x])
    shape_g = b.op("Shape", [grid])
    one64 = b.const(np.array([1], np.int64))

    def dim(shape: str, i: int) -> str:
        return b.op("Gather", [shape, b.const(np.array([i], np.int64))], axis=0)

    n, c = dim(shape_x, 0), dim(shape_x, 1)
    sizes = [dim(shape_x, i) for i in (2, 3, 4)]  # D, H, W
    sizes_f = [b.op("Cast", [s], to=f32) for s in sizes]
    # Grid channels: 0 -> x (W), 1 -> y (H), 2 -> z (D).
    from onnx import helper

    coords = [b.name(f"g{axis}") for axis in "xyz"]
    split = b.const(np.array([1, 1, 1], np.int64))
    b.nodes.append(helper.make_node("Split", [grid, split], coords, axis=-1))
    minus1 = b.const(np.array([-1], np.int64))
    coords = [b.op("Squeeze", [g, minus1]) for g in coords]  # (N, Do, Ho, Wo)
    one = b.const(np.array(1.0, real))
    half = b.const(np.array(0.5, real))

    def to_pixels(g: str, size: str) -> str:
        shifted = b.op("Add", [g, one])
        if aligned:  # (g + 1) / 2 * (size - 1)
            return b.op("Mul", [b.op("Mul", [shifted, half]), b.op("Sub", [size, one])])
        # ((g + 1) * size - 1) / 2
        return b.op("Mul", [b.op("Sub", [b.op("Mul", [shifted, size]), one]), half])

    # Pixel coordinates in the order z, y, x to match sizes D, H, W.
    pix = [to_pixels(g, s) for g, s in zip(coords[::-1], sizes_f, strict=True)]
    if padding == "border":
        pix = [
            b.op("Max", [b.op("Min", [p, b.op("Sub", [s, one])]), b.const(np.array(0.0, real))])
            for p, s in zip(pix, sizes_f, strict=True)
        ]
    low = [b.op("Floor", [p]) for p in pix]
    frac = [b.op("Sub", [p, lo]) for p, lo in zip(pix, low, strict=True)]
    low_i = [b.op("Cast", [lo], to=i64) for lo in low]
    zero_i = b.const(np.array(0, np.int64))
    one_i = b.const(np.array(1, np.int64))
    last_i = [b.op("Sub", [s, one_i]) for s in sizes]

    # Flattened output positions: (N, 1, P) with P = Do * Ho * Wo.
    flat_shape = b.op("Concat", [n, one64, b.const(np.array([-1], np.int64))], axis=0)
    volume = b.op("Mul", [b.op("Mul", [sizes[0], sizes[1]]), sizes[2]])
    x_flat = b.op("Reshape", [x, b.op("Concat", [n, c, volume], axis=0)])  # (N, C, DHW)
    out_dims = b.op(
        "Slice",
        [shape_g, b.const(np.array([1], np.int64)), b.const(np.array([4], np.int64))],
    )  # Do, Ho, Wo
    positions = b.op("ReduceProd", [out_dims], keepdims=1)
    gather_shape = b.op("Concat", [n, c, positions], axis=0)  # Expand takes no -1

    total = ""
    for corner in range(8):
        offsets = [(corner >> 2) & 1, (corner >> 1) & 1, corner & 1]  # z, y, x
        weight = ""
        index = ""
        valid = ""
        for axis, offset in enumerate(offsets):
            at = low_i[axis] if offset == 0 else b.op("Add", [low_i[axis], one_i])
            w = b.op("Sub", [one, frac[axis]]) if offset == 0 else frac[axis]
            weight = w if not weight else b.op("Mul", [weight, w])
            if padding == "zeros":
                inside = b.op(
                    "And",
                    [
                        b.op("GreaterOrEqual", [at, zero_i]),
                        b.op("LessOrEqual", [at, last_i[axis]]),
                    ],
                )
                valid = inside if not valid else b.op("And", [valid, inside])
            clamped = b.op("Max", [b.op("Min", [at, last_i[axis]]), zero_i])
            index = (
                clamped if not index else b.op("Add", [b.op("Mul", [index, sizes[axis]]), clamped])
            )
        if valid:
            weight = b.op("Mul", [weight, b.op("Cast", [valid], to=f32)])
        index = b.op("Expand", [b.op("Reshape", [index, flat_shape]), gather_shape])
        values = b.op("GatherElements", [x_flat, index], axis=2)  # (N, C, P)
        term = b.op("Mul", [values, b.op("Reshape", [weight, flat_shape])])
        total = term if not total else b.op("Add", [total, term])

    out_shape = b.op("Concat", [n, c, out_dims], axis=0)
    b.nodes.append(helper.make_node("Reshape", [total, out_shape], [node.output[0]]))


def rewrite(model: Any) -> int:
    """Replace every 5-D linear GridSample in `model` in place; returns how many were replaced.

    Nodes with another mode or reflection padding stay as they are."""
    info = _tensor_info(model)
    targets = [
        node
        for node in five_d_nodes(model, info)
        if _mode(node) in LINEAR_MODES
        and _padding(node) in PADDINGS
        and info.get(node.input[1], (0, 0))[1] in FLOAT_TYPES
    ]
    if not targets:
        return 0
    graph = model.graph
    new_nodes: list[Any] = []
    replaced = 0
    wanted = {id(node) for node in targets}
    for i, node in enumerate(graph.node):
        if id(node) not in wanted:
            new_nodes.append(node)
            continue
        builder = _Builder(f"gridsample5d_{i}")
        _expand(node, builder, info[node.input[1]][1])
        new_nodes.extend(builder.nodes)
        graph.initializer.extend(builder.constants)
        replaced += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    return replaced


def _text_attr(node: Any, key: str, default: str) -> str:
    value = _attrs(node).get(key, default.encode())
    return value.decode() if isinstance(value, bytes) else str(value)


def _mode(node: Any) -> str:
    return _text_attr(node, "mode", "linear")


def _padding(node: Any) -> str:
    return _text_attr(node, "padding_mode", "zeros")


def rewritten_bytes(source: bytes, on_replaced: Callable[[int], None] | None = None) -> bytes:
    """`source` (a serialised model) with its 5-D GridSample nodes rewritten."""
    import onnx

    model = onnx.load_from_string(source)
    count = rewrite(model)
    if on_replaced is not None:
        on_replaced(count)
    return source if count == 0 else model.SerializeToString()

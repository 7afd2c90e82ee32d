"""Wav2Lip plumbing tests: a generated ONNX graph with the production signature whose output
is a known function of its mel input checks the mel recipe, the alignment of mel windows with
video frames, the face input and the feathered paste-back. Plumbing, not quality: no real
Wav2Lip weights are involved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from facecast import post, weights
from facecast.audio import AudioTrack
from facecast.config import get_settings
from facecast.face import detect_landmarks, frame_portrait
from facecast.image import load_image
from facecast.options import RenderOptions
from facecast.pipeline import render_talking_head
from facecast.post import PostContext
from facecast.post.wav2lip import (
    DESCRIPTION,
    MEL_FPS,
    MEL_STEP,
    Wav2Lip,
    face_box,
    face_input,
    follow_box,
    mel_filters,
    melspectrogram,
)
from facecast.registry import MissingError

RATE = 16_000
FPS = 25


def write_echo_model(path: Path) -> None:
    """mel (N,1,80,16) + face (N,6,96,96) -> (N,3,96,96) filled with 0.5 + mean(mel) / 8."""
    n = helper.make_node
    nodes = [
        n("ReduceMean", ["mel"], ["level"], axes=[1, 2, 3], keepdims=1),
        n("Mul", ["level", "eighth"], ["scaled"]),
        n("Slice", ["face", "c3", "c6", "ax1"], ["reference"]),
        n("Mul", ["reference", "zero"], ["blank"]),
        n("Add", ["blank", "scaled"], ["shifted"]),
        n("Add", ["shifted", "half"], ["out"]),
    ]
    consts: dict[str, np.ndarray] = {
        "eighth": np.array(1 / 8, np.float32),
        "zero": np.array(0, np.float32),
        "half": np.array(0.5, np.float32),
        "c3": np.array([3], np.int64),
        "c6": np.array([6], np.int64),
        "ax1": np.array([1], np.int64),
    }
    graph = helper.make_graph(
        nodes,
        "wav2lip-echo",
        [
            helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["N", 1, 80, 16]),
            helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 6, 96, 96]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 96, 96])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w2l") / "wav2lip.onnx"
    write_echo_model(path)
    return path


@pytest.fixture(scope="module")
def portrait(grace: Path):
    rgb = load_image(grace)
    return frame_portrait(rgb, detect_landmarks(rgb), 256, "square")


def burst_track(start: float = 1.0, stop: float = 1.2, seconds: float = 2.0) -> AudioTrack:
    t = np.arange(round(seconds * RATE)) / RATE
    samples = np.where((t >= start) & (t < stop), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    return AudioTrack(samples.astype(np.float32), RATE)


def test_mel_recipe_shapes_levels_and_bands() -> None:
    silent = melspectrogram(AudioTrack(np.zeros(RATE, np.float32), RATE))
    assert silent.shape == (80, 1 + RATE // 200)
    assert np.all(silent == -4.0)
    t = np.arange(RATE) / RATE
    tone = melspectrogram(AudioTrack((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), RATE))
    assert tone.min() >= -4 and tone.max() <= 4
    peak = int(np.argmax(tone[:, 40]))
    centre = np.argmax(mel_filters(), axis=1)[peak] * RATE / 800
    assert abs(centre - 1000) < 120
    assert mel_filters().shape == (80, 401)


def test_mel_windows_line_up_with_frames(model_path: Path, portrait) -> None:
    refiner = Wav2Lip(model_path)
    track = burst_track()
    step = refiner.prepare(PostContext(RenderOptions(fps=FPS), track, portrait))
    frames = [portrait.rgb.copy() for _ in range(2 * FPS)]
    refined = step(frames[:30], 0) + step(frames[30:], 30)  # two batches, as the pipeline runs
    x0, y0, x1, y1 = face_box(portrait.landmarks, portrait.rgb.shape)
    probe = (y0 + round(0.74 * (y1 - y0)), (x0 + x1) // 2)  # mask centre: mask = 1
    levels = np.array([f[probe][0] for f in refined], float)
    mel = melspectrogram(track)
    for i, level in enumerate(levels):
        start = int(i * MEL_FPS / FPS)
        expected = 255 * (0.5 + mel[:, start : start + MEL_STEP].mean() / 8)
        assert abs(level - expected) <= 2, (i, level, expected)
    burst_cols = set(range(80, 96))
    hit = [
        i for i in range(len(levels)) if burst_cols & set(range(int(i * 3.2), int(i * 3.2) + 16))
    ]
    quiet = [i for i in range(len(levels)) if i not in hit]
    assert levels[hit].min() > levels[quiet].max()


def test_face_input_masks_the_lower_half_and_is_bgr() -> None:
    red = np.zeros((120, 100, 3), np.uint8)
    red[..., 0] = 255
    face = face_input(red)
    assert face.shape == (6, 96, 96)
    assert np.all(face[2, :48] == 1.0) and np.all(face[:3, 48:] == 0.0)
    assert np.all(face[5] == 1.0) and np.all(face[3:5] == 0.0)


def test_paste_back_stays_inside_the_face_box(model_path: Path, portrait) -> None:
    step = Wav2Lip(model_path).prepare(PostContext(RenderOptions(fps=FPS), burst_track(), portrait))
    (out,) = step([portrait.rgb.copy()], 28)
    x0, y0, x1, y1 = face_box(portrait.landmarks, portrait.rgb.shape)
    outside = np.ones(out.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], portrait.rgb[outside])
    assert not np.array_equal(out[y0:y1, x0:x1], portrait.rgb[y0:y1, x0:x1])


def _shifted(rgb: np.ndarray, dx: int, dy: int) -> np.ndarray:
    matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(rgb, matrix, rgb.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (6, -4), (-9, 7)])
def test_box_follows_the_head(model_path: Path, portrait, dx: int, dy: int) -> None:
    """Renderers sway and turn the head: the refined mouth must move with it, not stay on
    the photo's box. Frames here are the photo moved by a known shift."""
    box = face_box(portrait.landmarks, portrait.rgb.shape)
    step = Wav2Lip(model_path).prepare(PostContext(RenderOptions(fps=FPS), burst_track(), portrait))
    moved = _shifted(portrait.rgb, dx, dy)
    x0, y0, x1, y1 = box
    assert follow_box(step.reference, moved, box) == (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
    (out,) = step([moved.copy()], 28)
    outside = np.ones(out.shape[:2], bool)
    outside[y0 + dy : y1 + dy, x0 + dx : x1 + dx] = False
    assert np.array_equal(out[outside], moved[outside])


def test_box_stays_when_the_frame_is_not_the_face(model_path: Path, portrait) -> None:
    box = face_box(portrait.landmarks, portrait.rgb.shape)
    step = Wav2Lip(model_path).prepare(PostContext(RenderOptions(fps=FPS), burst_track(), portrait))
    noise = np.random.default_rng(0).integers(0, 255, portrait.rgb.shape, dtype=np.uint8)
    assert follow_box(step.reference, noise, box) == box


@pytest.fixture
def opted_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_path: Path) -> Iterator[Path]:
    models = tmp_path / "models"
    weights.import_file(model_path, models, trust=True)
    monkeypatch.setenv("FACECAST_MODELS_DIR", str(models))
    monkeypatch.setenv("FACECAST_ALLOW_NONCOMMERCIAL", "true")
    get_settings.cache_clear()
    yield models
    post.REGISTRY.unregister("wav2lip")
    get_settings.cache_clear()


def test_needs_the_opt_in_and_the_file(opted_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DESCRIPTION.make(opted_in).name == "wav2lip"
    assert not DESCRIPTION.commercial_use and DESCRIPTION.kind == "refine"
    monkeypatch.setenv("FACECAST_ALLOW_NONCOMMERCIAL", "false")
    get_settings.cache_clear()
    with pytest.raises(MissingError, match="FACECAST_ALLOW_NONCOMMERCIAL=true"):
        DESCRIPTION.make(opted_in)


def test_pipeline_refines_with_wav2lip(opted_in: Path, grace: Path, tmp_path: Path) -> None:
    post.REGISTRY.register(DESCRIPTION.make(opted_in))
    options = RenderOptions(size=256, fps=10, refine="wav2lip")
    result = render_talking_head(grace, tmp_path / "w2l.mp4", text="Hallo", options=options)
    assert result.video.is_file() and result.frames >= 3

"""LivePortrait plumbing tests: generated ONNX graphs with the production signatures and known
outputs (tests/_lp_graphs.py) check how facecast drives the networks — rotation, lip and
eye retargeting, stitching, batching, paste-back, shape checks, the CPU limit. These are
plumbing tests, not quality tests: no real LivePortrait weights are involved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import _lp_graphs as graphs
from facecast import accel, render, weights
from facecast.audio import AudioTrack
from facecast.backends import queue_for
from facecast.errors import BackendUnavailableError
from facecast.face import detect_landmarks, frame_portrait
from facecast.image import load_image
from facecast.motion import MotionFrame
from facecast.options import RenderOptions
from facecast.pipeline import check_cpu_time, render_talking_head
from facecast.registry import Capabilities, MissingError
from facecast.render.liveportrait import (
    DESCRIPTION,
    OUT_SIDE,
    LivePortraitAnimator,
    LivePortraitRenderer,
    Networks,
    crop_transform,
)

ZERO = {"jaw": 0.0, "yaw": 0.0, "pitch": 0.0, "roll": 0.0, "blink_a": 0.0, "blink_b": 0.0}
SILENCE = AudioTrack(np.zeros(16_000, np.float32), 16_000)
"""The renderer is driven by motion alone: any sound will do."""
OTHER_KP = [k for k in range(21) if k not in graphs.LIP_KP + graphs.EYE_KP]


@pytest.fixture(scope="module")
def lp_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir with the six generated files, imported and trusted as an operator would."""
    models = tmp_path_factory.mktemp("lp-models")
    made = graphs.write_all(tmp_path_factory.mktemp("lp-made"))
    for path in made.values():
        weights.import_file(path, models, trust=True)
    return models


def moving(values: dict[str, float]) -> MotionFrame:
    """The first frame of a clip with these channel values."""
    return MotionFrame(0, 25, values)


@pytest.fixture(scope="module")
def animator(lp_models: Path, grace: Path) -> LivePortraitAnimator:
    renderer = DESCRIPTION.make(lp_models)
    rgb = load_image(grace)
    portrait = frame_portrait(rgb, detect_landmarks(rgb), 512, "square")
    return renderer.prepare(portrait)


def test_registered_only_when_verified(lp_models: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingError, match=r"warping_spade\.onnx"):
        DESCRIPTION.make(tmp_path)  # nothing there
    assert DESCRIPTION.make(lp_models).name == "liveportrait"
    assert DESCRIPTION.models == ("liveportrait",) and DESCRIPTION.device == "gpu"
    with (lp_models / "liveportrait" / "stitching.onnx").open("ab") as handle:
        handle.write(b"\0")  # tampered after import: no longer trusted
    try:
        with pytest.raises(MissingError, match=r"stitching\.onnx"):
            DESCRIPTION.make(lp_models)
    finally:
        graphs.stitching(lp_models / "liveportrait" / "stitching.onnx")


def test_source_pose_comes_from_the_bins(animator: LivePortraitAnimator) -> None:
    source = animator.source
    assert (source.pitch, source.yaw, source.roll) == pytest.approx(graphs.SOURCE_ANGLES, abs=1e-4)
    assert source.scale == pytest.approx(graphs.SOURCE_SCALE)


def test_zero_motion_reproduces_the_source(animator: LivePortraitAnimator) -> None:
    x_d = animator.stitched(animator.driving_keypoints(ZERO))
    np.testing.assert_allclose(x_d, animator.x_s, atol=1e-5)
    (face,) = animator.generate([x_d])
    # The test generator returns its appearance input when driving == source keypoints.
    crop = cv2.warpAffine(
        animator._rgb, animator._affine, (OUT_SIDE, OUT_SIDE), borderMode=cv2.BORDER_REPLICATE
    )
    small = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA)
    expected = cv2.resize(
        cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR),
        (OUT_SIDE, OUT_SIDE),
        interpolation=cv2.INTER_NEAREST,
    )
    assert np.abs(face.astype(int) - expected).mean() < 4


@pytest.mark.parametrize("jaw", [0.0, 0.3, 1.0])
def test_jaw_moves_the_lip_keypoints_in_step(animator: LivePortraitAnimator, jaw: float) -> None:
    x_d = animator.driving_keypoints({**ZERO, "jaw": jaw})
    shift = x_d - animator.x_s
    expected = animator.lip_target(jaw) - animator.lip_s
    assert expected == pytest.approx(0.5 * jaw, abs=0.005)
    assert animator.lip_s < 0.03  # Grace's mouth is closed: jaw 0 keeps it as it is
    np.testing.assert_allclose(shift[list(graphs.LIP_KP), 1], expected, atol=1e-5)
    np.testing.assert_allclose(shift[OTHER_KP], 0, atol=1e-5)
    np.testing.assert_allclose(shift[list(graphs.EYE_KP)], 0, atol=1e-5)


@pytest.mark.parametrize(("a", "b"), [(1.0, 1.0), (0.5, 0.5), (1.0, 0.0)])
def test_blinks_reach_the_eye_keypoints(animator: LivePortraitAnimator, a: float, b: float) -> None:
    shift = animator.driving_keypoints({**ZERO, "blink_a": a, "blink_b": b}) - animator.x_s
    eyes = float(np.mean(animator.eyes_s))
    closed = eyes - animator.eye_target(a, b)
    assert closed == pytest.approx(eyes * (a + b) / 2, abs=0.005)
    np.testing.assert_allclose(shift[list(graphs.EYE_KP), 1], closed, atol=1e-5)
    np.testing.assert_allclose(shift[list(graphs.LIP_KP)], 0, atol=1e-5)


def test_head_angles_rotate_the_keypoints_per_the_formula(animator: LivePortraitAnimator) -> None:
    turn = {**ZERO, "pitch": -5.0, "yaw": 10.0, "roll": 3.0}
    x_d = animator.driving_keypoints(turn)
    angles = np.add(graphs.SOURCE_ANGLES, [-5.0, 10.0, 3.0])
    r = Rotation.from_euler("xyz", angles, degrees=True).as_matrix().T
    expected = graphs.SOURCE_SCALE * (graphs.SOURCE_KP @ r + graphs.SOURCE_EXP)
    expected[:, :2] += graphs.SOURCE_T[:2]
    np.testing.assert_allclose(x_d, expected, atol=1e-4)


def test_stitching_shifts_by_what_the_net_says(animator: LivePortraitAnimator) -> None:
    x_d = animator.driving_keypoints({**ZERO, "yaw": 20.0})
    stitched = animator.stitched(x_d)
    mean_shift = (x_d - animator.x_s)[:, :2].mean(axis=0)
    expected = np.broadcast_to(0.5 * mean_shift, (21, 2))
    np.testing.assert_allclose(stitched[:, :2] - x_d[:, :2], expected, atol=1e-5)
    np.testing.assert_allclose(stitched[:, 2], x_d[:, 2], atol=1e-6)


def test_paste_back_leaves_the_background_untouched(animator: LivePortraitAnimator) -> None:
    (frame,) = animator.render_batch([moving({**ZERO, "jaw": 1.0, "yaw": 15.0})], SILENCE)
    source = animator._rgb
    mask = animator._paste_mask[..., 0]
    outside = mask == 0
    assert outside.mean() > 0.2
    assert np.array_equal(frame[outside], source[outside])
    inside = mask > 0.99
    assert np.abs(frame[inside].astype(int) - source[inside]).mean() > 1


def test_batches_equal_single_frames(animator: LivePortraitAnimator) -> None:
    frames = [moving({**ZERO, "jaw": j, "yaw": 5 * j}) for j in (0.0, 0.4, 0.8)]
    together = animator.render_batch(frames, SILENCE)
    for motion, frame in zip(frames, together, strict=True):
        assert np.array_equal(animator.render_batch([motion], SILENCE)[0], frame)


def test_wrong_shapes_name_the_file(tmp_path: Path) -> None:
    files = graphs.write_all(tmp_path)
    graphs._linear(files["stitching_lip.onnx"], np.zeros((65, 62), np.float32))
    with pytest.raises(accel.ModelShapeError, match=r"stitching_lip\.onnx: output 0 .* expected"):
        Networks(files)


def test_crop_keeps_the_face_inside(animator: LivePortraitAnimator, grace: Path) -> None:
    rgb = load_image(grace)
    lm = detect_landmarks(frame_portrait(rgb, detect_landmarks(rgb), 512, "square").rgb)
    affine = crop_transform(lm)
    moved = lm.xy @ affine[:, :2].T + affine[:, 2]
    assert moved.min() > 0.15 * OUT_SIDE and moved.max() < 0.85 * OUT_SIDE


def test_long_clips_on_the_cpu_need_force() -> None:
    costly = Capabilities(seconds_per_frame_cpu=7.0)
    if accel.cuda_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailableError, match="no GPU"):
        check_cpu_time("gpu", costly, 25 * 60, RenderOptions())
    check_cpu_time("gpu", costly, 25 * 60, RenderOptions(force_cpu=True))
    check_cpu_time("gpu", costly, 25 * 2, RenderOptions())
    check_cpu_time("cpu", Capabilities(), 25 * 60, RenderOptions())


@pytest.fixture
def registered(lp_models: Path) -> Iterator[None]:
    renderer = DESCRIPTION.make(lp_models)
    assert isinstance(renderer, LivePortraitRenderer)
    render.register(renderer)
    yield
    render.REGISTRY.unregister("liveportrait")


def test_pipeline_renders_with_liveportrait(registered: None, grace: Path, tmp_path: Path) -> None:
    options = RenderOptions(renderer="liveportrait", size=256, fps=5)
    result = render_talking_head(grace, tmp_path / "lp.mp4", text="Hallo", options=options)
    assert result.video.is_file() and result.frames >= 2


def test_gpu_jobs_go_only_where_a_live_worker_takes_them(registered: None, tmp_path: Path) -> None:
    """The API decides from real heartbeats (file state store) what to accept and where."""
    from facecast.config import Settings
    from facecast.service.jobs import JobService
    from facecast.service.schemas import JobRequest, WorkerInfo
    from facecast.service.storage import Storage
    from facecast.service.stores import open_stores

    storage = Storage(tmp_path / "data")
    stores = open_stores(None, storage, 3600)
    service = JobService(Settings(), storage, stores, None)  # type: ignore[arg-type]
    lp = JobRequest(options=RenderOptions(renderer="liveportrait"))
    assert queue_for(RenderOptions(renderer="liveportrait"), "default") == "gpu"

    def beat(worker: str, queues: list[str], backends: list[str], gpu: list[str]) -> None:
        info = WorkerInfo(
            worker_id=worker,
            hostname="h",
            pid=1,
            queues=queues,
            backends=backends,
            gpu_backends=gpu,
        )
        stores.heartbeats.heartbeat(info, 60)

    beat("cpu-1", ["default"], ["realesrgan", "warp"], [])
    with pytest.raises(BackendUnavailableError, match="Available renderers: warp"):
        service.admission.check_backends(lp)  # installed here, but no live worker offers it
    assert (
        service.admission.check_backends(JobRequest(options=RenderOptions(upscale=2))) == "default"
    )
    beat("odd-1", ["default"], ["liveportrait", "warp"], ["liveportrait"])
    with pytest.raises(BackendUnavailableError, match="renderer 'liveportrait'"):
        service.admission.check_backends(lp)  # offered, but nobody consumes the gpu queue with it
    beat("gpu-1", ["gpu"], ["liveportrait", "realesrgan", "warp"], ["liveportrait"])
    assert service.admission.check_backends(lp) == "gpu"
    assert service.admission.check_backends(JobRequest()) == "default"

"""Output framings on real portraits: square, 9:16, 16:9 and the whole photo; the face keeps its
size and place, the photo is extended (never stretched) where it is too small, and the option
reaches the CLI and the service."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest_service import LiveService
from facecast import face
from facecast.image import load_image
from facecast.video import probe
from test_cli import CLI_TIMEOUT_S, FACECAST

SIZE = 256


@pytest.fixture(scope="module", params=["grace", "astronaut"])
def photo(request: pytest.FixtureRequest) -> tuple[np.ndarray, face.FaceLandmarks]:
    path = request.getfixturevalue(request.param)
    rgb = load_image(path)
    return rgb, face.detect_landmarks(rgb)


def _face_box(portrait: face.Portrait) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = portrait.landmarks.oval_box
    return x0, y0, x1, y1


@pytest.mark.parametrize(
    ("framing", "width", "height"),
    [("square", 256, 256), ("portrait", 256, 456), ("landscape", 456, 256)],
)
def test_face_framings_keep_the_face_size_and_place(
    photo: tuple[np.ndarray, face.FaceLandmarks], framing: str, width: int, height: int
) -> None:
    rgb, found = photo
    square = face.frame_portrait(rgb, found, SIZE, "square")
    framed = face.frame_portrait(rgb, found, SIZE, framing)
    assert framed.rgb.shape == (height, width, 3)
    sx0, sy0, sx1, sy1 = _face_box(square)
    fx0, fy0, fx1, fy1 = _face_box(framed)
    assert fy1 - fy0 == pytest.approx(sy1 - sy0, rel=0.02)  # same scale as the square
    assert (fx0 + fx1) / 2 == pytest.approx(width / 2, abs=0.12 * width)  # centred across
    assert fy0 >= 0 and fy1 <= 0.75 * height  # head in the upper part, body below
    # The face's own pixels are the square's (framing never stretches or resamples it).
    a = square.rgb[int(sy0) : int(sy1), int(sx0) : int(sx1)].astype(np.float64)
    b = framed.rgb[int(fy0) : int(fy0) + a.shape[0], int(fx0) : int(fx0) + a.shape[1]]
    assert np.abs(a - b).mean() < 6.0


def test_what_lies_past_the_photo_is_soft_background(grace: Path) -> None:
    rgb = load_image(grace)  # 512 x 600: too narrow for 16:9 at the square's scale
    found = face.detect_landmarks(rgb)
    framed = face.frame_portrait(rgb, found, SIZE, "landscape").rgb
    gray = cv2.cvtColor(framed, cv2.COLOR_RGB2GRAY).astype(np.float64)
    detail = np.abs(cv2.Laplacian(gray, cv2.CV_64F))
    edge = framed.shape[1] // 12
    outside = np.concatenate([detail[:, :edge], detail[:, -edge:]], axis=1).mean()
    middle = detail[:, framed.shape[1] // 3 : 2 * framed.shape[1] // 3].mean()
    assert outside < 0.25 * middle, (outside, middle)


def test_full_keeps_the_whole_photo(photo: tuple[np.ndarray, face.FaceLandmarks]) -> None:
    rgb, found = photo
    framed = face.frame_portrait(rgb, found, SIZE, "full").rgb
    h, w = rgb.shape[:2]
    assert max(framed.shape[:2]) == SIZE and framed.shape[1] % 2 == framed.shape[0] % 2 == 0
    assert framed.shape[1] / framed.shape[0] == pytest.approx(w / h, rel=0.02)


def test_cli_portrait_video(tmp_path: Path, astronaut: Path) -> None:
    out = tmp_path / "tall.mp4"
    command = [str(FACECAST), "render", "--image", str(astronaut), "--text", "Hallo."]
    done = subprocess.run(
        [*command, "-o", str(out), "--framing", "portrait", "--size", "128"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert (info.width, info.height) == (128, 228) and info.n_frames > 10


def test_service_framing_field(live_service: LiveService, portrait: Path) -> None:
    job_id = live_service.submit_text(portrait, "Breit.", size=128, framing="landscape")
    job = live_service.wait_job(job_id)
    assert job["status"] == "done", job
    video = live_service.client.get(job["video_url"])
    path = live_service.data_dir / "landscape-check.mp4"
    path.write_bytes(video.content)
    assert (probe(path).width, probe(path).height) == (228, 128)
    wrong = live_service.animate(portrait, text="Hallo", framing="wide")
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_request"

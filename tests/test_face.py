"""Photo handling: decoding, orientation, formats, sizes, which face, and bad files."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import astronaut_photo, png_declaring
from facecast import face
from facecast.errors import InvalidImageError, NoFaceError
from facecast.image import MAX_WORKING_SIDE, load_image

EXIF_ORIENTATION = 0x0112
ROTATE_90_CW_ON_DISPLAY = 6
"""EXIF Orientation value: the stored pixels must be turned 90° clockwise to be upright."""
QUICK_S = 0.5
"""Rejecting an oversized image must not decode it."""
GRAY = (128, 128, 128)


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _assert_upright_face(rgb: np.ndarray) -> face.FaceLandmarks:
    lm = face.detect_landmarks(rgb)
    chin, forehead = lm.xy[face.CHIN], lm.xy[face.FOREHEAD]
    assert chin[1] - forehead[1] > 0.8 * abs(chin[0] - forehead[0]), "face is not upright"
    return lm


@pytest.fixture(scope="module")
def grace_img(grace: Path) -> Image.Image:
    return Image.open(grace).convert("RGB")


@pytest.fixture(scope="module")
def grace_face(grace: Path) -> face.FaceLandmarks:
    return face.detect_landmarks(load_image(grace))


# --- formats and orientation -----------------------------------------------------------


def test_exif_orientation_is_applied(
    grace_img: Image.Image, grace_face: face.FaceLandmarks
) -> None:
    stored = grace_img.rotate(90, expand=True)  # lying on its side, as a phone stores it
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW_ON_DISPLAY
    rgb = load_image(_encode(stored, "JPEG", exif=exif, quality=92))
    assert rgb.shape[:2] == (grace_img.height, grace_img.width)
    lm = _assert_upright_face(rgb)
    assert lm.face_height == pytest.approx(grace_face.face_height, rel=0.05)


def test_rgba_png_is_flattened(grace_img: Image.Image) -> None:
    rgba = grace_img.convert("RGBA")
    alpha = np.full((grace_img.height, grace_img.width), 255, np.uint8)
    alpha[:60, :] = 0  # a transparent band over the top
    rgba.putalpha(Image.fromarray(alpha))
    rgb = load_image(_encode(rgba, "PNG"))
    assert rgb.shape == (grace_img.height, grace_img.width, 3)
    assert rgb.dtype == np.uint8
    assert (rgb[:60] == 255).all(), "transparent pixels should show as white"
    _assert_upright_face(rgb)


def test_grayscale_jpeg(grace_img: Image.Image) -> None:
    rgb = load_image(_encode(grace_img.convert("L"), "JPEG", quality=90))
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    assert np.array_equal(rgb[..., 0], rgb[..., 1])
    _assert_upright_face(rgb)


def test_webp(grace_img: Image.Image) -> None:
    rgb = load_image(_encode(grace_img, "WEBP", quality=85))
    assert rgb.shape == (grace_img.height, grace_img.width, 3)
    _assert_upright_face(rgb)


def test_path_and_bytes_give_the_same_pixels(grace: Path) -> None:
    assert np.array_equal(load_image(grace), load_image(grace.read_bytes()))


# --- size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "width", "params"),
    [("JPEG", 5000, {"quality": 85}), ("PNG", 3000, {"compress_level": 1})],
)
def test_very_large_photo_is_scaled_down(
    grace_img: Image.Image, fmt: str, width: int, params: dict[str, int]
) -> None:
    """JPEG decodes reduced (draft mode); PNG decodes in full, then is resized."""
    big = grace_img.resize((width, round(width * grace_img.height / grace_img.width)))
    rgb = load_image(_encode(big, fmt, **params))
    assert max(rgb.shape[:2]) <= MAX_WORKING_SIDE
    assert max(rgb.shape[:2]) >= MAX_WORKING_SIDE * 0.9
    ratio = rgb.shape[0] / rgb.shape[1]
    assert ratio == pytest.approx(big.height / big.width, rel=0.01)
    _assert_upright_face(rgb)


@pytest.mark.parametrize("side", [7_000, 50_000])
def test_oversized_image_is_refused_quickly(side: int) -> None:
    """A few bytes that claim side x side pixels (a decompression bomb)."""
    started = time.perf_counter()
    with pytest.raises(InvalidImageError):
        load_image(png_declaring(side, side))
    assert time.perf_counter() - started < QUICK_S


def test_oversized_image_message_names_the_size() -> None:
    with pytest.raises(InvalidImageError, match="pixels"):
        load_image(png_declaring(50_000, 50_000))


# --- which face ------------------------------------------------------------------------


def test_largest_of_two_faces_is_chosen(
    grace_img: Image.Image, grace_face: face.FaceLandmarks
) -> None:
    small = Image.open(astronaut_photo()).convert("RGB").resize((300, 300))
    canvas = Image.new("RGB", (small.width + grace_img.width, grace_img.height), GRAY)
    canvas.paste(small, (0, grace_img.height - small.height))
    canvas.paste(grace_img, (small.width, 0))
    lm = face.detect_landmarks(load_image(_encode(canvas, "PNG")))
    assert lm.oval_box[0] > small.width, "picked the astronaut, the smaller face"
    assert lm.face_height == pytest.approx(grace_face.face_height, rel=0.05)


def test_small_face_in_a_big_canvas_is_found(grace_img: Image.Image) -> None:
    """Grace at 1/6 of a 3000 px canvas: too small for the mesh alone, found via the detector."""
    canvas_side = 3000
    height = canvas_side // 6
    small = grace_img.resize((round(height * grace_img.width / grace_img.height), height))
    canvas = Image.new("RGB", (canvas_side, canvas_side), GRAY)
    left, top = 1200, 1800
    canvas.paste(small, (left, top))
    rgb = load_image(_encode(canvas, "JPEG", quality=90))
    lm = _assert_upright_face(rgb)
    scale = rgb.shape[1] / canvas_side
    cx = (lm.oval_box[0] + lm.oval_box[2]) / 2 / scale
    cy = (lm.oval_box[1] + lm.oval_box[3]) / 2 / scale
    assert left < cx < left + small.width
    assert top < cy < top + small.height


# --- no face, bad files ----------------------------------------------------------------


def _gradient() -> bytes:
    ramp = np.linspace(0, 255, 400, dtype=np.float32)
    rgb = np.stack([np.tile(ramp, (300, 1))] * 3, axis=-1).astype(np.uint8)
    return _encode(Image.fromarray(rgb), "PNG")


def _skimage(name: str) -> bytes:
    return (astronaut_photo().parent / name).read_bytes()


@pytest.mark.parametrize(
    "make",
    [_gradient, lambda: _skimage("coffee.png"), lambda: _skimage("rocket.jpg")],
    ids=["gradient", "coffee", "rocket"],
)
def test_no_face(make: Callable[[], bytes]) -> None:
    rgb = load_image(make())
    with pytest.raises(NoFaceError):
        face.detect_landmarks(rgb)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("text", "not an image"),
        ("half_jpeg", "damaged or truncated"),
        ("empty", "empty"),
        ("first_bytes_of_png", None),
    ],
)
def test_bad_files(grace: Path, astronaut: Path, case: str, message: str | None) -> None:
    jpeg = grace.read_bytes()
    data = {
        "text": b"Hallo, ich bin kein Bild.\n" * 20,
        "half_jpeg": jpeg[: len(jpeg) // 2],
        "empty": b"",
        "first_bytes_of_png": astronaut.read_bytes()[:64],
    }[case]
    with pytest.raises(InvalidImageError) as caught:
        load_image(data)
    if message:
        assert message in caught.value.message


# --- framing ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [256, 512])
def test_square_crop_keeps_landmarks_on_the_face(
    grace: Path, grace_face: face.FaceLandmarks, size: int
) -> None:
    rgb = load_image(grace)
    portrait = face.frame_portrait(rgb, grace_face, size, "square")
    assert portrait.rgb.shape == (size, size, 3)
    again = face.detect_landmarks(portrait.rgb)
    error = np.linalg.norm(again.xy - portrait.landmarks.xy, axis=1)
    assert float(np.median(error)) < 0.03 * again.face_height
    # head and shoulders: the face takes a bit less than half the frame height
    assert 0.25 < portrait.landmarks.face_height / size < 0.5


@pytest.mark.parametrize(
    ("size", "expected"),
    [(256, (256, 218)), (300, (300, 256)), (511, (510, 436))],
)
def test_full_frame_keeps_the_aspect_with_even_sides(
    grace: Path, grace_face: face.FaceLandmarks, size: int, expected: tuple[int, int]
) -> None:
    rgb = load_image(grace)  # 600 high x 512 wide
    portrait = face.frame_portrait(rgb, grace_face, size, "full")
    h, w = portrait.rgb.shape[:2]
    assert (h, w) == expected
    assert h % 2 == 0 and w % 2 == 0
    again = face.detect_landmarks(portrait.rgb)
    error = np.linalg.norm(again.xy - portrait.landmarks.xy, axis=1)
    assert float(np.median(error)) < 0.03 * again.face_height

"""Photo intake written as the attack: formats, giant photos, bombs, and what they may cost.

Decodes whose memory or CPU time is the point run in a child process, measured by wait4.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import (
    WIDE_ATTACKS,
    astronaut_photo,
    png_declaring,
    progressive_scan_bomb,
    wide_png,
)
from facecast import face, image
from facecast.errors import FaceChoiceError, InvalidImageError
from facecast.options import RenderOptions
from facecast.pipeline import find_photo_faces, prepare_photo, render_talking_head
from facecast.safety import INPUT_SIZE, model_input

MIB = 1024 * 1024
GIANT_SIDES = (14_142, 10_607)
"""150 megapixels."""
GIANT_PEAK_MIB = 1024
"""A 150 MP JPEG must decode within 1 GB (issue 10)."""
ATTACK_PEAK_MIB = 300
"""Refusing a crafted file costs what importing the decoder costs, not what it declares."""
ATTACK_CPU_S = 2.0
"""Refusing must not decode: the progressive JPEG below costs several times this to decode."""


@dataclass(frozen=True)
class ChildRun:
    """What a child process printed and cost."""

    stdout: str
    returncode: int
    peak_mib: float
    cpu_s: float


PEAK_REPORT = """
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print("VmHWM", line.split()[1])
"""
"""Appended to every child: its own peak memory. (wait4's ru_maxrss would also count the
memory of this test process, which the child shared until it exec'd.)"""


def run_child(code: str) -> ChildRun:
    """Run Python code in a fresh interpreter; its peak memory and its CPU time."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code) + PEAK_REPORT],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    with process.stdout:
        output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = output.splitlines()
    peak_kib = [int(line.split()[1]) for line in lines if line.startswith("VmHWM ")]
    stdout = "\n".join(line for line in lines if not line.startswith("VmHWM "))
    return ChildRun(
        stdout,
        process.returncode,
        peak_kib[0] / 1024 if peak_kib else float("inf"),
        usage.ru_utime + usage.ru_stime,
    )


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


@pytest.fixture(scope="module")
def grace_img(grace: Path) -> Image.Image:
    return Image.open(grace).convert("RGB")


@pytest.fixture(scope="module")
def giant_jpeg(tmp_path_factory: pytest.TempPathFactory, grace: Path) -> Path:
    """A 150 MP baseline JPEG of Grace Hopper (made in a child, so this process stays small)."""
    path = tmp_path_factory.mktemp("giant") / "giant.jpg"
    made = run_child(
        f"""
        from PIL import Image
        big = Image.open({str(grace)!r}).convert("RGB")
        big = big.resize({GIANT_SIDES!r}, Image.Resampling.BILINEAR)
        big.save({str(path)!r}, "JPEG", quality=40)
        """
    )
    assert made.returncode == 0, made.stdout
    return path


# --- formats ---------------------------------------------------------------------------


def test_heic_decodes_upright(grace_img: Image.Image) -> None:
    """HEIC, the iPhone's format, stored on its side with an EXIF orientation."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    exif = Image.Exif()
    exif[image.EXIF_ORIENTATION] = 6  # turn 90 degrees clockwise to view
    data = _encode(grace_img.rotate(90, expand=True), "HEIF", quality=85, exif=exif.tobytes())
    photo = image.load_photo(data)
    assert photo.format == "HEIF"
    assert (photo.width, photo.height) == grace_img.size
    assert photo.rgb.shape == (grace_img.height, grace_img.width, 3)
    found = face.find_faces(photo.rgb)
    assert found.rotation == 0 and found.faces
    difference = np.abs(photo.rgb.astype(int) - np.asarray(grace_img, dtype=int)).mean()
    assert difference < 8, "the HEIC decodes to other pixels than were encoded"


def test_multi_picture_jpeg_is_a_jpeg(grace_img: Image.Image) -> None:
    """Some phones store a second picture after the first (MPO): decoded reduced, as JPEG."""
    big = grace_img.resize((2560, 3000))
    buf = io.BytesIO()
    big.save(buf, "MPO", save_all=True, append_images=[grace_img])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    photo = image.load_photo(buf.getvalue())
    assert photo.format == "JPEG" and image.inspect(buf.getvalue()).extension == "jpg"
    assert (photo.width, photo.height) == (2560, 3000)
    assert max(photo.rgb.shape[:2]) == image.MAX_WORKING_SIDE


def test_giant_jpeg_decodes_reduced_within_a_gigabyte(giant_jpeg: Path) -> None:
    run = run_child(
        f"""
        from facecast.image import load_photo
        photo = load_photo({str(giant_jpeg)!r})
        print(photo.width, photo.height, *photo.rgb.shape)
        """
    )
    assert run.returncode == 0, run.stdout
    width, height, rows, cols, _ = (int(v) for v in run.stdout.split())
    assert (width, height) == GIANT_SIDES
    assert max(rows, cols) == image.MAX_WORKING_SIDE
    assert run.peak_mib < GIANT_PEAK_MIB, f"{run.peak_mib:.0f} MiB"
    print(f"150 MP JPEG: peak {run.peak_mib:.0f} MiB, {run.cpu_s:.2f} s CPU")


# --- attacks ---------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), WIDE_ATTACKS)
def test_wide_greyscale_png_is_refused_cheaply(tmp_path: Path, width: int, height: int) -> None:
    """The worker's path (load_photo, then the screen) refuses before any pixel is made."""
    path = tmp_path / "wide.png"
    path.write_bytes(wide_png(width, height))
    run = run_child(
        f"""
        from pathlib import Path
        from facecast.errors import InvalidImageError
        from facecast.image import load_photo
        try:
            load_photo(Path({str(path)!r}))
        except InvalidImageError as exc:
            print("refused:", exc.message)
        """
    )
    assert "refused:" in run.stdout, run.stdout
    assert run.peak_mib < ATTACK_PEAK_MIB and run.cpu_s < ATTACK_CPU_S, run


def test_wide_photo_within_the_caps_is_screened_at_model_size() -> None:
    """A 4:1 photo passes; screening it costs the model's input, not the longest side squared."""
    run = run_child(
        """
        import io, resource
        from PIL import Image
        from facecast.image import load_photo
        from facecast.safety import model_input
        buf = io.BytesIO()
        Image.effect_noise((8000, 2000), 60).save(buf, "PNG")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        photo = load_photo(buf.getvalue())
        tensor = model_input(photo.rgb)
        print(*photo.rgb.shape, *tensor.shape)
        """
    )
    assert run.returncode == 0, run.stdout
    assert run.stdout.split() == ["512", "2048", "3", "1", "3", "320", "320"]
    assert run.peak_mib < ATTACK_PEAK_MIB, f"{run.peak_mib:.0f} MiB"


def test_screen_input_pads_after_scaling() -> None:
    wide = np.full((100, 400, 3), 255, np.uint8)
    tensor = model_input(wide)
    assert tensor.shape == (1, 3, INPUT_SIZE, INPUT_SIZE)
    assert tensor[0, :, : INPUT_SIZE // 4 - 1].min() == 1.0  # the photo, at the top
    assert tensor[0, :, INPUT_SIZE // 4 + 1 :].max() == 0.0  # padding below, as nudenet pads


def test_progressive_jpeg_with_hundreds_of_scans_is_refused(
    tmp_path: Path, grace_img: Image.Image
) -> None:
    path = tmp_path / "scans.jpg"
    path.write_bytes(progressive_scan_bomb(grace_img))
    # The marker walk itself stops at the scan limit (it no longer counts them all).
    with pytest.raises(InvalidImageError, match="scans"):
        image.jpeg_layout(path.read_bytes())
    run = run_child(
        f"""
        from pathlib import Path
        from facecast.errors import InvalidImageError
        from facecast.image import load_photo
        try:
            load_photo(Path({str(path)!r}))
        except InvalidImageError as exc:
            print("refused:", exc.message)
        """
    )
    assert "scans" in run.stdout, run.stdout
    assert run.cpu_s < ATTACK_CPU_S and run.peak_mib < ATTACK_PEAK_MIB, run


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (png_declaring(12_000, 12_000), "decompression bomb"),
        (png_declaring(60_000, 60_000), "pixels"),
        (png_declaring(19_000, 4_000), "4 times"),
    ],
    ids=["bomb", "too-many-pixels", "aspect"],
)
def test_declared_sizes_are_refused_before_decoding(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        image.load_photo(data)


def test_declared_bombs_cost_nothing_to_refuse(tmp_path: Path) -> None:
    """Refusal reads headers only (Pillow's PNG getexif alone would decode 60000 x 60000)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(60_000, 60_000))
    run = run_child(
        f"""
        from pathlib import Path
        from facecast.errors import InvalidImageError
        from facecast.image import inspect
        try:
            inspect(Path({str(path)!r}))
        except InvalidImageError as exc:
            print("refused:", exc.message)
        """
    )
    assert "refused:" in run.stdout, run.stdout
    assert run.peak_mib < ATTACK_PEAK_MIB and run.cpu_s < ATTACK_CPU_S, run


def test_png_too_large_to_decode_whole_is_refused() -> None:
    """PNG has no reduced decode: its pixels must fit the decode budget (noise: a real size)."""
    side = 9_000  # 81 MP RGB = 243 MB in the file's pixels, 324 MB decoded as RGBA
    header = image.PhotoInfo("PNG", side, side, "RGBA", file_bytes=side * side)
    with pytest.raises(InvalidImageError, match="JPEG"):
        image._check_full_decode(header)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "HEIF", "AVIF"])
def test_cut_files_are_refused_without_decoding(grace_img: Image.Image, fmt: str) -> None:
    """What the API checks: a file cut anywhere is refused from its structure alone."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    whole = _encode(grace_img, fmt)
    assert image.inspect(whole).format == fmt
    for cut in (len(whole) // 2, len(whole) - 10, len(whole) - 1):
        with pytest.raises(InvalidImageError, match="damaged"):
            image.inspect(whole[:cut])


def test_png_with_a_damaged_byte_is_refused(astronaut: Path) -> None:
    flipped = bytearray(astronaut.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    with pytest.raises(InvalidImageError, match="damaged"):
        image.inspect(bytes(flipped))


# --- orientation and faces -------------------------------------------------------------


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_photo_on_its_side_gets_an_upright_video(
    tmp_path: Path, grace_img: Image.Image, silence_wav: Path, degrees: int
) -> None:
    """No EXIF orientation: the face search turns the photo until the face stands upright."""
    sideways = _encode(grace_img.rotate(degrees, expand=True), "JPEG", quality=92)
    output = tmp_path / "upright.mp4"
    render_talking_head(sideways, output, audio=silence_wav, options=RenderOptions(size=256))
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    landmarks = face.detect_landmarks(frame)
    chin, forehead = landmarks.xy[face.CHIN], landmarks.xy[face.FOREHEAD]
    assert chin[1] - forehead[1] > 2 * abs(chin[0] - forehead[0]), "the video is not upright"
    assert find_photo_faces(sideways).rotation == degrees


@pytest.fixture(scope="module")
def two_faces(grace_img: Image.Image) -> tuple[bytes, tuple[int, int], tuple[int, int]]:
    """Grace (made grey) on the left, the astronaut (in colour) on the right; their centres."""
    astronaut = Image.open(astronaut_photo()).convert("RGB").resize((560, 560))
    canvas = Image.new("RGB", (grace_img.width + astronaut.width, 600), (128, 128, 128))
    canvas.paste(grace_img.convert("L").convert("RGB"), (0, 0))
    canvas.paste(astronaut, (grace_img.width, 20))
    grace_centre = (grace_img.width // 2, 250)
    astronaut_centre = (grace_img.width + astronaut.width // 2, 20 + astronaut.height // 3)
    return _encode(canvas, "PNG"), grace_centre, astronaut_centre


def _colourful(portrait_rgb: np.ndarray) -> bool:
    """True for the astronaut's crop: the grey Grace has no colour around her face."""
    h, w = portrait_rgb.shape[:2]
    centre = portrait_rgb[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].astype(int)
    return float((centre.max(axis=2) - centre.min(axis=2)).mean()) > 10


def test_face_choice_picks_the_named_face(
    two_faces: tuple[bytes, tuple[int, int], tuple[int, int]],
) -> None:
    data, grace_centre, astronaut_centre = two_faces
    found = find_photo_faces(data)
    assert (found.width, found.height, found.rotation) == (1072, 600, 0)
    assert len(found.boxes) == 2
    areas = [(b.x1 - b.x0) * (b.y1 - b.y0) for b in found.boxes]
    assert areas[0] >= areas[1], "faces are listed largest first"
    photo = image.load_photo(data)
    by_index = [
        prepare_photo(photo, RenderOptions(size=256, face_index=i)).portrait.rgb for i in (0, 1)
    ]
    assert _colourful(by_index[0]) != _colourful(by_index[1]), "both choices gave one face"
    for point, colourful in ((grace_centre, False), (astronaut_centre, True)):
        chosen = prepare_photo(photo, RenderOptions(size=256, face_at=point)).portrait.rgb
        assert _colourful(chosen) == colourful, f"face_at={point} chose the other face"
    for box, rgb in zip(found.boxes, by_index, strict=True):
        centre = ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)
        at = prepare_photo(photo, RenderOptions(size=256, face_at=centre)).portrait.rgb
        assert np.array_equal(at, rgb), "a box's centre does not choose that box's face"
    with pytest.raises(FaceChoiceError):
        prepare_photo(photo, RenderOptions(face_index=2))
    with pytest.raises(FaceChoiceError):
        prepare_photo(photo, RenderOptions(face_at=(5.0, 590.0)))


def test_cli_lists_faces_chooses_one_and_warns_on_stderr(
    tmp_path: Path,
    grace_img: Image.Image,
    silence_wav: Path,
    two_faces: tuple[bytes, tuple[int, int], tuple[int, int]],
) -> None:
    facecast = Path(sys.executable).with_name("facecast")
    photo = tmp_path / "two.png"
    photo.write_bytes(two_faces[0])
    listed = subprocess.run(
        [facecast, "faces", "--image", photo], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert "photo 1072 x 600: 2 face(s)" in listed.stdout
    assert "--face 0:" in listed.stdout and "--face 1:" in listed.stdout
    small = Image.new("RGB", (600, 600), (128, 128, 128))
    small.paste(grace_img.resize((85, 100)), (250, 250))
    small.save(tmp_path / "small.png")
    args: list[str | Path] = [
        "render",
        "--audio",
        silence_wav,
        "-o",
        tmp_path / "out.mp4",
        "--size",
        "512",
    ]
    rendered = subprocess.run(
        [facecast, *args, "--image", tmp_path / "small.png", "--face", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert [line for line in rendered.stderr.splitlines() if line.startswith("warning:")]
    refused = subprocess.run(
        [facecast, *args, "--image", photo, "--face", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    # A "note:" on the expected time may come first on a slow (loaded) host.
    said = [line for line in refused.stderr.strip().splitlines() if not line.startswith("note:")]
    assert said == [
        "error: There is no face 2: the photo shows 2 face(s), numbered from 0, largest first."
    ]


def test_small_face_warns_instead_of_a_silent_blur(grace: Path, grace_img: Image.Image) -> None:
    small = grace_img.resize((85, 100))
    canvas = Image.new("RGB", (600, 600), (128, 128, 128))
    canvas.paste(small, (250, 250))
    photo = _encode(canvas, "PNG")
    prepared = prepare_photo(photo, RenderOptions(size=512, restore=False))
    assert prepared.warnings and "blurred" in prepared.warnings[0]
    restored = prepare_photo(photo, RenderOptions(size=512))  # Real-ESRGAN, where installed
    assert restored.warnings and "photo" in restored.warnings[0]
    assert not prepare_photo(grace, RenderOptions(size=512)).warnings

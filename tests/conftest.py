"""Engine fixtures: the real portraits, and clips rendered once per session for reuse."""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _measure import Clip, measure_clip
from facecast.audio import AudioTrack, save_wav
from facecast.pipeline import RenderOptions, render_talking_head

pytest_plugins = ["conftest_service"]

SPEECH_TEXT = "Hallo. Wie geht es dir heute? Ich mache jetzt eine kurze Pause. Mama kommt morgen."
"""About 5 s of German from espeak, 6.8 s from Pico (the default voice), with pauses between
the sentences."""
LIPSYNC_SIZE = 512
"""Lip and eye checks need this size. At 256 the face is ~90 px high: the mesh already reads
the astronaut's closed smiling mouth as ~1 % open, and H.264 at CRF 23 adds ~0.7 % more."""
SILENCE_SECONDS = 2.5
SILENCE_RATE = 16_000
PHOTO_NAMES = ("grace", "astronaut")
WIDE_ATTACKS = ((20_000, 2_000), (30_000, 1_333))
"""Greyscale PNGs of about 39 KB that cost the worker 1.7 and 3.6 GB before (issue 11 #1)."""
REPEATED_SCANS = 400


def grace_photo() -> Path:
    """Grace Hopper, from matplotlib's sample data: glasses, cap, closed-mouth smile."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def astronaut_photo() -> Path:
    """Eileen Collins, from scikit-image's data: a wide smile with the teeth showing."""
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


PHOTOS: dict[str, Callable[[], Path]] = {"grace": grace_photo, "astronaut": astronaut_photo}


@pytest.fixture(scope="session")
def grace() -> Path:
    return grace_photo()


@pytest.fixture(scope="session")
def astronaut() -> Path:
    return astronaut_photo()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def silence_wav(clip_dir: Path) -> Path:
    """2.5 s of digital silence as a 16-bit WAV file."""
    path = clip_dir / "silence.wav"
    samples = np.zeros(round(SILENCE_SECONDS * SILENCE_RATE), np.float32)
    save_wav(AudioTrack(samples, SILENCE_RATE), path)
    return path


@pytest.fixture(scope="session", params=PHOTO_NAMES)
def text_clip(request: pytest.FixtureRequest, clip_dir: Path) -> Clip:
    """SPEECH_TEXT spoken by each photo at 512 x 512, 25 fps, measured frame by frame."""
    name: str = request.param
    output = clip_dir / f"text-{name}.mp4"
    # Neutral: these clips check that the lips close in pauses; the astronaut's kept smile
    # (the default, expression=keep) is checked in tests/test_expression.py.
    options = RenderOptions(size=LIPSYNC_SIZE, expression="neutral")
    result = render_talking_head(PHOTOS[name](), output, text=SPEECH_TEXT, options=options)
    return measure_clip(name, result, options.fps)


@pytest.fixture(scope="session", params=PHOTO_NAMES)
def silence_clip(request: pytest.FixtureRequest, clip_dir: Path, silence_wav: Path) -> Clip:
    """Each photo animated over the silent WAV at 512 x 512."""
    name: str = request.param
    output = clip_dir / f"silence-{name}.mp4"
    # Neutral: these clips check that the lips close in pauses; the astronaut's kept smile
    # (the default, expression=keep) is checked in tests/test_expression.py.
    options = RenderOptions(size=LIPSYNC_SIZE, expression="neutral")
    result = render_talking_head(PHOTOS[name](), output, audio=silence_wav, options=options)
    return measure_clip(name, result, options.fps)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header declares width x height pixels (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _saved(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def progressive_scan_bomb(grace_img: Image.Image) -> bytes:
    """A 6000 x 6000 progressive JPEG whose smallest AC scan is repeated hundreds of times."""
    data = _saved(grace_img.resize((6000, 6000)), "JPEG", progressive=True, quality=75)
    starts = [m.start() for m in re.finditer(rb"\xff\xda", data)]
    ends = [*starts[1:], len(data) - 2]
    size, start = min((end - begin, begin) for begin, end in zip(starts, ends, strict=True))
    return data[:-2] + data[start : start + size] * REPEATED_SCANS + b"\xff\xd9"


def wide_png(width: int, height: int) -> bytes:
    """A flat greyscale PNG: tens of kilobytes for tens of megapixels."""
    return _saved(Image.new("L", (width, height), 128), "PNG", optimize=True)

"""Cheap checks of request inputs, done in the API before a job is queued.

The engine checks everything again in the worker; these catch the obvious early and keep
hostile uploads out of the queue.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from facecast.audio import format_duration, probe_audio
from facecast.errors import (
    AudioTooLongError,
    FaceChoiceError,
    InvalidAudioError,
    InvalidTextError,
)
from facecast.image import PhotoInfo, inspect
from facecast.service.errors import InvalidRequestError

AUDIO_EXTENSIONS = frozenset(
    {"wav", "mp3", "m4a", "aac", "ogg", "oga", "opus", "flac", "webm", "mp4"}
)


AUDIO_READ_ERRORS = (av.FFmpegError, OSError, ValueError, IndexError)


def check_image(path: Path | BinaryIO, max_pixels: int) -> str:
    """Refuse what is not a whole JPEG/PNG/WebP/HEIC photo within the limits; its extension.

    Nothing is decoded into pixels here (see facecast.image.inspect): the declared size, the
    aspect ratio and the cost of decoding are checked from the headers, JPEG markers are walked
    to the end, PNG chunks are checked and their image data inflated and counted. Memory stays
    at the file's size whatever it declares; the worker decodes at reduced scale.
    """
    return inspect_image(path, max_pixels).extension


def inspect_image(path: Path | BinaryIO, max_pixels: int) -> PhotoInfo:
    """`check_image`, answering with what the headers say (size, orientation)."""
    data = path.read_bytes() if isinstance(path, Path) else path.read()
    return inspect(data, max_pixels=max_pixels)


def check_point_in(point: tuple[float, float] | None, size: tuple[int, int]) -> None:
    """400 (invalid_face_choice) for a `face_at` point outside the upright photo of `size`,
    known from its headers: refused at submit, not after the job waited for a worker."""
    if point is None:
        return
    x, y = point
    width, height = size
    if not (0 <= x <= width and 0 <= y <= height):
        raise FaceChoiceError(
            f"The point ({x:g}, {y:g}) is outside the photo, which is {width} x {height} "
            "pixels upright."
        )


def warm_up_image_decoding() -> None:
    """Load the image plugins (HEIC included) now, not in the first request."""
    sample = io.BytesIO()
    Image.new("RGB", (16, 16)).save(sample, "JPEG")
    check_image(io.BytesIO(sample.getvalue()), 16 * 16)


def check_audio(path: Path, max_seconds: float) -> float | None:
    """Refuse uploads with no audio stream, a sample rate or channel count outside the
    limits (see facecast.audio.probe_audio), or that declare more than `max_seconds`; the
    declared length in seconds (None when the container does not say).

    Nothing is decoded. The worker counts the decoded samples again, so a lying header
    gains nothing.
    """
    probe_audio(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            seconds = None
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
    except AUDIO_READ_ERRORS as exc:
        raise InvalidAudioError(
            "The audio could not be read; it may be damaged or in an unsupported format."
        ) from exc
    if seconds is not None and seconds > max_seconds:
        raise AudioTooLongError(
            f"The audio is {format_duration(seconds)} long; the limit is "
            f"{format_duration(max_seconds)}."
        )
    return seconds


def check_fields(names: Iterable[str], allowed: frozenset[str]) -> None:
    """Refuse form fields the route does not know, and fields sent twice (422)."""
    seen: set[str] = set()
    for name in names:
        if name not in allowed:
            raise InvalidRequestError(f"Unknown form field {name[:64]!r}.")
        if name in seen:
            raise InvalidRequestError(f"The form field {name!r} was sent more than once.")
        seen.add(name)


def audio_file_name(filename: str | None) -> str:
    """A safe stored name for an uploaded audio file, keeping a known extension."""
    extension = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    return f"audio_upload.{extension if extension in AUDIO_EXTENSIONS else 'bin'}"


def even(value: int) -> int:
    """Video encoders want even frame sizes: round down."""
    return value - value % 2


def clean_text(text: str | None, max_chars: int) -> str:
    """Stripped text, refused when empty or too long."""
    cleaned = (text or "").strip()
    if not cleaned:
        raise InvalidTextError("The text is empty.")
    if len(cleaned) > max_chars:
        raise InvalidTextError(f"The text has {len(cleaned)} characters; the limit is {max_chars}.")
    return cleaned

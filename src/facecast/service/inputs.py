"""Cheap checks of request inputs, done in the API before a job is queued.

The engine checks everything again in the worker; these catch the obvious early and keep
hostile uploads out of the queue.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from facecast.audio import format_duration
from facecast.errors import (
    AudioTooLongError,
    InvalidAudioError,
    InvalidImageError,
    InvalidTextError,
)
from facecast.service.errors import InvalidRequestError

IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
AUDIO_EXTENSIONS = frozenset(
    {"wav", "mp3", "m4a", "aac", "ogg", "oga", "opus", "flac", "webm", "mp4"}
)


IMAGE_READ_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    MemoryError,
)
AUDIO_READ_ERRORS = (av.FFmpegError, OSError, ValueError, IndexError)


def check_image(path: Path | BinaryIO, max_pixels: int) -> str:
    """Refuse what is not a whole JPEG/PNG/WebP photo of sane size; returns the file extension.

    The declared size is checked before any pixel is decoded (a tiny file may declare 50000 x
    50000 pixels); then every byte of image data is decoded, so truncated files are caught here.
    """
    unreadable = "The photo could not be read; send a whole JPEG, PNG or WebP file."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image_format, (width, height) = image.format, image.size
                if image_format not in IMAGE_FORMATS:
                    raise InvalidImageError(
                        f"Photos in {image_format} format are not supported; send JPEG, PNG or "
                        "WebP."
                    )
                if width * height > max_pixels:
                    raise InvalidImageError(
                        f"The photo has {width}x{height} pixels, more than the limit of "
                        f"{max_pixels}."
                    )
                if image_format == "JPEG":
                    # Decoding at 1/8 scale still reads every entropy-coded block, so truncation
                    # is caught, at a fraction of the cost of a full decode.
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except InvalidImageError:
        raise
    except IMAGE_READ_ERRORS as exc:
        raise InvalidImageError(unreadable) from exc
    return IMAGE_FORMATS[image_format]


def warm_up_image_decoding() -> None:
    """Load the image plugins and decoders now, not in the first request."""
    sample = io.BytesIO()
    Image.new("RGB", (16, 16)).save(sample, "JPEG")
    sample.seek(0)
    check_image(sample, 16 * 16)


def check_audio(path: Path, max_seconds: float) -> None:
    """Refuse uploads with no audio stream, or that declare more than `max_seconds`.

    The worker counts the decoded samples again, so a lying header gains nothing.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidAudioError("The audio upload has no sound track.")
            stream = container.streams.audio[0]
            seconds = None
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
    except InvalidAudioError:
        raise
    except AUDIO_READ_ERRORS as exc:
        raise InvalidAudioError(
            "The audio could not be read; it may be damaged or in an unsupported format."
        ) from exc
    if seconds is not None and seconds > max_seconds:
        raise AudioTooLongError(
            f"The audio is {format_duration(seconds)} long; the limit is "
            f"{format_duration(max_seconds)}."
        )


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

"""Cheap checks of request inputs, done in the API before a job is queued.

The engine checks everything again in the worker; these catch the obvious early and keep
hostile uploads out of the queue.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image

from facecast.errors import InvalidImageError, InvalidTextError

IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
AUDIO_EXTENSIONS = frozenset(
    {"wav", "mp3", "m4a", "aac", "ogg", "oga", "opus", "flac", "webm", "mp4"}
)


def check_image(path: Path, max_pixels: int) -> str:
    """Refuse what is not a JPEG/PNG/WebP photo of sane size; returns the file extension."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image_format, (width, height) = image.format, image.size
                image.verify()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(
            "The photo could not be read; send a JPEG, PNG or WebP file."
        ) from exc
    if image_format not in IMAGE_FORMATS:
        raise InvalidImageError(
            f"Photos in {image_format} format are not supported; send JPEG, PNG or WebP."
        )
    if width * height > max_pixels:
        raise InvalidImageError(
            f"The photo has {width}x{height} pixels, more than the limit of {max_pixels}."
        )
    return IMAGE_FORMATS[image_format]


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

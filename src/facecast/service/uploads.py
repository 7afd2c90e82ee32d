"""Checking what callers upload, in bounded slots: photos, face searches, voice samples.

Photo checks, face searches and voice-sample decodes hold a file in memory and take CPU: a few
at a time (`decode_concurrency`) keep the API's memory under its ceiling and leave cores for
everything else. A caller that finds no free slot in time gets 503 with Retry-After.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from facecast.config import Settings
from facecast.errors import BackendUnavailableError, UnsupportedLanguageError
from facecast.image import PhotoInfo
from facecast.options import RenderOptions
from facecast.service.errors import PayloadTooLargeError, ServiceBusyError
from facecast.service.facefinder import FaceFinder
from facecast.service.inputs import check_image, inspect_image
from facecast.service.schemas import FacesResult
from facecast.service.storage import Storage
from facecast.speech import registry as speech_registry
from facecast.speech.cloning import check_voice_sample_header, read_voice_sample

VOICE_SAMPLE = "voice_sample.wav"


class Uploads:
    """Checks of uploaded photos and voice samples, and face searches, each in a slot."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self._decoding = threading.BoundedSemaphore(settings.decode_concurrency)
        # Face searches run in one helper process: callers take turns.
        self._searching = threading.BoundedSemaphore(1)
        self.face_finder = FaceFinder(settings.max_image_pixels)

    @contextmanager
    def slot(self, slots: threading.BoundedSemaphore | None = None) -> Iterator[None]:
        """A slot for decoding work (`decode_concurrency` of them); 503 when none frees in
        time."""
        wait = self.settings.decode_wait_seconds
        slots = self._decoding if slots is None else slots
        if not slots.acquire(timeout=wait):
            raise ServiceBusyError(
                "The server is busy checking other photos; try again shortly.",
                retry_after=max(1, math.ceil(wait / 4)),
            )
        try:
            yield
        finally:
            slots.release()

    def check_photo(self, path: Path) -> PhotoInfo:
        """Check a stored upload (see inputs.check_image) in a decode slot; what it declares."""
        with self.slot():
            return inspect_image(path, self.settings.max_image_pixels)

    def find_faces(self, upload: BinaryIO) -> FacesResult:
        """The faces in an uploaded photo with their boxes, largest first (POST /faces)."""
        limit = self.settings.max_upload_bytes
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLargeError(f"The photo is larger than {limit} bytes.")
        with self.slot():
            check_image(io.BytesIO(data), self.settings.max_image_pixels)
        with self.slot(self._searching):
            return self.face_finder.find(data)

    def preview(self, upload: BinaryIO, options: RenderOptions) -> bytes:
        """The first frame of the video `options` would make of the photo, as PNG (POST
        /preview); made in the face finder's helper, which keeps the rigged photo warm."""
        limit = self.settings.max_upload_bytes
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLargeError(f"The photo is larger than {limit} bytes.")
        with self.slot():
            check_image(io.BytesIO(data), self.settings.max_image_pixels)
        with self.slot(self._searching):
            return self.face_finder.preview(data, options)

    def cloning_available(self) -> bool:
        """True when a voice-cloning backend is installed, with its weights, on this server."""
        return speech_registry.cloning_backend() is not None

    def cloner(self, lang: str) -> str:
        """Name of the backend that clones voices in `lang`; BackendUnavailableError when there
        is none, UnsupportedLanguageError when it does not speak `lang`."""
        name = speech_registry.cloning_backend()
        backend = speech_registry.REGISTRY.peek(name) if name is not None else None
        if name is None or backend is None:
            raise BackendUnavailableError(
                "Voice cloning is not available on this server: no cloning backend (XTTS with "
                "its weights) is installed. Send the request without voice_clone_wav to use a "
                "built-in voice."
            )
        spoken = backend.languages()
        code = lang.lower().replace("_", "-")
        if code not in spoken and code.split("-")[0] not in {s.split("-")[0] for s in spoken}:
            raise UnsupportedLanguageError(
                f"Voice cloning ({name}) does not speak {lang!r}. It speaks: {', '.join(spoken)}."
            )
        return name

    def save_voice_sample(self, job_id: str, sample: BinaryIO) -> str:
        """Store a voice sample and check it is 3-30 s of audio; its content key.

        The header is checked first (rate, channels, stated length: nothing decoded), then the
        decode runs in a decode slot like a photo's, so a few at a time bound the API's memory.
        """
        key = self.storage.save_stream(job_id, VOICE_SAMPLE, sample, self.settings.max_upload_bytes)
        path = self.storage.path(job_id, VOICE_SAMPLE)
        check_voice_sample_header(path)
        with self.slot():
            read_voice_sample(path)
        return key

    def close(self) -> None:
        """Stop the face search helper."""
        self.face_finder.close()

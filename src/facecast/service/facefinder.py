"""Face searches for POST /faces and first frames for POST /preview, run in a helper process
so that the API process stays light.

A search loads the engine's face mesh and decodes pixels: in the API process that added
several hundred megabytes (glibc keeps what each request thread freed). The helper is started
on the first search, keeps its mesh (and the photos it rigged for previews) warm, and is
replaced when it dies or overruns.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from facecast.options import RenderOptions
from facecast.service.errors import ServiceBusyError
from facecast.service.schemas import FacesResult

T = TypeVar("T")
SEARCH_TIMEOUT_S = 60.0
"""Longest a search may take, the helper's start-up included."""
RETRY_AFTER_S = 5
PNG_COMPRESSION = 1
"""zlib level of preview PNGs: level 1 is ~10 ms for 512 px, the default (6) several times that."""


def search(data: bytes, max_pixels: int) -> FacesResult:
    """Decode the photo and find its faces (runs in the helper process; the engine is imported
    there only, and the answer comes back as a schema the API knows)."""
    from facecast.face import photo_faces
    from facecast.image import load_photo

    found = photo_faces(load_photo(data, max_pixels=max_pixels))
    return FacesResult.model_validate(found.as_json())


def first_frame(data: bytes, options: RenderOptions, max_pixels: int) -> bytes:
    """The video's first frame as PNG (runs in the helper process, which keeps the rigged
    photo: the next preview of the same photo and framing is a single render)."""
    import io

    from PIL import Image

    from facecast.image import load_photo
    from facecast.pipeline import preview_frame

    frame = preview_frame(load_photo(data, max_pixels=max_pixels), options)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


class FaceFinder:
    """One helper process, started on first use; callers take turns (see JobService)."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self._pool: ProcessPoolExecutor | None = None

    def find(self, data: bytes) -> FacesResult:
        """The faces in `data`; the photo's own errors (InvalidImageError) pass through."""
        return self._run(search, data, self.max_pixels)

    def preview(self, data: bytes, options: RenderOptions) -> bytes:
        """The first frame of the video `options` would make of the photo `data`, as PNG;
        the photo's errors (no face, ...) pass through."""
        return self._run(first_frame, data, options, self.max_pixels)

    def _run(self, task: Callable[..., T], *args: object) -> T:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = self._pool.submit(task, *args)
        try:
            return future.result(timeout=SEARCH_TIMEOUT_S)
        except (BrokenProcessPool, FutureTimeout):
            self.close()  # a dead or stuck helper: the next search starts a fresh one
            raise ServiceBusyError(
                "The face search did not finish; try again shortly.", retry_after=RETRY_AFTER_S
            ) from None

    def close(self) -> None:
        """Stop the helper process, if one runs."""
        pool, self._pool = self._pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # a stuck search would make shutdown wait for it
            pool.shutdown(wait=True, cancel_futures=True)

"""Photo + text or audio -> talking-head MP4; runs without FastAPI or Celery.

The CLI and the worker share it.

    render_talking_head(image, output, *, text=None, audio=None, options=RenderOptions(),
                        progress=None, cancel=None, streams=()) -> RenderResult
    synthesize(text, lang="de", voice=None, backend="espeak") -> Speech

`progress(stage, fraction)` is called with stage names "speech", "audio", "face", "motion",
"render" (covers render+encode) and "done"; fraction is overall 0..1.
`cancel()` returning True makes the pipeline raise facecast.errors.CanceledError soon after.
Bad input raises a facecast.errors.FacecastError subclass (its `.code` is the API error code).
Speech is synthesised on a second thread while the photo is analysed; the analysed photo (face
landmarks and the renderer's per-photo fields) is kept per process by content hash, so another
job with the same photo starts rendering at once. `streams` (video.StreamTarget) get a live
copy of the video (HLS, MPEG-TS) while it renders.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from facecast import face, motion
from facecast.audio import AudioTrack, load_audio
from facecast.config import get_settings
from facecast.errors import FacecastError, InvalidTextError
from facecast.options import RenderOptions
from facecast.progress import CancelCheck, ProgressCallback, Reporter
from facecast.render import Animator, get_renderer
from facecast.speech import PhonemeEvent, Speech
from facecast.speech.registry import get_backend
from facecast.video import StreamTarget, VideoWriter

OUTPUT_AUDIO_RATE = 48_000
"""Uploaded recordings are decoded at this rate for the output's sound track."""
AI_NOTICE = "AI-generated talking-head video made with facecast from a single photo."
PROGRESS_EVERY = 5
"""Frames between progress reports (and cancel checks) while rendering."""
BLAS_THREADS = 1
"""BLAS threads while rendering (see render_talking_head)."""
# Share of the whole job each stage takes, for progress reporting.
SPAN_SPEECH = (0.0, 0.08)
SPAN_FACE = (0.08, 0.14)
SPAN_MOTION = (0.14, 0.18)
SPAN_RENDER = (0.18, 1.0)
PREPARED_PHOTOS = 4
"""Analysed photos each process keeps (a 512 px one holds about 8 MB of fields and images)."""
WATERMARK_ALPHA = 0.6
WATERMARK_SCALE = 1 / 1000
"""OpenCV font scale per pixel of frame height (about 2 % of the height)."""
WATERMARK_MARGIN = 0.02
"""Distance from the bottom-right corner, as a share of the frame height."""


@dataclass(frozen=True)
class RenderResult:
    """Where the video went and what it holds."""

    video: Path
    duration: float
    frames: int
    elapsed: float


def synthesize(
    text: str, lang: str = "de", voice: str | None = None, backend: str = "espeak"
) -> Speech:
    """Speak `text` with the named backend (text length is checked against the settings)."""
    limit = get_settings().max_text_chars
    if len(text) > limit:
        raise InvalidTextError(
            f"The text has {len(text)} characters; at most {limit} are accepted."
        )
    return get_backend(backend).synthesize(text, lang, voice)


def _speech_track(
    text: str | None, audio: Path | AudioTrack | None, options: RenderOptions
) -> tuple[AudioTrack, Sequence[PhonemeEvent]]:
    if (text is None) == (audio is None):
        raise FacecastError("Give either text to speak or an audio recording, not both or neither.")
    if text is not None:
        speech = synthesize(text, options.lang, options.voice, options.speech_backend)
        return speech.audio, speech.phonemes
    if isinstance(audio, AudioTrack):
        return audio, ()
    assert audio is not None
    track = load_audio(
        audio, max_seconds=get_settings().max_audio_seconds, sample_rate=OUTPUT_AUDIO_RATE
    )
    return track, ()


def prepare_portrait(image: Path | bytes, options: RenderOptions) -> face.Portrait:
    """Decode the photo, find the face and frame it for rendering."""
    rgb = face.load_image(image, max_pixels=get_settings().max_image_pixels)
    landmarks = face.detect_landmarks(rgb)
    # H.264 in yuv420p needs even sides: an odd size is rounded down.
    return face.frame_portrait(rgb, landmarks, options.size // 2 * 2, options.full_frame)


class PreparedPhotos:
    """Analysed photos by content hash (least recently used dropped first), for one process.

    An animator keeps a canvas it draws on, so one is lent to one render at a time; a render
    that finds its photo lent out prepares its own.
    """

    def __init__(self, capacity: int = PREPARED_PHOTOS) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, ...], Animator] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: tuple[str, ...]) -> Animator | None:
        """The animator kept for `key`, lent out until it is given back; None when none is."""
        with self._lock:
            return self._items.pop(key, None)

    def give(self, key: tuple[str, ...], animator: Animator) -> None:
        """Keep `animator` for later renders of the same photo and options."""
        with self._lock:
            self._items[key] = animator
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


@lru_cache(maxsize=1)
def prepared_photos() -> PreparedPhotos:
    """This process's analysed photos."""
    return PreparedPhotos()


def photo_key(image: Path | bytes, options: RenderOptions) -> tuple[str, ...]:
    """What an analysed photo depends on: the photo's bytes and the framing and renderer."""
    data = Path(image).read_bytes() if isinstance(image, str | Path) else image
    digest = hashlib.sha256(data).hexdigest()
    return (digest, str(options.size // 2 * 2), str(options.full_frame), options.renderer)


def prepare_animator(image: Path | bytes, options: RenderOptions) -> Animator:
    """Find the face and rig the photo for the renderer (see `prepared_photos` for reuse)."""
    return get_renderer(options.renderer).prepare(prepare_portrait(image, options))


def watermark_frame(frame: np.ndarray, text: str) -> np.ndarray:
    """A copy of the RGB frame with `text` blended into its bottom-right corner."""
    height, width = frame.shape[:2]
    scale = max(height * WATERMARK_SCALE, 0.3)
    thickness = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_w, _), baseline = cv2.getTextSize(text, font, scale, thickness)
    margin = max(2, round(height * WATERMARK_MARGIN))
    origin = (max(0, width - text_w - margin), height - margin - baseline)
    marked = frame.copy()
    cv2.putText(marked, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return cv2.addWeighted(marked, WATERMARK_ALPHA, frame, 1 - WATERMARK_ALPHA, 0)


def render_talking_head(
    image: Path | bytes,
    output: Path,
    *,
    text: str | None = None,
    audio: Path | AudioTrack | None = None,
    options: RenderOptions = RenderOptions(),
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    metadata: Mapping[str, str] | None = None,
    streams: Sequence[StreamTarget] = (),
) -> RenderResult:
    """Animate the face in `image` speaking `text` (synthesised) or `audio` (a file or a track).

    The MP4 is written next to `output` and moved into place only when complete, so a
    failed or canceled render never leaves a half-written file under that name. `streams`
    get the video live while it renders.
    """
    # The renderer multiplies small matrices: BLAS threads only spin and wait for each other
    # (on 2 cores a warm render took 0.76 s and 1.47 s of CPU with them, 0.55 s and 0.92 s
    # without), and they starve other workers on the same machine.
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return _render(image, output, text, audio, options, progress, cancel, metadata, streams)


def _render(
    image: Path | bytes,
    output: Path,
    text: str | None,
    audio: Path | AudioTrack | None,
    options: RenderOptions,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
    metadata: Mapping[str, str] | None,
    streams: Sequence[StreamTarget],
) -> RenderResult:
    started = time.perf_counter()
    report = Reporter(progress, cancel)
    report.stage("speech", *SPAN_SPEECH, 0.0)
    photos, key = prepared_photos(), photo_key(image, options)
    with ThreadPoolExecutor(1, thread_name_prefix="facecast-speech") as pool:
        speech = pool.submit(_speech_track, text, audio, options)
        try:
            report.stage("face", *SPAN_FACE, 0.0)
            animator = photos.take(key) or prepare_animator(image, options)
        finally:
            track, phonemes = speech.result()  # a speech error comes first, as without threads
    report.stage("motion", *SPAN_MOTION, 0.0)
    curves = motion.motion_curves(track, options.fps, phonemes=phonemes, seed=options.seed)
    report.stage("render", *SPAN_RENDER, 0.0)
    try:
        return _encode(animator, output, track, curves, options, report, metadata, streams, started)
    finally:
        photos.give(key, animator)


def _encode(
    animator: Animator,
    output: Path,
    track: AudioTrack,
    curves: motion.MotionCurves,
    options: RenderOptions,
    report: Reporter,
    metadata: Mapping[str, str] | None,
    streams: Sequence[StreamTarget],
    started: float,
) -> RenderResult:
    width, height = animator.size
    tags = {"comment": AI_NOTICE, "description": AI_NOTICE, **(metadata or {})}
    output = Path(output)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with VideoWriter(
            partial,
            fps=options.fps,
            width=width,
            height=height,
            audio=track,
            metadata=tags,
            streams=streams,
        ) as writer:
            for i in range(curves.n_frames):
                frame = animator.render(curves.frame(i))
                if options.watermark:
                    frame = watermark_frame(frame, options.watermark)
                writer.write(frame)
                if i % PROGRESS_EVERY == 0:
                    report.stage("render", *SPAN_RENDER, i / curves.n_frames)
        os.replace(partial, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    report.stage("done", *SPAN_RENDER, 1.0)
    return RenderResult(output, track.duration, curves.n_frames, time.perf_counter() - started)

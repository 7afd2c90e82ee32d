"""Photo + text or audio -> talking-head MP4; runs without FastAPI or Celery.

The CLI and the worker share it.

    render_talking_head(image, output, *, text=None, audio=None, options=RenderOptions(),
                        progress=None, cancel=None) -> RenderResult
    synthesize(text, lang="de", voice=None, backend="espeak") -> Speech

`progress(stage, fraction)` is called with stage names "speech", "audio", "face", "motion",
"render" (covers render+encode) and "done"; fraction is overall 0..1.
`cancel()` returning True makes the pipeline raise facecast.errors.CanceledError soon after.
Bad input raises a facecast.errors.FacecastError subclass (its `.code` is the API error code).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from facecast import accel, face, motion, post, restore
from facecast.audio import AudioTrack, load_audio
from facecast.config import get_settings
from facecast.errors import BackendUnavailableError, FacecastError, InvalidTextError
from facecast.options import RenderOptions
from facecast.progress import CancelCheck, ProgressCallback, Reporter
from facecast.registry import Capabilities
from facecast.render import get_renderer
from facecast.speech import PhonemeEvent, Speech
from facecast.speech.registry import get_backend
from facecast.video import VideoWriter

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
    rgb, landmarks = restore.maybe_restore(rgb, landmarks, options)
    # H.264 in yuv420p needs even sides: an odd size is rounded down.
    return face.frame_portrait(rgb, landmarks, options.size // 2 * 2, options.full_frame)


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


def post_steps(context: post.PostContext) -> tuple[list[post.FrameStep], int]:
    """The job's post-processing steps in order (refine, then upscale) and their batch size."""
    options = context.options
    names = [options.refine] if options.refine else []
    if options.upscale:
        names += post.for_role("upscale")[:1] or ["upscale"]
    backends = [post.REGISTRY.get(name) for name in names]
    batch = max([b.capabilities.batch_size for b in backends], default=1)
    return [b.prepare(context) for b in backends], batch


def check_cpu_time(capabilities: Capabilities, n_frames: int, options: RenderOptions) -> None:
    """Refuse a long clip for a GPU-class backend running on the CPU, unless forced."""
    if capabilities.device != "gpu" or options.force_cpu or accel.cuda_available():
        return
    seconds = n_frames / options.fps
    limit = get_settings().cpu_max_gpu_seconds
    if seconds > limit:
        cost = (capabilities.seconds_per_frame_cpu or 0.0) * n_frames
        raise BackendUnavailableError(
            f"This server has no GPU: {seconds:.1f} s of video would take about {cost / 60:.0f} "
            f"min on the CPU (limit {limit:g} s of video). Shorten it or force the CPU "
            "(--force-cpu / force_cpu=true)."
        )


def _marked(frame: np.ndarray, watermark: str | None) -> np.ndarray:
    return watermark_frame(frame, watermark) if watermark else frame


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
) -> RenderResult:
    """Animate the face in `image` speaking `text` (synthesised) or `audio` (a file or a track).

    The MP4 is written next to `output` and moved into place only when complete, so a
    failed or canceled render never leaves a half-written file under that name.
    """
    # The renderer multiplies small matrices: BLAS threads only spin and wait for each other
    # (on 2 cores a warm render took 0.76 s and 1.47 s of CPU with them, 0.55 s and 0.92 s
    # without), and they starve other workers on the same machine.
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return _render(image, output, text, audio, options, progress, cancel, metadata)


def _render(
    image: Path | bytes,
    output: Path,
    text: str | None,
    audio: Path | AudioTrack | None,
    options: RenderOptions,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
    metadata: Mapping[str, str] | None,
) -> RenderResult:
    started = time.perf_counter()
    report = Reporter(progress, cancel)
    report.stage("speech", *SPAN_SPEECH, 0.0)
    track, phonemes = _speech_track(text, audio, options)
    report.stage("face", *SPAN_FACE, 0.0)
    portrait = prepare_portrait(image, options)
    report.stage("motion", *SPAN_MOTION, 0.0)
    curves = motion.motion_curves(track, options.fps, phonemes=phonemes, seed=options.seed)
    report.stage("render", *SPAN_RENDER, 0.0)
    renderer = get_renderer(options.renderer)
    check_cpu_time(renderer.capabilities, curves.n_frames, options)
    animator = renderer.prepare(portrait)
    steps, post_batch = post_steps(post.PostContext(options, track, portrait))
    batch = max(renderer.capabilities.batch_size, post_batch)
    width, height = (side * (options.upscale or 1) for side in animator.size)
    tags = {"comment": AI_NOTICE, "description": AI_NOTICE, **(metadata or {})}
    output = Path(output)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with VideoWriter(
            partial, fps=options.fps, width=width, height=height, audio=track, metadata=tags
        ) as writer:
            for first in range(0, curves.n_frames, batch):
                count = min(batch, curves.n_frames - first)
                frames = animator.render_batch([curves.frame(first + k) for k in range(count)])
                for step in steps:
                    frames = step(frames, first)
                for frame in frames:
                    writer.write(_marked(frame, options.watermark))
                if batch > 1 or first % PROGRESS_EVERY == 0:
                    report.stage("render", *SPAN_RENDER, first / curves.n_frames)
        os.replace(partial, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    report.stage("done", *SPAN_RENDER, 1.0)
    return RenderResult(output, track.duration, curves.n_frames, time.perf_counter() - started)

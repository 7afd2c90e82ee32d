"""Photo + text or audio -> talking-head MP4; runs without FastAPI or Celery.

The CLI and the worker share it.

    render_talking_head(image, output, *, text=None, audio=None, options=RenderOptions(),
                        progress=None, cancel=None, streams=()) -> RenderResult
    synthesize(text, lang="de", voice=None, backend=None, voice_sample=None,
               prosody=Prosody()) -> Speech
    choose_voice(options) -> RenderOptions   (the default or named voice resolved)

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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from facecast import accel, face, motion, post, restore
from facecast.audio import AudioTrack, load_audio
from facecast.burnin import CaptionBurner
from facecast.captions import SIDECAR_SUFFIX, caption_file, cues, to_webvtt
from facecast.config import get_settings
from facecast.errors import BackendUnavailableError, FacecastError
from facecast.image import Photo, load_photo
from facecast.options import Key, RenderOptions
from facecast.progress import CancelCheck, ProgressCallback, Reporter
from facecast.rates import host_rates
from facecast.registry import Capabilities, Device
from facecast.render import REGISTRY as RENDERERS
from facecast.render import Animator, get_renderer
from facecast.speech import Speech, script
from facecast.speech.cloning import CloningBackend, read_voice_sample
from facecast.speech.limits import check_estimate
from facecast.speech.registry import choose_voice, get_backend, resolve_voice
from facecast.speech.transcript import transcript_words
from facecast.speech.voicing import NEUTRAL, Prosody, apply_prosody
from facecast.video import StreamTarget, VideoWriter, add_hls_subtitles

__all__ = ["RenderOptions", "choose_voice", "render_talking_head", "synthesize"]

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
MAX_ENLARGEMENT = 2.5
"""A face enlarged more than this from the photo to the video looks blurred: warn. Where
Real-ESRGAN is installed, the same faces are restored first (restore.RESTORE_BELOW)."""
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
    warnings: tuple[str, ...] = ()
    """What the caller should know about the result (a face enlarged into blur, ...)."""
    captions: Path | None = None
    """The caption file beside the video (WebVTT or SRT), when captions were asked for."""


@dataclass(frozen=True)
class PreparedPhoto:
    """The portrait ready to render, and warnings about it."""

    portrait: face.Portrait
    warnings: tuple[str, ...] = ()


def synthesize(
    text: str,
    lang: str = "de",
    voice: str | None = None,
    backend: str | None = None,
    voice_sample: Path | None = None,
    lexicon: str | None = None,
    prosody: Prosody = NEUTRAL,
    stop: Callable[[], bool] | None = None,
) -> Speech:
    """Speak `text`: the one entry every synthesis goes through (CLI, worker, renders).

    With `backend`, `voice` is that backend's own voice name (None: its voice for `lang`);
    without, `voice` is resolved as `--voice` spells it ("backend:voice", a backend, a
    plain voice name, or None for the language's default voice). The text is normalised for
    its language after the `lexicon`'s words (numbers, dates, abbreviations ... as words), cut
    at its pause marks (facecast.speech.script), its spoken length estimated and refused past
    FACECAST_MAX_AUDIO_SECONDS, and synthesis stops at that cap whatever the estimate said.
    With `voice_sample` the backend clones that voice. `prosody` (rate, pitch, volume) is
    applied last, to any backend's speech (a cloned voice keeps its character and is then
    changed); the phoneme timings follow the rate. `stop` is asked between chunks of
    synthesis: once it says so, CanceledError.
    """
    settings = get_settings()
    script.check_length(text, settings.max_text_chars)
    if backend is None:
        choice = resolve_voice(lang, voice)
        backend, voice = choice.backend, choice.voice
    prepared = script.prepare(text, lang, lexicon)
    # At rate r the speech lasts 1/r as long: cap the speech before the change at max * r.
    source_cap = settings.max_audio_seconds * prosody.rate
    check_estimate(script.estimated_seconds(prepared), source_cap)
    engine = get_backend(backend)
    if voice_sample is not None:
        if not isinstance(engine, CloningBackend) or not engine.capabilities.cloning:
            raise BackendUnavailableError(f"The speech backend {backend!r} cannot clone voices.")
        voice = engine.clone(read_voice_sample(voice_sample))
    speech = script.speak(engine, prepared, lang, voice, source_cap, stop)
    return apply_prosody(speech, prosody)


def speak(
    text: str,
    options: RenderOptions,
    voice_sample: Path | None = None,
    stop: Callable[[], bool] | None = None,
) -> Speech:
    """`synthesize` with everything `options` says about speech (the worker's and the CLI's
    one way from options to audio); `voice_sample` defaults to the options' own."""
    return synthesize(
        text,
        options.lang,
        options.voice,
        options.speech_backend,
        voice_sample or options.voice_sample,
        options.lexicon,
        Prosody.of(options),
        stop,
    )


def _speech_track(
    text: str | None,
    audio: Path | AudioTrack | None,
    options: RenderOptions,
    stop: Callable[[], bool] | None = None,
    transcript: str | None = None,
) -> Speech:
    """The speech to animate: synthesised from `text`, or the recording `audio` (its words
    aligned from `transcript` when captions are asked for)."""
    if (text is None) == (audio is None):
        raise FacecastError("Give either text to speak or an audio recording, not both or neither.")
    if text is not None:
        return speak(text, options, stop=stop)
    if options.captions and not (transcript and transcript.strip()):
        raise FacecastError("Captions for a recording need its transcript (the words it says).")
    if isinstance(audio, AudioTrack):
        track = audio
    else:
        assert audio is not None
        track = load_audio(
            audio, max_seconds=get_settings().max_audio_seconds, sample_rate=OUTPUT_AUDIO_RATE
        )
    if options.captions and transcript:
        return Speech(track, words=transcript_words(track, transcript, options.lang))
    return Speech(track)


def caption_path(output: Path, options: RenderOptions) -> Path | None:
    """Where the captions `options` ask for go: beside the video (out.mp4 -> out.vtt)."""
    if not options.captions:
        return None
    return Path(output).with_suffix(SIDECAR_SUFFIX[options.captions])


def write_captions(speech: Speech, output: Path, options: RenderOptions) -> Path | None:
    """Write the caption file beside `output` (renamed into place when complete)."""
    path = caption_path(output, options)
    if path is None or options.captions is None:
        return None
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(caption_file(speech.words, options.captions), encoding="utf-8")
    os.replace(partial, path)
    return path


def _decoded(image: Path | bytes | Photo) -> Photo:
    if isinstance(image, Photo):
        return image
    return load_photo(image, max_pixels=get_settings().max_image_pixels)


def find_photo_faces(image: Path | bytes | Photo) -> face.PhotoFaces:
    """The faces in a photo with their boxes in the photo's own pixels, largest first."""
    return face.photo_faces(_decoded(image))


def prepare_photo(image: Path | bytes | Photo, options: RenderOptions) -> PreparedPhoto:
    """Decode the photo, turn it upright, pick the face and frame it for rendering."""
    search, scale, _ = face.search_photo(_decoded(image))
    at = (
        None
        if options.face_at is None
        else (options.face_at[0] * scale, options.face_at[1] * scale)
    )
    chosen = face.choose_face(search.faces, index=options.face_index, at=at)
    rgb, landmarks = restore.maybe_restore(search.rgb, chosen, options)
    # H.264 in yuv420p needs even sides: an odd size is rounded down.
    size = options.size // 2 * 2
    portrait = face.frame_portrait(rgb, landmarks, size, options.shape)
    restored = landmarks is not chosen
    warnings = _enlargement_warnings(chosen, portrait.landmarks, size, restored)
    return PreparedPhoto(portrait, warnings)


def prepare_portrait(image: Path | bytes | Photo, options: RenderOptions) -> face.Portrait:
    """Decode the photo, find the face and frame it for rendering."""
    return prepare_photo(image, options).portrait


def _enlargement_warnings(
    source: face.FaceLandmarks, framed: face.FaceLandmarks, size: int, restored: bool
) -> tuple[str, ...]:
    """A warning when the face is blown up so much that the video shows blur, not detail
    (`source`: the face in the photo; `framed`: in the video)."""
    height = source.oval_box[3] - source.oval_box[1]
    enlargement = (framed.oval_box[3] - framed.oval_box[1]) / max(height, 1.0)
    if enlargement <= MAX_ENLARGEMENT:
        return ()
    if restored:
        return (
            f"The face is only {height:.0f} pixels high in the photo; it was super-resolved "
            f"(Real-ESRGAN) for the {size} px video, which sharpens it but cannot recover "
            "detail the photo lacks. A closer or larger photo looks better.",
        )
    return (
        f"The face is only {height:.0f} pixels high in the photo; the {size} px video "
        f"enlarges it {enlargement:.1f} times, so it will look blurred. Use a closer or "
        "larger photo, or a smaller size.",
    )


@dataclass(frozen=True)
class RiggedPhoto:
    """A photo made ready to render: the renderer's animator, the framed portrait (post steps
    need it) and what the user should be told about the photo."""

    animator: Animator
    portrait: face.Portrait
    warnings: tuple[str, ...] = ()


class PreparedPhotos:
    """Analysed photos by content hash (least recently used dropped first), for one process.

    An animator keeps a canvas it draws on, so one is lent to one render at a time; a render
    that finds its photo lent out prepares its own.
    """

    def __init__(self, capacity: int = PREPARED_PHOTOS) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, ...], RiggedPhoto] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: tuple[str, ...]) -> RiggedPhoto | None:
        """The animator kept for `key`, lent out until it is given back; None when none is."""
        with self._lock:
            return self._items.pop(key, None)

    def give(self, key: tuple[str, ...], rigged: RiggedPhoto) -> None:
        """Keep `rigged` for later renders of the same photo and options."""
        with self._lock:
            self._items[key] = rigged
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


@lru_cache(maxsize=1)
def prepared_photos() -> PreparedPhotos:
    """This process's analysed photos."""
    return PreparedPhotos()


def photo_key(image: Path | bytes | Photo, options: RenderOptions) -> tuple[str, ...]:
    """What an analysed photo depends on: the photo's content and the options marked as
    changing the rig (facecast.options.Key.RIG: size, framing, renderer, face choice, ...)."""
    if isinstance(image, Photo):
        digest = hashlib.sha256(image.rgb.tobytes())
        digest.update(f"{image.width}x{image.height}".encode())
    else:
        digest = hashlib.sha256(
            Path(image).read_bytes() if isinstance(image, str | Path) else image
        )
    return (digest.hexdigest(), options.cache_key(Key.RIG))


def rig_photo(image: Path | bytes | Photo, options: RenderOptions) -> RiggedPhoto:
    """Find the face and rig the photo for the renderer (see `prepared_photos` for reuse)."""
    prepared = prepare_photo(image, options)
    animator = get_renderer(options.renderer).prepare(
        prepared.portrait, expression=options.expression
    )
    return RiggedPhoto(animator, prepared.portrait, prepared.warnings)


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
        names += post.of_kind("upscale")[:1] or ["upscale"]
    backends = [post.REGISTRY.get(name) for name in names]
    batch = max([b.capabilities.batch_size for b in backends], default=1)
    return [b.prepare(context) for b in backends], batch


def check_cpu_time(
    device: Device, capabilities: Capabilities, n_frames: int, options: RenderOptions
) -> None:
    """Refuse a long clip for a GPU-class backend (`device`) running on the CPU, unless
    forced."""
    if device != "gpu" or options.force_cpu or accel.cuda_available():
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


def _add_subtitles(streams: Sequence[StreamTarget], speech: Speech, options: RenderOptions) -> None:
    """Give the live HLS copies that carry captions their WebVTT rendition."""
    if not options.captions:
        return
    for stream in streams:
        if stream.subtitles is not None:
            vtt = to_webvtt(cues(speech.words))
            add_hls_subtitles(stream, vtt, speech.audio.duration, options.lang)


def _burner(
    speech: Speech, options: RenderOptions, width: int, height: int
) -> Callable[[np.ndarray, int], np.ndarray]:
    """What draws the captions into frame number i: nothing unless `captions=burn`."""
    if options.captions != "burn":
        return lambda frame, _: frame
    return CaptionBurner(speech.words, options.fps, width, height, options.caption_highlight)


def _marked(frame: np.ndarray, watermark: str | None) -> np.ndarray:
    return watermark_frame(frame, watermark) if watermark else frame


PREVIEW_SECONDS = 0.2
"""Silence the preview's motion is computed over (its first frame is the video's rest pose)."""


def preview_frame(
    image: Path | bytes | Photo, options: RenderOptions = RenderOptions()
) -> np.ndarray:
    """The video's first frame (the face at rest, framed as the video frames it) as RGB, with
    the watermark but without upscaling or refinement: what an app shows before the video."""
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        photos, key = prepared_photos(), photo_key(image, options)
        rigged = photos.take(key) or rig_photo(image, options)
        try:
            silence = AudioTrack(
                np.zeros(round(PREVIEW_SECONDS * OUTPUT_AUDIO_RATE), np.float32), OUTPUT_AUDIO_RATE
            )
            curves = motion.motion_curves(silence, options.fps, seed=options.seed)
            frame = rigged.animator.render_batch([curves.at(0)], silence)[0]
        finally:
            photos.give(key, rigged)
    return _marked(frame, options.watermark)


def render_talking_head(
    image: Path | bytes | Photo,
    output: Path,
    *,
    text: str | None = None,
    audio: Path | AudioTrack | None = None,
    options: RenderOptions = RenderOptions(),
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    metadata: Mapping[str, str] | None = None,
    streams: Sequence[StreamTarget] = (),
    transcript: str | None = None,
) -> RenderResult:
    """Animate the face in `image` speaking `text` (synthesised) or `audio` (a file or a track).

    The MP4 is written next to `output` and moved into place only when complete, so a
    failed or canceled render never leaves a half-written file under that name. `streams`
    get the video live while it renders. With `options.captions` the caption file is written
    beside the video (out.vtt / out.srt) before the frames; a recording's captions come from
    its `transcript`.
    """
    # The renderer multiplies small matrices: BLAS threads only spin and wait for each other
    # (on 2 cores a warm render took 0.76 s and 1.47 s of CPU with them, 0.55 s and 0.92 s
    # without), and they starve other workers on the same machine.
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return _render(
            image, output, text, audio, options, progress, cancel, metadata, streams, transcript
        )


def _render(
    image: Path | bytes | Photo,
    output: Path,
    text: str | None,
    audio: Path | AudioTrack | None,
    options: RenderOptions,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
    metadata: Mapping[str, str] | None,
    streams: Sequence[StreamTarget],
    transcript: str | None,
) -> RenderResult:
    started = time.perf_counter()
    report = Reporter(progress, cancel)
    report.stage("speech", *SPAN_SPEECH, 0.0)
    photos, key = prepared_photos(), photo_key(image, options)
    stopping = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="facecast-speech") as pool:
        spoken = pool.submit(_speech_track, text, audio, options, stopping.is_set, transcript)
        try:
            report.stage("face", *SPAN_FACE, 0.0)
            rigged = photos.take(key) or rig_photo(image, options)
        except FacecastError:
            spoken.result()  # a speech error comes first, as without threads
            raise
        except BaseException:
            # A time limit or an interrupt: the speech must not keep the job for its whole text.
            stopping.set()
            with contextlib.suppress(Exception):
                spoken.result()
            raise
        speech = spoken.result()
    report.stage("motion", *SPAN_MOTION, 0.0)
    curves = motion.motion_curves(
        speech.audio, options.fps, phonemes=speech.phonemes, seed=options.seed
    )
    report.stage("render", *SPAN_RENDER, 0.0)
    try:
        captions = write_captions(speech, output, options)
        _add_subtitles(streams, speech, options)
        result = _encode(
            rigged, output, speech, curves, options, report, metadata, streams, started
        )
        return replace(result, captions=captions)
    finally:
        photos.give(key, rigged)


def _encode(
    rigged: RiggedPhoto,
    output: Path,
    speech: Speech,
    curves: motion.MotionCurves,
    options: RenderOptions,
    report: Reporter,
    metadata: Mapping[str, str] | None,
    streams: Sequence[StreamTarget],
    started: float,
) -> RenderResult:
    animator, track = rigged.animator, speech.audio
    renderer = get_renderer(options.renderer)
    described = RENDERERS.describe(options.renderer)
    device = described.device if described is not None else "cpu"
    check_cpu_time(device, renderer.capabilities, curves.n_frames, options)
    steps, post_batch = post_steps(post.PostContext(options, track, rigged.portrait))
    batch = max(renderer.capabilities.batch_size, post_batch)
    width, height = (side * (options.upscale or 1) for side in animator.size)
    burn = _burner(speech, options, width, height)
    tags = {"comment": AI_NOTICE, "description": AI_NOTICE, **(metadata or {})}
    output = Path(output)
    partial = output.with_name(f".{output.name}.partial")
    loop_started, loop_cpu = time.perf_counter(), time.process_time()
    try:
        with VideoWriter(
            partial,
            fps=options.fps,
            width=width,
            height=height,
            audio=track,
            metadata=tags,
            streams=streams,
            container=options.format,
        ) as writer:
            for first in range(0, curves.n_frames, batch):
                count = min(batch, curves.n_frames - first)
                motion = [curves.at(first + k) for k in range(count)]
                frames = animator.render_batch(motion, track)
                for step in steps:
                    frames = step(frames, first)
                for offset, frame in enumerate(frames):
                    writer.write(_marked(burn(frame, first + offset), options.watermark))
                if batch > 1 or first % PROGRESS_EVERY == 0:
                    report.stage("render", *SPAN_RENDER, first / curves.n_frames)
        os.replace(partial, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    finished = time.perf_counter()
    # This host's rate for the estimates of later jobs (facecast.rates).
    host_rates().observe(
        options,
        curves.n_frames,
        wall=finished - loop_started,
        cpu=time.process_time() - loop_cpu,
        overhead=loop_started - started,
    )
    report.stage("done", *SPAN_RENDER, 1.0)
    elapsed = finished - started
    return RenderResult(output, track.duration, curves.n_frames, elapsed, rigged.warnings)

"""What a job submission carries from a route to the job service: the parsed request, and
the render options built from its fields (`build_options`, the one function that does so)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import BinaryIO

from facecast.config import Settings
from facecast.options import DEFAULT_PITCH, DEFAULT_RATE, DEFAULT_VOLUME, Framing, RenderOptions
from facecast.service.access import ANONYMOUS, Principal
from facecast.service.inputs import even
from facecast.service.schemas import JobState
from facecast.speech import script
from facecast.speech.registry import choose_voice


def build_options(
    settings: Settings,
    *,
    speaks: bool,
    lang: str | None = None,
    voice: str | None = None,
    rate: float | None = None,
    pitch: float | None = None,
    volume: float | None = None,
    fps: int | None = None,
    size: int | None = None,
    full_frame: bool = False,
    framing: Framing = "square",
    face_index: int | None = None,
    face_at: tuple[float, float] | None = None,
    renderer: str = "warp",
    refine: str | None = None,
    upscale: int | None = None,
    force_cpu: bool = False,
    expression: str = "keep",
    lexicon: str | None = None,
    seed: int = 0,
    restore: bool = True,
) -> RenderOptions:
    """The job's render options from a request's fields and the server's defaults.

    When the job speaks text, the voice is resolved here (an unknown voice or language is a
    400 listing the valid ones), so the worker never meets a voice it cannot use. Rate, pitch
    and volume change synthesised speech only: a job with a recording drops them, as it
    drops the voice.
    """
    options = RenderOptions(
        fps=fps or settings.default_fps,
        size=even(size or settings.default_size),
        full_frame=full_frame,
        framing=framing,
        lang=lang or settings.default_lang,
        voice=voice,
        watermark=settings.watermark,
        face_index=face_index,
        face_at=face_at,
        renderer=renderer,
        refine=refine,
        upscale=upscale,
        force_cpu=force_cpu,
        expression=expression,
        lexicon=lexicon or None,
        seed=seed,
        restore=restore,
        rate=DEFAULT_RATE if rate is None else rate,
        pitch=DEFAULT_PITCH if pitch is None else pitch,
        volume=DEFAULT_VOLUME if volume is None else volume,
    )
    if lexicon:
        script.parse_lexicon(lexicon)  # a broken lexicon is the caller's 400, before any work
    if speaks:
        return choose_voice(options)
    return dataclasses.replace(
        options, voice=None, rate=DEFAULT_RATE, pitch=DEFAULT_PITCH, volume=DEFAULT_VOLUME
    )


ANONYMOUS_CALLER = Principal(ANONYMOUS)


@dataclass(frozen=True)
class AnimateSubmission:
    """A parsed POST /animate: streams for the uploads, plain values for the rest."""

    image: BinaryIO
    consent: bool
    audio: BinaryIO | None = None
    audio_filename: str | None = None
    audio_id: str | None = None
    text: str | None = None
    options: RenderOptions = RenderOptions()
    """Built by the route with `build_options`."""
    voice_sample: BinaryIO | None = None
    """A recording to clone the voice of `text` from (needs a cloning backend)."""
    webhook: str | None = None
    client_ref: str | None = None
    idempotency: str | None = None
    """The scoped Idempotency-Key (see `idempotency_scope`)."""
    owner: Principal = ANONYMOUS_CALLER
    """The caller: the job's owner, and whose TTS audio it may use."""


@dataclass(frozen=True)
class TtsSubmission:
    """A parsed POST /tts."""

    text: str
    options: RenderOptions = RenderOptions()
    """Built by the route with `build_options`."""
    voice_sample: BinaryIO | None = None
    webhook: str | None = None
    client_ref: str | None = None
    idempotency: str | None = None
    owner: Principal = ANONYMOUS_CALLER


@dataclass(frozen=True)
class Submitted:
    """A job the service accepted, and whether an earlier result answered it at once."""

    state: JobState
    reused: bool = False

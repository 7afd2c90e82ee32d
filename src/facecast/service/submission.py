"""What a job submission carries from a route to the job service: the parsed request, and
the render options built from its fields (`build_options`, the one function that does so)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from facecast.config import Settings
from facecast.options import RenderOptions, options_error, server_defaults, without_speech
from facecast.service.access import ANONYMOUS, Principal
from facecast.service.errors import InvalidRequestError
from facecast.service.schemas import JobState
from facecast.speech import script
from facecast.speech.registry import choose_voice


def build_options(settings: Settings, chosen: Mapping[str, Any], *, speaks: bool) -> RenderOptions:
    """The job's render options from the options a request set (facecast.service.forms) and
    the server's settings (fps, size, lang and the watermark).

    When the job speaks text, the voice is resolved here (an unknown voice or language is a
    400 listing the valid ones), so the worker never meets a voice it cannot use. The speech
    options change synthesised speech only: a job with a recording drops them.
    """
    defaults = {name: getattr(settings, f"default_{name}") for name in server_defaults()}
    try:
        options = RenderOptions(**{**defaults, **chosen, "watermark": settings.watermark})
    except ValueError as exc:  # a value the form's own checks let through (a point: "left")
        raise InvalidRequestError(options_error(exc)) from None
    if options.lexicon:
        script.parse_lexicon(options.lexicon)  # a broken lexicon: the caller's 400, before work
    if speaks:
        return choose_voice(options)
    return dataclasses.replace(options, **without_speech(options))


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
    transcript: str | None = None
    """The words of the recording (`audio`, `audio_id`): its captions are aligned from it."""


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

"""Voice cloning: the sample a caller sends, checked the same way in the API and the worker,
and the Protocol a backend implements to clone from it.

A sample is any recording `facecast.audio` decodes (WAV, MP3, OGG, FLAC, M4A, ...), 3 to 30
seconds long. It becomes a `VoiceSample`: the decoded track plus a content hash, which a
backend uses to cache what it computes from the sample (XTTS: conditioning latents).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from facecast.audio import (
    UPFRONT_MARGIN,
    AudioTrack,
    format_duration,
    load_audio,
    probe_audio,
)
from facecast.errors import AudioTooLongError, ErrorCode, FacecastError, VoiceSampleError
from facecast.speech import SpeechBackend

SAMPLE_RATE = 22_050
"""Samples are decoded at this rate (XTTS's conditioning rate; backends resample as needed)."""
MIN_SECONDS = 3.0
"""Shorter samples do not carry enough of a voice to clone it."""
MAX_SECONDS = 30.0
"""Longer samples add nothing and cost memory and time."""
SILENCE_PEAK = 1e-3
"""A sample whose loudest point is below this is silence."""


@dataclass(frozen=True)
class VoiceSample:
    """A decoded, checked voice sample and the hash that names it."""

    audio: AudioTrack
    sha256: str


@runtime_checkable
class CloningBackend(SpeechBackend, Protocol):
    """A speech backend that speaks in a voice cloned from a sample."""

    def clone(self, sample: VoiceSample) -> str:
        """Prepare the sample's voice (cached per sample hash); the voice name to synthesise
        with."""
        ...


def _too_long() -> VoiceSampleError:
    return VoiceSampleError(
        f"The voice sample is longer than {format_duration(MAX_SECONDS)}; send "
        f"{format_duration(MIN_SECONDS)} to {format_duration(MAX_SECONDS)} of speech.",
        ErrorCode.VOICE_SAMPLE_TOO_LONG,
    )


def _too_short(seconds: float) -> VoiceSampleError:
    return VoiceSampleError(
        f"The voice sample is {seconds:.1f} s long; at least "
        f"{format_duration(MIN_SECONDS)} of speech are needed to clone a voice.",
        ErrorCode.VOICE_SAMPLE_TOO_SHORT,
    )


def check_voice_sample_header(source: Path | bytes) -> None:
    """Refuse a sample from its header alone: not audio, a sample rate or channel count no
    recording has, or a stated length outside MIN_SECONDS..MAX_SECONDS. Decodes nothing."""
    try:
        header = probe_audio(source)
    except FacecastError as exc:
        raise VoiceSampleError(
            f"The voice sample is not usable audio: {exc.message}", ErrorCode.INVALID_VOICE_SAMPLE
        ) from exc
    if header.seconds is not None and header.seconds > MAX_SECONDS * UPFRONT_MARGIN:
        raise _too_long()
    if header.seconds is not None and header.seconds < MIN_SECONDS:
        raise _too_short(header.seconds)


def read_voice_sample(source: Path | bytes) -> VoiceSample:
    """Check the header, then decode and check a voice sample; VoiceSampleError with a plain
    reason otherwise."""
    if isinstance(source, bytes | bytearray) and not source:
        raise VoiceSampleError("The voice sample is empty.", ErrorCode.VOICE_SAMPLE_MISSING)
    if isinstance(source, Path) and source.is_file() and source.stat().st_size == 0:
        raise VoiceSampleError("The voice sample is empty.", ErrorCode.VOICE_SAMPLE_MISSING)
    check_voice_sample_header(source)
    try:
        track = load_audio(source, max_seconds=MAX_SECONDS, sample_rate=SAMPLE_RATE)
    except AudioTooLongError as exc:
        raise _too_long() from exc
    except FacecastError as exc:
        raise VoiceSampleError(
            f"The voice sample is not usable audio: {exc.message}", ErrorCode.INVALID_VOICE_SAMPLE
        ) from exc
    if track.duration < MIN_SECONDS:
        raise _too_short(track.duration)
    if float(np.max(np.abs(track.samples))) < SILENCE_PEAK:
        raise VoiceSampleError("The voice sample is silent.", ErrorCode.INVALID_VOICE_SAMPLE)
    digest = hashlib.sha256(np.ascontiguousarray(track.samples).tobytes()).hexdigest()
    return VoiceSample(audio=track, sha256=digest)

"""SVOX Pico through the `py-nanotts` wheel (Apache-2.0): clearer than espeak, audio only.

Pico returns 16 kHz PCM and no timings. The mouth still gets phonemes: espeak-ng speaks the
same text with its phoneme events, and `facecast.speech.align` carries those events onto
Pico's audio (phrases paired at the pauses both make, then time-warped inside each phrase).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from facecast.audio import AudioTrack
from facecast.errors import BackendUnavailableError, FacecastError, InvalidTextError
from facecast.registry import Capabilities
from facecast.speech import Speech, VoiceInfo, language_key
from facecast.speech.align import map_events
from facecast.speech.espeak import EspeakBackend, phoneme_timeline

SAMPLE_RATE = 16_000
VOLUME = 0.5
"""At Pico's default volume about 0.8 % of samples clip; half volume leaves headroom."""
PCM_FULL_SCALE = 32768.0
LICENCE = "Apache-2.0 (SVOX Pico lingware and py-nanotts)"
PACKAGE = "py_nanotts"
M_MMAP_THRESHOLD = -3
"""glibc mallopt parameter: allocations at least this large are always fresh mmap pages."""
ZEROED_FROM_BYTES = 2 * 1024 * 1024
"""py-nanotts mallocs 2.5 MB of engine memory per call and Pico reads some of it before
writing it: from reused heap memory the same text came out different about one time in
eight (once 1.5 s longer). A fixed mmap threshold below that size gives it zeroed pages every
time, and the same text the same audio (glibc only; elsewhere nothing changes)."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PicoVoice:
    """One of the lingware voices the wheel bundles."""

    name: str
    """Pico's voice id ("de-DE")."""
    languages: tuple[str, ...]
    """Language codes it serves, most specific first."""
    espeak_lang: str
    """espeak-ng language whose phoneme events are mapped onto it."""


VOICES = (
    PicoVoice("de-DE", ("de-de", "de"), "de"),
    PicoVoice("en-US", ("en-us", "en"), "en-us"),
    PicoVoice("en-GB", ("en-gb",), "en-gb"),
    PicoVoice("es-ES", ("es-es", "es"), "es"),
    PicoVoice("fr-FR", ("fr-fr", "fr"), "fr"),
    PicoVoice("it-IT", ("it-it", "it"), "it"),
)


def installed() -> bool:
    """True when the py-nanotts wheel is importable."""
    return importlib.util.find_spec(PACKAGE) is not None


class PicoBackend:
    """SVOX Pico: six languages, 16 kHz, phoneme timings borrowed from espeak-ng."""

    name = "pico"
    capabilities = Capabilities(phoneme_timings=True, natural=True, licence=LICENCE)

    def __init__(self) -> None:
        self._engine: Any = None
        # The C library keeps its engine in globals: one synthesis at a time per process.
        self._lock = threading.Lock()
        self._espeak = EspeakBackend()

    def load(self) -> None:
        """Import the native extension and start espeak-ng (for the timings)."""
        try:
            from py_nanotts import NanoTTS
        except ImportError as exc:
            raise BackendUnavailableError(
                f"SVOX Pico (py-nanotts) is not installed: {exc}"
            ) from exc
        _zeroed_large_allocations()
        self._engine = NanoTTS()
        self._espeak.load()

    def languages(self) -> tuple[str, ...]:
        """Every language code some Pico voice serves."""
        return tuple(sorted({lang for voice in VOICES for lang in voice.languages}))

    def voices(self) -> tuple[VoiceInfo, ...]:
        """The six bundled voices."""
        return tuple(
            VoiceInfo(self.name, voice.name, voice.languages, natural=True, licence=LICENCE)
            for voice in VOICES
        )

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech:
        """Speak `text` with the Pico voice for `lang` (or the named one)."""
        if not text or not text.strip():
            raise InvalidTextError("Text is empty.")
        chosen = _voice(lang, voice)
        if self._engine is None:
            self.load()
        with self._lock:
            pcm = self._engine.speak(text.replace("\0", " "), voice=chosen.name, volume=VOLUME)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / np.float32(PCM_FULL_SCALE)
        audio = AudioTrack(samples=samples, sample_rate=SAMPLE_RATE)
        if audio.duration <= 0 or not np.any(samples):
            raise InvalidTextError("Text contains nothing that can be spoken.")
        reference = self._espeak.synthesize(text, chosen.espeak_lang)
        marks = map_events(reference.phonemes, reference.audio, audio)
        return Speech(audio=audio, phonemes=phoneme_timeline(marks, audio.duration))


def _zeroed_large_allocations() -> None:
    """Fresh (zeroed) pages for Pico's engine memory on every call (see ZEROED_FROM_BYTES)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        done = libc.mallopt(M_MMAP_THRESHOLD, ZEROED_FROM_BYTES) == 1
    except (OSError, AttributeError):
        done = False
    if not done:
        logger.warning("Pico: could not fix malloc's mmap threshold; output may vary slightly.")


def _voice(lang: str, voice: str | None) -> PicoVoice:
    """The named voice, or the one serving `lang` (exact code first, then its language)."""
    if voice is not None:
        for candidate in VOICES:
            if candidate.name.lower() == voice.lower():
                return candidate
        names = ", ".join(v.name for v in VOICES)
        raise FacecastError(f"Unknown Pico voice {voice!r}. Pico has: {names}.")
    for key in language_key(lang):
        for candidate in VOICES:
            if key in candidate.languages:
                return candidate
    raise FacecastError(f"Pico has no voice for language {lang!r}.")

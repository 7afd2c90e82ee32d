"""SVOX Pico through the `py-nanotts` wheel (Apache-2.0): clearer than espeak, audio only.

Pico's six voices are female. Each language also gets a male voice derived from the female
one through the WORLD vocoder (facecast.speech.voicing): F0 lowered to about 105 Hz with its
contour kept, formants lowered 12 % as a longer vocal tract does, loudness matched. The length
does not change, so the timings below hold for both.

Pico returns 16 kHz PCM and no timings. The mouth still gets phonemes: espeak-ng speaks the
same text with its phoneme events, and `facecast.speech.align` carries those events onto
Pico's audio (phrases paired at the pauses both make, then time-warped inside each phrase);
espeak-ng's word starts travel the same way, for captions.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from facecast.audio import AudioTrack
from facecast.errors import BackendUnavailableError, FacecastError, InvalidTextError
from facecast.registry import Capabilities, Description, MissingError
from facecast.speech import FEMALE, MALE, Speech, VoiceInfo, language_key
from facecast.speech.align import map_events, phrases, time_map
from facecast.speech.espeak import EspeakBackend, phoneme_timeline
from facecast.speech.voicing import VoiceShape, derive_voice
from facecast.speech.words import carried, off_pauses

SAMPLE_RATE = 16_000
VOLUME = 0.5
"""At Pico's default volume about 0.8 % of samples clip; half volume leaves headroom."""
PCM_FULL_SCALE = 32768.0
TAIL_S = 0.25
"""Silence kept after the last sound (the mouth closes in it)."""
SILENT_LEVEL = 10 ** (-60 / 20)
"""Samples below -60 dBFS count as silence when trimming the tail."""
LICENCE = "Apache-2.0 (SVOX Pico lingware and py-nanotts)"
MALE_LICENCE = LICENCE + "; derived through WORLD (pyworld, MIT; WORLD, modified BSD)"
MALE_SUFFIX = "-male"
MALE_F0 = 105.0
"""Median F0 (Hz) the male voices aim at: an adult male speaking voice (about 85-155 Hz)."""
FORMANT_RATIO = 0.88
"""Formants of the male voices: 12 % lower. Measured over 0.85-0.90 with the F0 ratio fixed:
English WER moved within 2-3 points (noise at 184 words); 0.88 sits mid-way."""
PACKAGE = "py_nanotts"
HELPER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2 * 1024 * 1024)}
"""py-nanotts mallocs 2.5 MB of engine memory per call and Pico reads some of it before
writing it: in a busy process (reused heap memory) the same text came out different most
times, once 1.5 s longer. So Pico runs in a small helper process whose malloc, fixed from its
start, gives every allocation of 2 MB or more fresh zeroed pages: the same text, the same audio."""
HELPER_CODE = """
import struct, sys, json
from py_nanotts import NanoTTS
tts = NanoTTS()
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    job = json.loads(line)
    try:
        pcm = tts.speak(job["text"], voice=job["voice"], volume=job["volume"])
        out.write(struct.pack("<bI", 0, len(pcm)) + pcm)
    except Exception as exc:
        message = str(exc).encode()
        out.write(struct.pack("<bI", 1, len(message)) + message)
    out.flush()
"""
"""The helper: one JSON request per line in; status byte, length and PCM (or an error) out."""
HEADER = struct.Struct("<bI")

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
    median_f0: float
    """Median F0 (Hz) of the female voice, measured with WORLD on 20 sentences."""
    lingware: str = ""
    """Pico's voice id for the lingware it speaks with; "" means `name`."""
    shape: VoiceShape | None = None
    """How this voice is derived from the lingware's voice; None: spoken as Pico speaks."""

    @property
    def gender(self) -> str:
        """Pico's lingware voices are female; the derived ones male."""
        return FEMALE if self.shape is None else MALE


def _male(voice: PicoVoice) -> PicoVoice:
    """The male voice derived from `voice`: F0 scaled to MALE_F0, formants by FORMANT_RATIO."""
    shape = VoiceShape(f0_ratio=round(MALE_F0 / voice.median_f0, 3), formant_ratio=FORMANT_RATIO)
    return PicoVoice(
        voice.name + MALE_SUFFIX,
        voice.languages,
        voice.espeak_lang,
        MALE_F0,
        lingware=voice.name,
        shape=shape,
    )


FEMALE_VOICES = (
    PicoVoice("de-DE", ("de-de", "de"), "de", 168.0),
    PicoVoice("en-US", ("en-us", "en"), "en-us", 165.0),
    PicoVoice("en-GB", ("en-gb",), "en-gb", 176.0),
    PicoVoice("es-ES", ("es-es", "es"), "es", 202.0),
    PicoVoice("fr-FR", ("fr-fr", "fr"), "fr", 195.0),
    PicoVoice("it-IT", ("it-it", "it"), "it", 178.0),
)
"""The lingware's voices; their median F0 sets each male voice's F0 ratio."""
VOICES = FEMALE_VOICES + tuple(_male(voice) for voice in FEMALE_VOICES)
"""Female voices first: they stay the default for their languages (unchanged audio)."""


def installed() -> bool:
    """True when the py-nanotts wheel is importable."""
    return importlib.util.find_spec(PACKAGE) is not None


class PicoBackend:
    """SVOX Pico: six languages, 16 kHz, phoneme timings borrowed from espeak-ng."""

    name = "pico"
    capabilities = Capabilities(phoneme_timings=True, natural=True)

    def __init__(self) -> None:
        self._helper: subprocess.Popen[bytes] | None = None
        self._helper_of: int | None = None
        # One request at a time through the helper's pipes.
        self._lock = threading.Lock()
        self._espeak = EspeakBackend()

    def load(self) -> None:
        """Start the Pico helper process and espeak-ng (for the timings)."""
        if not installed():
            raise BackendUnavailableError("SVOX Pico (py-nanotts) is not installed.")
        with self._lock:
            self._ensure_helper()
        self._espeak.load()

    def _ensure_helper(self) -> subprocess.Popen[bytes]:
        """This process's helper (a forked child starts its own). Caller holds the lock."""
        helper = self._helper
        if helper is not None and self._helper_of == os.getpid() and helper.poll() is None:
            return helper
        env = {**os.environ, **HELPER_ENV}
        helper = subprocess.Popen(
            [sys.executable, "-c", HELPER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._helper, self._helper_of = helper, os.getpid()
        weakref.finalize(self, _stop, helper)
        return helper

    def close(self) -> None:
        """Stop this process's helper (a later synthesis starts a new one)."""
        with self._lock:
            if self._helper is not None and self._helper_of == os.getpid():
                _stop(self._helper)
            self._helper = None

    def _speak(self, text: str, voice: str) -> bytes:
        request = json.dumps({"text": text, "voice": voice, "volume": VOLUME}).encode() + b"\n"
        with self._lock:
            helper = self._ensure_helper()
            assert helper.stdin is not None and helper.stdout is not None
            try:
                helper.stdin.write(request)
                helper.stdin.flush()
                status, size = HEADER.unpack(_read(helper.stdout, HEADER.size))
                body = _read(helper.stdout, size)
            except BaseException as exc:
                # Interrupted half-way (a job's time limit, a cancel, a dead helper), the pipe
                # may still hold this answer: the next request must not read it. Start over.
                _stop(helper)
                self._helper = None
                if isinstance(exc, (OSError, EOFError)):
                    raise BackendUnavailableError(f"The Pico helper stopped: {exc}") from exc
                raise
        if status != 0:
            raise InvalidTextError(f"Pico could not speak this text: {body.decode()}")
        return body

    def languages(self) -> tuple[str, ...]:
        """Every language code some Pico voice serves."""
        return tuple(sorted({lang for voice in VOICES for lang in voice.languages}))

    def voices(self) -> tuple[VoiceInfo, ...]:
        """The six bundled (female) voices and the six male voices derived from them."""
        return tuple(
            VoiceInfo(
                self.name,
                voice.name,
                voice.languages,
                natural=True,
                licence=LICENCE if voice.shape is None else MALE_LICENCE,
                gender=voice.gender,
                timings=True,
            )
            for voice in VOICES
        )

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech:
        """Speak `text` with the Pico voice for `lang` (or the named one)."""
        if not text or not text.strip():
            raise InvalidTextError("Text is empty.")
        chosen = _voice(lang, voice)
        pcm = self._speak(text.replace("\0", " "), chosen.lingware or chosen.name)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / np.float32(PCM_FULL_SCALE)
        samples = _trim_tail(samples)
        audio = AudioTrack(samples=samples, sample_rate=SAMPLE_RATE)
        if audio.duration <= 0 or not np.any(samples):
            raise InvalidTextError("Text contains nothing that can be spoken.")
        reference = self._espeak.synthesize(text, chosen.espeak_lang)
        xs, ys = time_map(reference.audio, audio)
        marks = map_events(reference.phonemes, xs, ys)
        phonemes = phoneme_timeline(marks, audio.duration)
        spans = [(span.start, span.end) for span in phrases(audio)]
        words = off_pauses(carried(reference.words, xs, ys, audio.duration), spans)
        speech = Speech(audio=audio, phonemes=phonemes, words=words)
        return speech if chosen.shape is None else derive_voice(speech, chosen.shape)


def _trim_tail(samples: np.ndarray) -> np.ndarray:
    """Pico ends every text with ~0.7 s of silence: keep only TAIL_S of it."""
    loud = np.flatnonzero(np.abs(samples) > SILENT_LEVEL)
    if not len(loud):
        return samples
    return samples[: min(len(samples), int(loud[-1]) + 1 + round(TAIL_S * SAMPLE_RATE))]


def _stop(helper: subprocess.Popen[bytes]) -> None:
    """End a helper and close its pipes."""
    if helper.poll() is None:
        helper.kill()
        helper.wait()
    for stream in (helper.stdin, helper.stdout):
        if stream is not None:
            stream.close()


def _read(stream: IO[bytes], size: int) -> bytes:
    """Exactly `size` bytes from the helper."""
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the Pico helper closed its output")
    return data


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


def _make(_models_dir: Path) -> PicoBackend:
    if not installed():
        raise MissingError(["the py-nanotts package"], "pip install py-nanotts")
    return PicoBackend()


DESCRIPTION: Description[PicoBackend] = Description(
    PicoBackend.name, "speech", _make, licence=LICENCE, preference=1
)
"""SVOX Pico: after Piper, before espeak-ng."""

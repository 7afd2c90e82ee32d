"""Text-to-speech backends behind one Protocol, chosen by name from a registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from facecast.audio import AudioTrack
from facecast.registry import Capabilities


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme as the synthesiser spoke it: espeak mnemonic, start and end in seconds."""

    phoneme: str
    start: float
    end: float


@dataclass(frozen=True)
class WordEvent:
    """One word as it is heard: its text (punctuation attached, as the captions show it),
    start and end in seconds."""

    word: str
    start: float
    end: float


MALE, FEMALE, NEUTRAL = "male", "female", "neutral"
GENDERS = (MALE, FEMALE, NEUTRAL)
"""A voice's gender presentation: metadata of the voice (how it sounds), never a guess about
a person. `voice=male` / `voice=female` asks for the best voice of that kind."""


@dataclass(frozen=True)
class VoiceInfo:
    """One voice a backend offers, as the catalogue (GET /voices, `facecast voices`) lists it."""

    backend: str
    name: str
    languages: tuple[str, ...]
    """Lower-case language codes it speaks ("de", "en-us"), most specific first."""
    natural: bool = False
    cloning: bool = False
    licence: str = ""
    commercial_use: bool = True
    """False when the voice's terms forbid or leave unclear commercial use."""
    gender: str = NEUTRAL
    """How the voice presents: MALE, FEMALE or NEUTRAL (neither, or the sample's own for a
    cloning voice)."""
    timings: bool = False
    """True when the backend gives phoneme timings for this voice (the mouth follows
    phonemes); False: the mouth follows the signal."""
    variant: bool = False
    """A variant of the backend's plain voice (espeak-ng has dozens): listed after it, and by
    `facecast voices` only with --all."""

    @property
    def id(self) -> str:
        """`backend:voice`, the unambiguous spelling `--voice` and the API accept."""
        return f"{self.backend}:{self.name}"


def language_key(lang: str) -> tuple[str, ...]:
    """A language code in lookup order: "de_DE" -> ("de-de", "de"); "en" -> ("en",)."""
    code = lang.strip().lower().replace("_", "-")
    primary = code.split("-")[0]
    return (code,) if primary == code else (code, primary)


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: the audio and, when the backend knows them, its phoneme and word
    timings (`facecast.speech.words` fills in the words of a backend that has none)."""

    audio: AudioTrack
    phonemes: tuple[PhonemeEvent, ...] = ()
    words: tuple[WordEvent, ...] = ()


class SpeechBackend(Protocol):
    """A text-to-speech engine: `load` once per process, then `synthesize` many times."""

    name: str
    capabilities: Capabilities

    def load(self) -> None: ...

    def languages(self) -> tuple[str, ...]: ...

    def voices(self) -> tuple[VoiceInfo, ...]: ...

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech: ...


@runtime_checkable
class StreamingBackend(SpeechBackend, Protocol):
    """A backend that also yields audio while it is being generated (no phoneme timings)."""

    def stream(self, text: str, lang: str, voice: str | None = None) -> Iterator[AudioTrack]: ...

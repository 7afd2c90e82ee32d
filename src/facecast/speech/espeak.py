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
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
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
from facecast.speech.words import timed_words

logger = logging.getLogger(__name__)

# --- speak_lib.h (espeak-ng 1.52, API revision 12) -----------------------------------------
AUDIO_OUTPUT_SYNCHRONOUS = 2
"""espeak_AUDIO_OUTPUT: hand audio to the callback and return only when synthesis is done."""
INITIALIZE_PHONEME_EVENTS = 0x0001
"""espeak_Initialize option: emit espeakEVENT_PHONEME events (eSpeak mnemonics, not IPA)."""
INITIALIZE_DONT_EXIT = 0x8000
"""espeak_Initialize option: report a data load failure instead of calling exit(1)."""
CHARS_UTF8 = 1
"""espeak_Synth flag: UTF-8 text. The only flag set: SSML, [[phoneme]] input, end pause stay off."""
POS_CHARACTER = 1
"""espeak_POSITION_TYPE used with position 0: start at the beginning of the text."""
EE_OK = 0
"""espeak_ERROR success value."""
EVENT_LIST_TERMINATED = 0
"""espeak_EVENT_TYPE that ends each callback's event array."""
EVENT_WORD = 1
"""espeak_EVENT_TYPE of a word's start: text_position (1-based character) and length."""
EVENT_PHONEME = 7
"""espeak_EVENT_TYPE of a phoneme event."""
PHONEMES_IPA = 0x02
"""espeak_TextToPhonemes phonememode: IPA (UTF-8) instead of eSpeak's ASCII names."""
CLAUSE_PATTERN = re.compile(r"((?:[^.,;:!?…]|[.,;:!?…](?=\S))*)([.,;:!?…]+(?=\s|$)|$)")
"""A clause: text up to punctuation followed by a space or the end (so 3.5 stays whole)."""
CLAUSE_ENDINGS = {".": ".", ",": ",", ";": ",", ":": ",", "!": "!", "?": "?", "…": "."}
"""Clause punctuation -> the punctuation Piper voices were trained with."""
CALLBACK_CONTINUE = 0
RAND_SEED = 1
"""espeak-ng's random generator is seeded with this before every synthesis."""
CALLBACK_ABORT = 1

BUFFER_MS = 200
"""Audio handed to each callback; espeak sizes its per-buffer event list from this too."""
MAX_DATA_PATH_BYTES = 100
"""espeak-ng copies the data path into a 160-byte buffer and appends file names of up to
~30 bytes ("lang/sit/yue-Latn-jyutping"); longer paths are copied somewhere short."""
DATA_MARKER = "phontab"
DEFAULT_GENDER = MALE
"""espeak-ng's base voices are male; a variant says `gender female` to differ."""
STEADY_FOLDER = "facecast-steady"
"""Variant files facecast adds: the same voices without pitch flutter and without roughness.
espeak keeps both oscillators running from one utterance into the next (the flutter table's
position; the pitch-cycle count whose parity says which cycles roughness quietens), so the
same text came out different after other speech: a few milliseconds longer with flutter, and
with roughness in one of two sample versions that flipped with every clause spoken. Pico's
mouth timings are aligned to espeak's speech, so a worker that had spoken its warm-up text
moved the mouth differently from a fresh CLI. Without both, the same input always gives the
same audio, whatever the process said before."""
STEADY_PLAIN = "default"
STEADY_SETTINGS = b"\nflutter 0\nroughness 8\n"
"""roughness 8 is past espeak's table of roughness levels (0-7): no cycle is quietened."""
DATA_LAYOUT = "steady3"
"""Names the prepared data folder's layout; a new layout gets a fresh copy."""
"""A file every espeak-ng data folder holds."""
VARIANT_FOLDER = ("voices", "!v")
"""Where espeak-ng keeps voice variants ("f3", "m1", "klatt", ...), relative to its data."""
LOADER_DISTRIBUTION = "espeakng-loader"

PCM_FULL_SCALE = 32768.0
"""int16 -> float32 in [-1, 1)."""
PCM_BYTES_PER_SAMPLE = 2
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


class _EspeakEvent(ctypes.Structure):
    """espeak_EVENT: 40 bytes on LP64; the id union sits at offset 32 after the user_data pointer.

    For phoneme events espeak writes the mnemonic as two ints into `id`, so the name may fill all
    8 bytes without a terminating zero; a char[8] field reads it safely either way.
    """

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


class _EspeakVoice(ctypes.Structure):
    """espeak_VOICE as espeak_ListVoices returns it."""

    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.POINTER(ctypes.c_ubyte)),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


# --- data folder --------------------------------------------------------------------------


def _fits_espeak(path: Path) -> bool:
    text = str(path)
    return text.isascii() and len(text.encode()) <= MAX_DATA_PATH_BYTES


def prepared_data_dir(source: Path, scratch_root: Path | None = None) -> Path:
    """The espeak-ng data folder facecast speaks from: a copy of `source`, made once under
    `scratch_root` (default: the system temp folder), at a short ASCII path espeak can hold,
    with a steady twin of every voice variant (see STEADY_VARIANT)."""
    if not (source / DATA_MARKER).is_file():
        raise BackendUnavailableError(f"espeak-ng data not found at {source}.")
    root = Path(scratch_root) if scratch_root is not None else Path(tempfile.gettempdir())
    try:
        version = metadata.version(LOADER_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    owner = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    target = root / f"facecast-espeak-{version}{owner}-{DATA_LAYOUT}" / source.name
    if not _fits_espeak(target):
        raise BackendUnavailableError(
            f"espeak-ng needs its data under a short ASCII path; {target} is not one."
        )
    if not (target / DATA_MARKER).is_file():
        _copy_atomically(source, target)
    return target


def _add_steady_variants(data_dir: Path) -> None:
    """Write a flutter-free twin of each voice variant, and a plain one for no variant.

    They live outside `voices/`: espeak lists every file there at start-up and drops voices
    past 350 entries, so twins inside would push out real languages.
    """
    variants = data_dir.joinpath(*VARIANT_FOLDER)
    folder = data_dir / STEADY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if variants.is_dir():
        for variant in [p for p in variants.iterdir() if p.is_file()]:
            (folder / variant.name).write_bytes(variant.read_bytes() + STEADY_SETTINGS)
    (folder / STEADY_PLAIN).write_bytes(b"name facecast" + STEADY_SETTINGS)


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy into a private folder, then rename it into place; a concurrent copier may win."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
    logger.info("Preparing espeak-ng data in %s.", target)
    try:
        shutil.copytree(source, staging / source.name)
        _add_steady_variants(staging / source.name)
        os.replace(staging / source.name, target)
    except OSError:
        if not (target / DATA_MARKER).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- the library, once per process ---------------------------------------------------------


@dataclass
class _Collector:
    """What one espeak_Synth call hands to the callback."""

    pcm: list[bytes] = field(default_factory=list)
    marks: list[tuple[int, bytes]] = field(default_factory=list)
    words: list[tuple[int, int, int]] = field(default_factory=list)
    """(audio position ms, 1-based text position, length) per word espeak starts."""


class _Engine:
    """The initialised espeak-ng library of this process. Use only while holding `_LOCK`."""

    def __init__(self, lib: ctypes.CDLL, sample_rate: int, variants: dict[str, str]) -> None:
        self.lib = lib
        self.sample_rate = sample_rate
        self.variants = variants
        self.genders: dict[str, str] = {}
        """Variant name -> "male" / "female" (see _genders)."""
        self.pid = os.getpid()
        self.current_voice: str | None = None
        self.collector: _Collector | None = None
        self.callback = _SynthCallback(self._on_audio)  # referenced for the process lifetime
        lib.espeak_SetSynthCallback(self.callback)
        self.voice_by_lang = _list_voices(lib)
        if not self.voice_by_lang:
            raise BackendUnavailableError("espeak-ng started but lists no voices.")

    def _on_audio(
        self,
        wav: ctypes._Pointer[ctypes.c_short],
        n_samples: int,
        events: ctypes._Pointer[_EspeakEvent],
    ) -> int:
        collector = self.collector
        if collector is None:
            return CALLBACK_ABORT
        if wav and n_samples > 0:
            collector.pcm.append(ctypes.string_at(wav, n_samples * PCM_BYTES_PER_SAMPLE))
        if events:
            index = 0
            while (event := events[index]).type != EVENT_LIST_TERMINATED:
                if event.type == EVENT_PHONEME:
                    collector.marks.append((event.audio_position, event.id))
                elif event.type == EVENT_WORD:
                    collector.words.append(
                        (event.audio_position, event.text_position, event.length)
                    )
                index += 1
        return CALLBACK_CONTINUE

    def synthesize(self, text: str, voice: str) -> _Collector:
        """Speak `text` with the espeak voice spec `voice`; the raw PCM and phoneme marks."""
        if os.getpid() != self.pid:
            logger.debug("espeak-ng: process %d reuses what %d initialised.", os.getpid(), self.pid)
            self.pid = os.getpid()
        # Selected every time, and the random generator seeded: espeak's wave generator
        # carries the last synthesis's echo (cleared when a voice is selected) and random
        # state (breath noise, of f3 and others) into the next, so without this the same
        # text gives other samples after other speech.
        if self.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise BackendUnavailableError(f"espeak-ng could not select voice {voice!r}.")
        self.current_voice = voice
        self.lib.espeak_ng_SetRandSeed(RAND_SEED)
        data = text.encode("utf-8")
        collector = _Collector()
        self.collector = collector
        try:
            status = self.lib.espeak_Synth(
                data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
            )
            if status == EE_OK:
                status = self.lib.espeak_Synchronize()
        finally:
            self.collector = None
        if status != EE_OK:
            raise RuntimeError(f"espeak-ng synthesis failed with status {status}.")
        return collector


def _declare_api(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = (_SynthCallback,)
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = (
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    )
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = ()
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = (
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_int,
    )
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_ListVoices.argtypes = (ctypes.c_void_p,)
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
    lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
    lib.espeak_ng_SetRandSeed.restype = None


def _voice_languages(voice: _EspeakVoice) -> list[tuple[int, str]]:
    """Decode espeak_VOICE.languages: (priority byte, zero-ended name) pairs, then a zero byte."""
    raw = voice.languages
    pairs: list[tuple[int, str]] = []
    index = 0
    while raw[index] != 0:
        priority = raw[index]
        end = index + 1
        while raw[end] != 0:
            end += 1
        name = bytes(raw[index + 1 : end]).decode("utf-8", "replace")
        pairs.append((priority, name.lower()))
        index = end + 1
    return pairs


def _list_voices(lib: ctypes.CDLL) -> dict[str, str]:
    """Language code -> identifier of the voice espeak prefers for it (lowest priority)."""
    best: dict[str, tuple[int, str]] = {}
    voices = lib.espeak_ListVoices(None)
    index = 0
    while voices[index]:
        voice = voices[index].contents
        identifier = voice.identifier.decode("utf-8", "replace")
        for priority, lang in _voice_languages(voice):
            if lang not in best or priority < best[lang][0]:
                best[lang] = (priority, identifier)
        index += 1
    return {lang: identifier for lang, (_, identifier) in best.items()}


def _start_engine() -> _Engine:
    data_dir = prepared_data_dir(Path(espeakng_loader.get_data_path()))
    try:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
    except OSError as exc:
        raise BackendUnavailableError(f"espeak-ng library could not be loaded: {exc}") from exc
    _declare_api(lib)
    options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
    sample_rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, str(data_dir).encode(), options
    )
    if sample_rate <= 0:
        raise BackendUnavailableError("espeak-ng failed to initialise.")
    engine = _Engine(lib, sample_rate, _variants(data_dir))
    engine.genders = _genders(data_dir, engine.variants)
    return engine


_LOCK = threading.Lock()
"""Serialises espeak-ng: the one initialisation and every synthesis."""


@dataclass
class _ProcessState:
    engine: _Engine | None = None
    error: BackendUnavailableError | None = None
    fork_guard: bool = False


_STATE = _ProcessState()


def _engine() -> _Engine:
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


# --- phonemes as text (for neural voices) --------------------------------------------------


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


def _phonemes(engine: _Engine, text: str) -> list[str]:
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


# --- phoneme timeline ----------------------------------------------------------------------


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


# --- the backend ---------------------------------------------------------------------------


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


def _voice_for(engine: _Engine, lang: str) -> str:
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


def _variant_for(engine: _Engine, voice: str) -> str:
    """The variant file name for a lower-case voice name ("alex" -> "Alex")."""
    if voice not in engine.variants:
        shortest = sorted(engine.variants, key=lambda name: (len(name), name))
        raise FacecastError(
            f"Unknown espeak voice {voice!r}. Try one of: {', '.join(shortest[:NAME_EXAMPLES])} "
            f"({len(shortest)} in all)."
        )
    return engine.variants[voice]


def _to_speech(raw: _Collector, sample_rate: int, text: str) -> Speech:
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

"""espeak-ng's C API through ctypes: the structures, the declarations, and `Engine`, one
initialised library with its voices by language, synthesising in synchronous mode (the PCM
and the word and phoneme events of one pass)."""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass, field

from facecast.errors import (
    BackendUnavailableError,
)

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


CALLBACK_CONTINUE = 0


RAND_SEED = 1
"""espeak-ng's random generator is seeded with this before every synthesis."""


CALLBACK_ABORT = 1


BUFFER_MS = 200
"""Audio handed to each callback; espeak sizes its per-buffer event list from this too."""


PCM_BYTES_PER_SAMPLE = 2


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

logger = logging.getLogger(__name__)


@dataclass
class Collector:
    """What one espeak_Synth call hands to the callback."""

    pcm: list[bytes] = field(default_factory=list)
    marks: list[tuple[int, bytes]] = field(default_factory=list)
    words: list[tuple[int, int, int]] = field(default_factory=list)
    """(audio position ms, 1-based text position, length) per word espeak starts."""


class Engine:
    """The initialised espeak-ng library of this process. Use only while holding `_LOCK`."""

    def __init__(self, lib: ctypes.CDLL, sample_rate: int, variants: dict[str, str]) -> None:
        self.lib = lib
        self.sample_rate = sample_rate
        self.variants = variants
        self.genders: dict[str, str] = {}
        """Variant name -> "male" / "female" (see _genders)."""
        self.pid = os.getpid()
        self.current_voice: str | None = None
        self.collector: Collector | None = None
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

    def synthesize(self, text: str, voice: str) -> Collector:
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
        collector = Collector()
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


def declare_api(lib: ctypes.CDLL) -> None:
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

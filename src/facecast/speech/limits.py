"""The spoken-length cap: estimate how long a text takes to say, refuse what is too long, and
stop synthesis at the cap whatever the estimate said.

Characters are a poor measure of speech: one Chinese character is a syllable (about 0.2 s),
one Latin letter a twentieth of a second, and a string of digits in a language the normaliser
does not know is read as a number. `estimate_seconds` therefore weighs each character by the
script it belongs to, with rates a little faster than natural speech, so that an honest text
is not refused. Synthesis itself runs in chunks of bounded estimated length and stops as soon
as the audio reaches the cap (`synthesize_capped`), so a text that fools the estimate costs at
most one chunk beyond it and never yields longer audio.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from facecast.audio import AudioTrack, format_duration
from facecast.errors import CanceledError, InvalidTextError, SpeechTooLongError
from facecast.speech import PhonemeEvent, Speech, SpeechBackend, StreamingBackend, WordEvent
from facecast.speech.words import cut, shifted


@dataclass(frozen=True)
class ScriptRate:
    """Seconds of speech per character for a block of code points."""

    first: int
    last: int
    seconds: float
    script: str


SCRIPT_RATES = (
    ScriptRate(0x0590, 0x05FF, 0.07, "Hebrew"),
    ScriptRate(0x0600, 0x06FF, 0.07, "Arabic"),
    ScriptRate(0x0700, 0x074F, 0.07, "Syriac"),
    ScriptRate(0x0750, 0x077F, 0.07, "Arabic"),
    ScriptRate(0x0780, 0x07BF, 0.07, "Thaana"),
    ScriptRate(0x08A0, 0x08FF, 0.07, "Arabic"),
    ScriptRate(0x0900, 0x0DFF, 0.07, "Indic"),
    ScriptRate(0x0E00, 0x0EFF, 0.07, "Thai, Lao"),
    ScriptRate(0x0F00, 0x0FFF, 0.1, "Tibetan"),
    ScriptRate(0x1000, 0x109F, 0.07, "Myanmar"),
    ScriptRate(0x1100, 0x11FF, 0.07, "Hangul jamo"),
    ScriptRate(0x1200, 0x139F, 0.15, "Ethiopic"),
    ScriptRate(0x1780, 0x17FF, 0.07, "Khmer"),
    ScriptRate(0x3040, 0x30FF, 0.1, "Kana"),
    ScriptRate(0x3130, 0x318F, 0.07, "Hangul jamo"),
    ScriptRate(0x31F0, 0x31FF, 0.1, "Kana"),
    ScriptRate(0x3400, 0x4DBF, 0.18, "Han"),
    ScriptRate(0x4E00, 0x9FFF, 0.18, "Han"),
    ScriptRate(0xA000, 0xA4CF, 0.18, "Yi"),
    ScriptRate(0xAC00, 0xD7AF, 0.15, "Hangul"),
    ScriptRate(0xF900, 0xFAFF, 0.18, "Han"),
    ScriptRate(0xFB1D, 0xFB4F, 0.07, "Hebrew"),
    ScriptRate(0xFB50, 0xFDFF, 0.07, "Arabic"),
    ScriptRate(0xFE70, 0xFEFF, 0.07, "Arabic"),
    ScriptRate(0xFF66, 0xFF9F, 0.1, "Kana"),
    ScriptRate(0x20000, 0x3FFFF, 0.18, "Han"),
)
"""Syllabic and logographic scripts say more per character than alphabets; abjads and
abugidas (vowels left out or attached) sit between. Measured against espeak-ng and natural
speech rates (Mandarin about 5 syllables/s, Japanese about 8 morae/s)."""
_FIRSTS = [rate.first for rate in SCRIPT_RATES]

LETTER_SECONDS = 0.05
"""Any other letter (Latin, Greek, Cyrillic, ...): about 20 letters a second, fast speech."""
DIGIT_SECONDS = 0.2
"""A digit the normaliser left (languages other than de/en): read as part of a number."""
SYMBOL_SECONDS = 0.3
"""Emoji and other symbols: synthesisers read out their names."""
READ_ALOUD = frozenset("#%&\\@*/:~§¶µ")
"""Punctuation and signs the voices read out by name ("backslash", "Prozent", "Paragraf"):
Pico and espeak-ng take 0.05-1.0 s for each (measured, de and en), where the categories
below would give 0. A text of 2,499 backslashes was estimated at 0 s and spoke 600 s."""
READ_ALOUD_SECONDS = 0.35
"""Seconds for each of READ_ALOUD (x TYPICAL_PER_ESTIMATE = 0.58 s, Pico's mean)."""
PAUSE_SECONDS = 0.2
"""Sentence-ending punctuation: a pause."""
SENTENCE_END = frozenset(".!?;。！？；…")
CHUNK_SECONDS = 20.0
"""Estimated length of one synthesis call; the most a bad estimate can overshoot by."""
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;。！？；…])\s*")


def char_seconds(char: str) -> float:
    """Estimated seconds of speech for one character."""
    point = ord(char)
    index = bisect.bisect_right(_FIRSTS, point) - 1
    if index >= 0 and point <= SCRIPT_RATES[index].last:
        return SCRIPT_RATES[index].seconds
    if char in SENTENCE_END:
        return PAUSE_SECONDS
    if char in READ_ALOUD:
        return READ_ALOUD_SECONDS
    category = unicodedata.category(char)
    if category.startswith("L"):
        return LETTER_SECONDS
    if category == "Nd" or category == "No":
        return DIGIT_SECONDS
    if category in {"So", "Sm", "Sc"}:
        return SYMBOL_SECONDS
    return 0.0


def estimate_seconds(text: str) -> float:
    """Estimated spoken length of `text` (already normalised) in seconds."""
    return sum(char_seconds(char) for char in text)


TYPICAL_PER_ESTIMATE = 1.65
"""estimate_seconds is a low bound (it must never refuse text that fits); the default voices
speak about 1.4-1.8x as long (Pico de/en, measured on news sentences)."""
TYPICAL_PADDING = 0.35
"""Seconds of lead-in and tail every synthesis adds ("Ja" alone lasts 0.47 s)."""


def typical_seconds(text: str) -> float:
    """How long `text` (normalised) usually takes to say: for time estimates, not for caps."""
    return TYPICAL_PER_ESTIMATE * estimate_seconds(text) + TYPICAL_PADDING


def check_spoken_length(text: str, max_seconds: float) -> float:
    """The estimate for `text`; SpeechTooLongError when it passes `max_seconds`."""
    return check_estimate(estimate_seconds(text), max_seconds)


def check_estimate(seconds: float, max_seconds: float) -> float:
    """`seconds` back; SpeechTooLongError when this estimate passes `max_seconds`."""
    if seconds > max_seconds:
        raise SpeechTooLongError(
            f"The text would take about {format_duration(seconds)} to say; the limit is "
            f"{format_duration(max_seconds)}. Send a shorter text."
        )
    return seconds


def chunks(text: str, budget: float = CHUNK_SECONDS) -> Iterator[str]:
    """`text` in pieces of at most `budget` estimated seconds, split at sentence ends, then at
    spaces, then (scripts written without spaces) between characters."""
    current: list[str] = []
    current_seconds = 0.0
    for piece in _pieces(text, budget):
        seconds = estimate_seconds(piece)
        if current and current_seconds + seconds > budget:
            yield " ".join(current)
            current, current_seconds = [], 0.0
        current.append(piece)
        current_seconds += seconds
    if current:
        yield " ".join(current)


def _pieces(text: str, budget: float) -> Iterator[str]:
    """Sentences, each cut further until it fits `budget`."""
    for sentence in _SENTENCE_SPLIT.split(text.strip()):
        if not sentence:
            continue
        if estimate_seconds(sentence) <= budget:
            yield sentence
            continue
        yield from _cut(sentence, budget)


def _cut(sentence: str, budget: float) -> Iterator[str]:
    """Split an over-long sentence at spaces, or between characters where it has none."""
    piece: list[str] = []
    seconds = 0.0
    for token in re.findall(r"\S+\s*|\s+", sentence):
        for part in [token] if estimate_seconds(token) <= budget else list(token):
            cost = estimate_seconds(part)
            if piece and seconds + cost > budget:
                yield "".join(piece).strip()
                piece, seconds = [], 0.0
            piece.append(part)
            seconds += cost
    if "".join(piece).strip():
        yield "".join(piece).strip()


def _spoken(backend: SpeechBackend, text: str, lang: str, voice: str | None) -> Iterator[Speech]:
    """The speech for one chunk: streamed pieces where the backend streams, else one piece."""
    if isinstance(backend, StreamingBackend):
        for track in backend.stream(text, lang, voice):
            yield Speech(audio=track)
        return
    yield backend.synthesize(text, lang, voice)


def synthesize_capped(
    backend: SpeechBackend,
    text: str,
    lang: str,
    voice: str | None,
    max_seconds: float,
    stop: Callable[[], bool] | None = None,
) -> Speech:
    """Speak `text` chunk by chunk and stop once the audio reaches `max_seconds` (cut there).

    Streaming backends are stopped within their stream, others after the chunk that reached
    the cap. A chunk with nothing speakable in it (only punctuation) is skipped; a text with
    nothing speakable at all raises the backend's InvalidTextError.
    """
    if not text.strip():
        raise InvalidTextError("Text is empty.")
    parts: list[np.ndarray] = []
    events: list[PhonemeEvent] = []
    heard: list[WordEvent] = []
    sample_rate = 0
    total = 0.0
    skipped: InvalidTextError | None = None
    for chunk in chunks(text):
        if stop is not None and stop():
            raise CanceledError("Speech synthesis was stopped.")
        try:
            for speech in _spoken(backend, chunk, lang, voice):
                if sample_rate and speech.audio.sample_rate != sample_rate:
                    raise RuntimeError("A speech backend changed its sample rate mid-text.")
                sample_rate = speech.audio.sample_rate
                parts.append(speech.audio.samples)
                events.extend(
                    PhonemeEvent(e.phoneme, e.start + total, e.end + total) for e in speech.phonemes
                )
                heard.extend(shifted(speech.words, total))
                total += speech.audio.duration
                if total >= max_seconds:
                    break
        except InvalidTextError as exc:
            skipped = exc
            continue
        if total >= max_seconds:
            break
    if not parts:
        raise skipped or InvalidTextError("Text contains nothing that can be spoken.")
    samples = np.concatenate(parts)[: int(max_seconds * sample_rate)]
    audio = AudioTrack(samples=samples, sample_rate=sample_rate)
    end = audio.duration
    phonemes = tuple(
        PhonemeEvent(e.phoneme, e.start, min(e.end, end)) for e in events if e.start < end
    )
    return Speech(audio=audio, phonemes=phonemes, words=cut(heard, end))

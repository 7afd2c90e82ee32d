"""What will be spoken: pause marks, the user's pronunciation lexicon, then normalisation.

A text is cut at its pause marks into segments, each segment's words are replaced from the
lexicon for the text's language and then normalised (`facecast.speech.normalize`); synthesis
speaks the segments one by one with silence between them (`speak`). `spoken_text` shows a user
the same thing as one line, so what they check is what is said.

Pause marks, both spellings work anywhere in the text:

- `[pause 500ms]`, `[pause 1.5s]`
- SSML `<break time="500ms"/>`, `<break strength="strong"/>` (`none` 0 ms, `x-weak` 100,
  `weak` 250, `medium` 400, `strong` 750, `x-strong` 1200; a bare `<break/>` is medium)

A lexicon is plain text, one entry a line, grouped by language:

    # comments start with #
    [de]
    Nguyen = Nguu-jen
    [en]
    Nguyen = Win
    GIF = jiff

Entries match whole words regardless of case; the longest entry wins where two overlap. A
section applies to its language and its regions (`[en]` to en-US and en-GB; `[en-gb]` only to
en-GB, before `[en]`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from facecast.audio import AudioTrack
from facecast.errors import ErrorCode, FacecastError, InvalidTextError
from facecast.speech import PhonemeEvent, Speech, SpeechBackend, WordEvent, language_key, limits
from facecast.speech.limits import estimate_seconds, synthesize_capped
from facecast.speech.normalize import normalize
from facecast.speech.transcript import with_words
from facecast.speech.words import cut, respelled, shifted

MAX_PAUSE_SECONDS = 10.0
"""The longest single pause a text may ask for."""
MAX_PAUSES = 200
"""Pause marks one text may hold (each is a synthesis call of its own)."""
MAX_LEXICON_ENTRIES = 2000
MAX_LEXICON_WORD = 100
"""Characters in one lexicon entry's word or in what it is said as."""
BREAK_STRENGTHS = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.25,
    "medium": 0.4,
    "strong": 0.75,
    "x-strong": 1.2,
}
"""SSML's named break strengths in seconds (the spec leaves them to the synthesiser)."""

_PAUSE_MARK = re.compile(
    r"\[\s*pause\s+(?P<amount>\d{1,6}(?:\.\d{1,3})?)\s*(?P<unit>ms|s)\s*\]"
    r"|<\s*break\b(?P<attrs>[^<>]{0,200}?)/?\s*>",
    re.IGNORECASE,
)
_BREAK_ATTR = re.compile(r"""(\w[\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_BREAK_TIME = re.compile(r"\s*(\d{1,6}(?:\.\d{1,3})?)\s*(ms|s)\s*", re.IGNORECASE)
_SECTION = re.compile(r"\[\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)\s*\]")


class InvalidLexiconError(FacecastError):
    code = ErrorCode.INVALID_LEXICON


@dataclass(frozen=True)
class Segment:
    """A stretch of text spoken in one go and the silence after it (seconds)."""

    text: str
    pause_after: float = 0.0
    written: str | None = None
    """The segment as the user wrote it (`text` is what is said); captions show this."""


@dataclass(frozen=True)
class Lexicon:
    """The user's pronunciations: (language code, word, how to say it), lower-case codes."""

    entries: tuple[tuple[str, str, str], ...] = ()

    def for_language(self, lang: str) -> dict[str, str]:
        """Word (lower-case) -> spoken form for `lang`; a region's own entries win."""
        words: dict[str, str] = {}
        for code in reversed(language_key(lang)):
            words.update({w.lower(): said for c, w, said in self.entries if c == code})
        return words


def parse_lexicon(text: str) -> Lexicon:
    """A lexicon from its text form (module docstring); InvalidLexiconError names the line."""
    entries: list[tuple[str, str, str]] = []
    lang: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        section = _SECTION.fullmatch(line)
        if section:
            lang = section.group(1).lower().replace("_", "-")
            continue
        word, sep, said = (part.strip() for part in line.partition("="))
        if lang is None:
            raise InvalidLexiconError(
                f"Lexicon line {number}: entries need a language section first, e.g. [de]."
            )
        if not sep or not word or not said:
            raise InvalidLexiconError(f"Lexicon line {number}: write it as `word = how to say it`.")
        if len(word) > MAX_LEXICON_WORD or len(said) > MAX_LEXICON_WORD:
            raise InvalidLexiconError(
                f"Lexicon line {number}: at most {MAX_LEXICON_WORD} characters a side."
            )
        if _PAUSE_MARK.search(said):
            raise InvalidLexiconError(f"Lexicon line {number}: pauses belong in the text.")
        entries.append((lang, word, said))
        if len(entries) > MAX_LEXICON_ENTRIES:
            raise InvalidLexiconError(f"A lexicon holds at most {MAX_LEXICON_ENTRIES} entries.")
    return Lexicon(tuple(entries))


@lru_cache(maxsize=32)
def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first so "New York" wins over "New"; \w-boundaries keep "GIFs" apart from "GIF".
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def apply_lexicon(text: str, lang: str, lexicon: Lexicon | None) -> str:
    """`text` with the lexicon's words for `lang` replaced by how they are said."""
    words = lexicon.for_language(lang) if lexicon else {}
    if not words:
        return text
    pattern = _word_pattern(tuple(sorted(words)))
    return pattern.sub(lambda match: words[match.group(0).lower()], text)


def _break_seconds(attrs: str) -> float:
    values = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _BREAK_ATTR.finditer(attrs)
    }
    if "time" in values:
        time = _BREAK_TIME.fullmatch(values["time"])
        if time is None:
            raise InvalidTextError(
                f'A break\'s time must read like "500ms" or "1.5s", not {values["time"]!r}.'
            )
        return _seconds(time.group(1), time.group(2))
    strength = values.get("strength", "medium").lower()
    if strength not in BREAK_STRENGTHS:
        raise InvalidTextError(
            f"A break's strength is one of {', '.join(BREAK_STRENGTHS)}, not {strength!r}."
        )
    return BREAK_STRENGTHS[strength]


def _seconds(amount: str, unit: str) -> float:
    seconds = float(amount) / (1000.0 if unit.lower() == "ms" else 1.0)
    if seconds > MAX_PAUSE_SECONDS:
        raise InvalidTextError(f"A pause may last at most {MAX_PAUSE_SECONDS:g} s.")
    return seconds


def check_length(text: str, max_chars: int) -> None:
    """InvalidTextError for a text longer than `max_chars` characters (FACECAST_MAX_TEXT_CHARS)."""
    if len(text) > max_chars:
        raise InvalidTextError(
            f"The text has {len(text)} characters; at most {max_chars} are accepted."
        )


def segments(text: str) -> tuple[Segment, ...]:
    """`text` cut at its pause marks, as written (neither lexicon nor normalisation applied)."""
    parts: list[Segment] = []
    start = 0
    for count, mark in enumerate(_PAUSE_MARK.finditer(text), start=1):
        if count > MAX_PAUSES:
            raise InvalidTextError(f"A text may hold at most {MAX_PAUSES} pauses.")
        if mark.group("amount") is not None:
            pause = _seconds(mark.group("amount"), mark.group("unit"))
        else:
            pause = _break_seconds(mark.group("attrs") or "")
        parts.append(Segment(text[start : mark.start()], pause))
        start = mark.end()
    parts.append(Segment(text[start:]))
    return _merged(parts)


def _merged(parts: Iterable[Segment]) -> tuple[Segment, ...]:
    """Pauses after an empty stretch join the pause before it (a leading pause stays)."""
    merged: list[Segment] = []
    for part in parts:
        if merged and not part.text.strip():
            merged[-1] = Segment(merged[-1].text, merged[-1].pause_after + part.pause_after)
        else:
            merged.append(Segment(part.text.strip(), part.pause_after))
    return tuple(merged)


def prepare(text: str, lang: str, lexicon: Lexicon | str | None = None) -> tuple[Segment, ...]:
    """The segments as they will be said: lexicon (or its text form), then normalisation."""
    if isinstance(lexicon, str):
        lexicon = parse_lexicon(lexicon)
    return tuple(
        Segment(normalize(apply_lexicon(seg.text, lang, lexicon), lang), seg.pause_after, seg.text)
        for seg in segments(text)
    )


def spoken_text(prepared: Iterable[Segment]) -> str:
    """One line a user can check: the words as said, with `[pause Nms]` where silence goes."""
    pieces: list[str] = []
    for seg in prepared:
        if seg.text:
            pieces.append(seg.text)
        if seg.pause_after > 0:
            pieces.append(f"[pause {round(seg.pause_after * 1000)}ms]")
    return " ".join(pieces)


def estimated_seconds(prepared: Iterable[Segment]) -> float:
    """Low-bound spoken length (limits.estimate_seconds) plus the pauses."""
    return sum(estimate_seconds(seg.text) + seg.pause_after for seg in prepared)


def typical_seconds(prepared: Iterable[Segment]) -> float:
    """How long the segments usually take to say, pauses included: for time estimates."""
    segs = tuple(prepared)
    spoken = " ".join(seg.text for seg in segs if seg.text)
    return limits.typical_seconds(spoken) + sum(seg.pause_after for seg in segs)


def speak(
    backend: SpeechBackend,
    prepared: tuple[Segment, ...],
    lang: str,
    voice: str | None,
    max_seconds: float,
    stop: Callable[[], bool] | None = None,
) -> Speech:
    """Each segment spoken with its pause after it, timings (phonemes and words, the latter
    aligned where the backend gives none) shifted into one track, the whole
    cut at `max_seconds` (each segment gets what the ones before it left); `stop` is asked
    between chunks (CanceledError once it says so)."""
    if not any(seg.text for seg in prepared):
        raise InvalidTextError("Text is empty.")
    spoken: list[tuple[Speech | None, float]] = []
    total = 0.0
    for seg in prepared:
        if total >= max_seconds:
            break
        speech = None
        if seg.text:
            speech = synthesize_capped(backend, seg.text, lang, voice, max_seconds - total, stop)
            speech = with_words(speech, seg.text, lang)
            if seg.written is not None and seg.written != seg.text:
                speech = replace(speech, words=respelled(speech.words, seg.written))
            total += speech.audio.duration
        spoken.append((speech, seg.pause_after))
        total += seg.pause_after
    return _joined(spoken, max_seconds)


def _joined(spoken: list[tuple[Speech | None, float]], max_seconds: float) -> Speech:
    rate = next(s.audio.sample_rate for s, _ in spoken if s is not None)
    samples: list[np.ndarray] = []
    events: list[PhonemeEvent] = []
    heard: list[WordEvent] = []
    offset = 0
    for speech, pause in spoken:
        if speech is not None:
            if speech.audio.sample_rate != rate:
                raise RuntimeError("A speech backend changed its sample rate mid-text.")
            shift = offset / rate
            events.extend(
                PhonemeEvent(e.phoneme, e.start + shift, e.end + shift) for e in speech.phonemes
            )
            heard.extend(shifted(speech.words, shift))
            samples.append(speech.audio.samples)
            offset += len(speech.audio.samples)
        silence = round(pause * rate)
        samples.append(np.zeros(silence, dtype=np.float32))
        offset += silence
    audio = AudioTrack(np.concatenate(samples)[: int(max_seconds * rate)], rate)
    end = audio.duration
    phonemes = tuple(
        PhonemeEvent(e.phoneme, e.start, min(e.end, end)) for e in events if e.start < end
    )
    return Speech(audio=audio, phonemes=phonemes, words=cut(heard, end))

"""Word timings as pure functions: which word of a text is heard when (the captions' input).

The words are the text's whitespace-separated tokens with their punctuation attached ("Köln,"),
so a caption reads like the text. A synthesiser reports where words start (espeak-ng's word
events, as character offsets); `timed_words` turns those starts into `WordEvent`s that end
where their last sounding phoneme ends. The rest moves word events along with the audio:
shifted when speech is joined, scaled with the speaking rate, cut with the audio.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np

from facecast.speech import PhonemeEvent, WordEvent

PAUSE = "_"
"""The phoneme name of silence (as facecast.speech.espeak names it)."""
_TOKEN = re.compile(r"\S+")
_SPEAKABLE = re.compile(r"\w")


def tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, token) for each whitespace-separated token of `text`."""
    return [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(text)]


def timed_words(
    text: str,
    starts: Sequence[tuple[float, int]],
    phonemes: Sequence[PhonemeEvent],
    duration: float,
) -> tuple[WordEvent, ...]:
    """The tokens of `text` timed from (seconds, 0-based character offset) word starts.

    A token starts at the earliest start inside it; a token without one (a lone dash, a
    word the synthesiser skipped) joins the token before it, or the one after it at the
    text's start. Each word ends where the last sounding phoneme before the next word ends
    (at the next word's start when the phonemes say nothing).
    """
    timed: list[tuple[str, float]] = []
    pending: list[str] = []
    for first, last, token in tokens(text):
        inside = [t for t, at in starts if first <= at < last]
        if inside:
            timed.append((" ".join([*pending, token]), min(inside)))
            pending = []
        elif timed:
            timed[-1] = (f"{timed[-1][0]} {token}", timed[-1][1])
        else:
            pending.append(token)
    if not timed:
        return ()
    if pending:
        timed[-1] = (" ".join([timed[-1][0], *pending]), timed[-1][1])
    begins = np.maximum.accumulate(np.clip([t for _, t in timed], 0.0, duration))
    return _ended([w for w, _ in timed], [float(b) for b in begins], phonemes, duration)


def _ended(
    words: Sequence[str],
    begins: Sequence[float],
    phonemes: Sequence[PhonemeEvent],
    duration: float,
) -> tuple[WordEvent, ...]:
    """Words from their starts, each ended at its last sounding phoneme before the next."""
    nexts = [*begins[1:], duration]
    events: list[WordEvent] = []
    for word, start, following in zip(words, begins, nexts, strict=True):
        sounding = [p.end for p in phonemes if p.phoneme != PAUSE and start <= p.start < following]
        end = min(max(sounding), following) if sounding else following
        events.append(WordEvent(word, start, max(end, start)))
    return tuple(events)


def spread_words(
    text: str, phonemes: Sequence[PhonemeEvent], duration: float
) -> tuple[WordEvent, ...]:
    """The tokens of `text` spread over the sounding stretch in proportion to their letters:
    the last resort when nothing aligns the text to the audio."""
    words = [token for _, _, token in tokens(text)]
    if not words:
        return ()
    sounding = [p for p in phonemes if p.phoneme != PAUSE]
    begin = sounding[0].start if sounding else 0.0
    end = sounding[-1].end if sounding else duration
    weights = np.array([max(1, len(_SPEAKABLE.findall(w))) for w in words], dtype=np.float64)
    edges = begin + (end - begin) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return tuple(
        WordEvent(w, float(a), float(b))
        for w, a, b in zip(words, edges[:-1], edges[1:], strict=True)
    )


def carried(
    words: Iterable[WordEvent], xs: np.ndarray, ys: np.ndarray, duration: float
) -> tuple[WordEvent, ...]:
    """Words timed on one rendition carried onto another through a monotone time map
    (anchor times `xs` -> `ys`, as facecast.speech.align.time_map gives them)."""
    events = tuple(words)
    if not events:
        return ()
    starts = np.interp([w.start for w in events], xs, ys)
    ends = np.interp([w.end for w in events], xs, ys)
    return tuple(
        WordEvent(w.word, float(min(s, duration)), float(min(max(e, s), duration)))
        for w, s, e in zip(events, starts, ends, strict=True)
    )


def shifted(words: Iterable[WordEvent], by: float) -> list[WordEvent]:
    """Words `by` seconds later (speech joined after other speech)."""
    return [WordEvent(w.word, w.start + by, w.end + by) for w in words]


def cut(words: Iterable[WordEvent], end: float) -> tuple[WordEvent, ...]:
    """The words that start before `end`, none ending after it (audio cut at `end`)."""
    return tuple(WordEvent(w.word, w.start, min(w.end, end)) for w in words if w.start < end)


def scaled(words: Iterable[WordEvent], factor: float, duration: float) -> tuple[WordEvent, ...]:
    """Words stretched by `factor` in time and kept inside `duration` (a changed rate)."""
    return cut((WordEvent(w.word, w.start * factor, w.end * factor) for w in words), duration)


def _key(token: str) -> str:
    """A token as compared across spellings: lower case, letters and digits only."""
    return "".join(_SPEAKABLE.findall(token.lower()))


def respelled(words: Sequence[WordEvent], written: str) -> tuple[WordEvent, ...]:
    """`words` (timed on the text as spoken: normalised, the lexicon applied) in the spelling
    of `written`, the text as the user wrote it.

    Tokens the two share keep their times; a written stretch that was said differently
    ("2.14" said "zwei vierzehn", a lexicon word) spans the time of what was said for it; a
    written token nothing was said for (a lone dash) joins the token before it.
    """
    spoken: list[tuple[str, WordEvent]] = [
        (token, word) for word in words for token in word.word.split()
    ]
    targets = [token for _, _, token in tokens(written)]
    if not spoken or not targets:
        return tuple(words)
    matcher = difflib.SequenceMatcher(
        None, [_key(t) for t, _ in spoken], [_key(t) for t in targets], autojunk=False
    )
    spans: list[tuple[float, float] | None] = [None] * len(targets)
    for _, i1, i2, j1, j2 in matcher.get_opcodes():
        if i1 == i2:
            continue  # written, not said: joins a neighbour below
        said = [word for _, word in spoken[i1:i2]]
        if j1 == j2:
            # Said, not written: its time goes to the written token before it.
            if j1 > 0 and spans[j1 - 1] is not None:
                start, _ = spans[j1 - 1]  # type: ignore[misc]
                spans[j1 - 1] = (start, said[-1].end)
            continue
        if i2 - i1 == j2 - j1:
            for offset in range(j2 - j1):
                spans[j1 + offset] = (said[offset].start, said[offset].end)
            continue
        # Differently said: the stretch shares the time in proportion to its letters.
        weights = np.array([max(1, len(_key(t))) for t in targets[j1:j2]], dtype=np.float64)
        begin, end = said[0].start, max(w.end for w in said)
        edges = begin + (end - begin) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        for offset in range(j2 - j1):
            spans[j1 + offset] = (float(edges[offset]), float(edges[offset + 1]))
    # A token with nothing to say (a dash) is shown with the word before it.
    spans = [span if _key(t) else None for t, span in zip(targets, spans, strict=True)]
    return _joined_spans(targets, spans)


def _joined_spans(
    targets: Sequence[str], spans: Sequence[tuple[float, float] | None]
) -> tuple[WordEvent, ...]:
    """Written tokens with their spans; one without a span joins its neighbour."""
    events: list[WordEvent] = []
    pending: list[str] = []
    for token, span in zip(targets, spans, strict=True):
        if span is None:
            if events:
                last = events[-1]
                events[-1] = WordEvent(f"{last.word} {token}", last.start, last.end)
            else:
                pending.append(token)
            continue
        start = max(span[0], events[-1].start if events else 0.0)
        events.append(WordEvent(" ".join([*pending, token]), start, max(span[1], start)))
        pending = []
    if pending and events:
        last = events[-1]
        events[-1] = WordEvent(" ".join([last.word, *pending]), last.start, last.end)
    return tuple(events)


def off_pauses(
    words: Iterable[WordEvent], sounding: Sequence[tuple[float, float]]
) -> tuple[WordEvent, ...]:
    """Words carried onto other audio, moved out of its pauses: a start inside a pause moves
    to the pause's end, an end inside one to its start. `sounding`: the (start, end) stretches
    of speech between the pauses, in order."""
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(sounding)]
    fitted: list[WordEvent] = []
    for word in words:
        start, end = word.start, word.end
        for first, last in gaps:
            if first < start < last:
                start = last
            if first < end < last:
                end = first
        fitted.append(WordEvent(word.word, start, max(end, start)))
    return tuple(fitted)

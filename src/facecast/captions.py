"""Captions from word timings: cues with line breaks, written as WebVTT or SRT.

Pure functions over `WordEvent`s (facecast.speech.words). A cue gathers words until its text
no longer fits `max_lines` lines of `max_chars`, it would last longer than MAX_CUE_SECONDS, a
pause of PAUSE_SPLIT_S or more comes, or a sentence ends; its times are its first word's start
and its last word's end. WebVTT cues carry each word's start as an inline timestamp, so players
that style `::cue(:past)` / `::cue(:future)` highlight the spoken word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from facecast.speech import WordEvent

SIDECAR_SUFFIX = {"vtt": ".vtt", "srt": ".srt", "burn": ".vtt"}
"""The caption file each mode writes beside the video."""
MEDIA_TYPES = {".vtt": "text/vtt", ".srt": "application/x-subrip"}

MAX_CHARS = 42
"""Characters a caption line holds (the common broadcast guideline for 16:9)."""
MAX_LINES = 2
MAX_CUE_SECONDS = 7.0
"""A cue stays at most this long on screen."""
PAUSE_SPLIT_S = 0.7
"""A silence this long between words starts a new cue."""
MIN_CUE_S = 0.001
"""WebVTT wants a cue's end after its start; a zero-length word gets this much."""
CLAUSE_ENDS = (",", ";", ":", "–", "—")
SENTENCE_ENDS = (".", "!", "?", "…", ".»", '."', "!»", "?»")


@dataclass(frozen=True)
class Cue:
    """One caption on screen: its rows of words (with their times), top to bottom."""

    start: float
    end: float
    rows: tuple[tuple[WordEvent, ...], ...]

    @property
    def words(self) -> tuple[WordEvent, ...]:
        """Every word of the cue, in order."""
        return tuple(word for row in self.rows for word in row)

    @property
    def lines(self) -> tuple[str, ...]:
        """Each row as text."""
        return tuple(" ".join(w.word for w in row) for row in self.rows)

    @property
    def text(self) -> str:
        """The lines joined by newlines."""
        return "\n".join(self.lines)


def line_breaks(words: Sequence[str], max_chars: int = MAX_CHARS) -> tuple[int, ...]:
    """How many of `words` each line takes: one line, or two as even as the breaks allow; a
    text that fits in neither is broken greedily (an over-long word gets a line of its own)."""
    if len(" ".join(words)) <= max_chars or len(words) < 2:
        return (len(words),)
    best: tuple[tuple[int, int], int] | None = None
    for cut in range(1, len(words)):
        top, bottom = len(" ".join(words[:cut])), len(" ".join(words[cut:]))
        if top <= max_chars and bottom <= max_chars:
            # Even lines first; of two equally even, the shorter top line (a pyramid).
            score = (abs(top - bottom), top)
            if best is None or score < best[0]:
                best = (score, cut)
    if best is not None:
        return (best[1], len(words) - best[1])
    return _greedy(words, max_chars)


def _greedy(words: Sequence[str], max_chars: int) -> tuple[int, ...]:
    counts: list[int] = []
    width = 0
    for word in words:
        if counts and width + 1 + len(word) <= max_chars:
            counts[-1] += 1
            width += 1 + len(word)
        else:
            counts.append(1)
            width = len(word)
    return tuple(counts)


def rows_of(
    words: Sequence[WordEvent], max_chars: int = MAX_CHARS
) -> tuple[tuple[WordEvent, ...], ...]:
    """`words` cut into lines by `line_breaks`."""
    rows: list[tuple[WordEvent, ...]] = []
    at = 0
    for count in line_breaks([w.word for w in words], max_chars):
        rows.append(tuple(words[at : at + count]))
        at += count
    return tuple(rows)


def _fits(words: Sequence[str], max_chars: int, max_lines: int) -> bool:
    counts = line_breaks(words, max_chars)
    if len(counts) > max_lines:
        return False
    at = 0
    for count in counts:
        if len(" ".join(words[at : at + count])) > max_chars:
            return False
        at += count
    return True


def cues(
    words: Sequence[WordEvent], max_chars: int = MAX_CHARS, max_lines: int = MAX_LINES
) -> tuple[Cue, ...]:
    """The words grouped into cues (see the module docstring), in order."""
    groups: list[list[WordEvent]] = []
    for word in words:
        if not word.word.strip():
            continue
        if not groups or _starts_new(groups[-1], word, max_chars, max_lines):
            groups.append([word])
        else:
            groups[-1].append(word)
    return tuple(_cue(group, max_chars) for group in groups)


def _starts_new(current: list[WordEvent], word: WordEvent, max_chars: int, lines: int) -> bool:
    last = current[-1]
    return (
        last.word.endswith(SENTENCE_ENDS)
        or word.start - last.end >= PAUSE_SPLIT_S
        or word.end - current[0].start > MAX_CUE_SECONDS
        # A clause ends at a comma: a cue already a line long stops there.
        or (last.word.endswith(CLAUSE_ENDS) and len(" ".join(w.word for w in current)) >= max_chars)
        or not _fits([w.word for w in [*current, word]], max_chars, lines)
    )


def _cue(group: list[WordEvent], max_chars: int) -> Cue:
    start = group[0].start
    end = max(group[-1].end, start + MIN_CUE_S)
    return Cue(start, end, rows_of(group, max_chars))


def timestamp(seconds: float, separator: str = ".") -> str:
    """`HH:MM:SS.mmm` (WebVTT) or, with separator ",", `HH:MM:SS,mmm` (SRT)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_payload(cue: Cue) -> str:
    """The cue's lines with an inline timestamp before every word after the first."""
    start_ms, end_ms = round(cue.start * 1000), round(cue.end * 1000)
    lines: list[str] = []
    first = True
    for row in cue.rows:
        pieces: list[str] = []
        for word in row:
            at = round(word.start * 1000)
            # Only words spoken strictly inside the cue may carry a timestamp.
            stamp = f"<{timestamp(at / 1000)}>" if start_ms < at < end_ms and not first else ""
            pieces.append(stamp + _vtt_escape(word.word))
            first = False
        lines.append(" ".join(pieces))
    return "\n".join(lines)


def to_webvtt(captions: Sequence[Cue], word_times: bool = True) -> str:
    """A WebVTT file; with `word_times`, every word's start as an inline timestamp."""
    blocks = ["WEBVTT"]
    for number, cue in enumerate(captions, start=1):
        payload = _vtt_payload(cue) if word_times else _vtt_escape(cue.text)
        blocks.append(f"{number}\n{timestamp(cue.start)} --> {timestamp(cue.end)}\n{payload}")
    return "\n\n".join(blocks) + "\n"


def to_srt(captions: Sequence[Cue]) -> str:
    """A SubRip file (numbered cues, comma decimal separator)."""
    blocks = [
        f"{number}\n{timestamp(cue.start, ',')} --> {timestamp(cue.end, ',')}\n"
        + cue.text.replace("-->", "->")
        for number, cue in enumerate(captions, start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def caption_file(words: Sequence[WordEvent], mode: str) -> str:
    """The caption file `mode` writes beside the video (see SIDECAR_SUFFIX)."""
    made = cues(words)
    return to_srt(made) if mode == "srt" else to_webvtt(made)

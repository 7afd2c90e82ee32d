"""The session's one timeline: speech waiting to be played, what plays now, and the mouth that
goes with each moment.

Time is counted in samples of the outgoing audio (OUT_RATE). The audio track takes samples
from here as it sends them, and that is when a segment gets its place on the timeline; the
video track asks for the mouth at its own frame's time on the same count. So the lips follow
the sound that left with them, whatever the synthesis or the network did before.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from facecast.audio import AudioTrack

OUT_RATE = 48_000
"""Outgoing audio rate (Opus's own)."""
NO_SOUND = AudioTrack(np.zeros(0, np.float32), OUT_RATE)
"""What a live frame's renderer hears: the sound arrives in pieces while the face already
moves, so renderers that the sound drives are not offered for live sessions (warp is)."""
MOUTH_CHANNELS = ("jaw", "width", "tongue", "smile")
"""What speech moves; every other channel comes from the idle motion."""
RELEASE_S = 0.04
"""Time constant with which the mouth returns to rest after speech ends or is cleared:
after 0.12 s less than 5 % of an opening is left."""


@dataclass(frozen=True)
class Segment:
    """A piece of one utterance: its sound at OUT_RATE and its mouth, one value per frame."""

    utterance: str
    samples: np.ndarray
    mouth: dict[str, np.ndarray]
    fps: int
    first: bool = True
    last: bool = True

    def mouth_at(self, offset: int) -> dict[str, float]:
        """The mouth `offset` samples into the segment."""
        n = len(self.mouth.get("jaw", ()))
        if n == 0:
            return dict.fromkeys(MOUTH_CHANNELS, 0.0)
        index = min(max(offset * self.fps // OUT_RATE, 0), n - 1)
        return {name: float(self.mouth[name][index]) for name in MOUTH_CHANNELS}


@dataclass(frozen=True)
class Event:
    """What the client is told: an utterance started, or ended (played out or cleared)."""

    kind: str
    utterance: str
    interrupted: bool = False

    def message(self) -> dict[str, object]:
        """The data-channel message."""
        if self.kind == "speech_started":
            return {"type": self.kind, "id": self.utterance}
        return {"type": self.kind, "id": self.utterance, "interrupted": self.interrupted}


@dataclass
class _Placed:
    start: int
    segment: Segment

    @property
    def end(self) -> int:
        return self.start + len(self.segment.samples)


@dataclass
class Playout:
    """Segments queued, placed and played; the mouth at any sample of the timeline."""

    waiting: deque[Segment] = field(default_factory=deque)
    placed: deque[_Placed] = field(default_factory=deque)
    position: int = 0
    """Samples handed to the audio track so far."""
    _release_from: dict[str, float] = field(default_factory=dict)
    _release_at: int = 0
    _open: set[str] = field(default_factory=set)
    """Utterances started and not yet ended."""

    def add(self, segment: Segment) -> None:
        """Queue `segment` after everything already queued."""
        self.waiting.append(segment)

    @property
    def speaking(self) -> bool:
        """True from an utterance's start to its end (gaps of streamed audio included)."""
        return bool(self._open)

    @property
    def busy(self) -> bool:
        """True while something is queued, plays, or an utterance waits for more."""
        return bool(self.waiting) or bool(self.placed) or bool(self._open)

    def pull(self, count: int) -> tuple[np.ndarray, list[Event]]:
        """The next `count` samples (silence where nothing is queued) and what they start and
        end."""
        out = np.zeros(count, dtype=np.float32)
        events: list[Event] = []
        filled = 0
        tail = self.placed[-1].end if self.placed else self.position
        cursor = max(tail, self.position)
        while self.waiting and cursor < self.position + count:
            segment = self.waiting.popleft()
            self.placed.append(_Placed(cursor, segment))
            if segment.first or segment.utterance not in self._open:
                self._open.add(segment.utterance)
                events.append(Event("speech_started", segment.utterance))
            cursor += len(segment.samples)
        for item in self.placed:
            lo = max(item.start, self.position)
            hi = min(item.end, self.position + count)
            if hi > lo:
                out[lo - self.position : hi - self.position] = item.segment.samples[
                    lo - item.start : hi - item.start
                ]
                filled = max(filled, hi - self.position)
        self.position += count
        while self.placed and self.placed[0].end <= self.position:
            done = self.placed.popleft()
            # A segment whose utterance goes on later (audio still streaming) relaxes too.
            self._release_from = done.segment.mouth_at(len(done.segment.samples) - 1)
            self._release_at = done.end
            if done.segment.last:
                self._open.discard(done.segment.utterance)
                events.append(Event("speech_ended", done.segment.utterance))
        return out, events

    def clear(self) -> list[Event]:
        """Drop everything queued and playing; the ended events of what was cut short."""
        cut: list[str] = []
        at = self.position
        playing = [p for p in self.placed if p.start <= at < p.end]
        if playing:
            self._release_from = playing[0].segment.mouth_at(at - playing[0].start)
            self._release_at = at
        for item in [*self.placed]:
            if item.segment.utterance not in cut:
                cut.append(item.segment.utterance)
        for segment in self.waiting:
            if segment.utterance not in cut:
                cut.append(segment.utterance)
        cut += [u for u in self._open if u not in cut]
        self.waiting.clear()
        self.placed.clear()
        self._open.clear()
        return [Event("speech_ended", u, interrupted=True) for u in cut]

    def mouth_at(self, sample: int) -> dict[str, float] | None:
        """The mouth at timeline `sample`: the playing segment's, or the last one's relaxing
        back to rest; None once at rest (the idle mouth)."""
        for item in self.placed:
            if item.start <= sample < item.end:
                return item.segment.mouth_at(sample - item.start)
        if not self._release_from:
            return None
        elapsed = max(sample - self._release_at, 0) / OUT_RATE
        share = math.exp(-elapsed / RELEASE_S)
        if share < 0.01:
            self._release_from = {}
            return None
        return {name: value * share for name, value in self._release_from.items()}

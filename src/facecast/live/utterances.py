"""Speech -> playout segments: text synthesised sentence by sentence (the first sentence plays
while the next is synthesised), and audio that another system synthesised, as it streams in.

Both go through the engine's own stages: `pipeline.speak` (any voice of the speech registry,
with its phoneme timings) and `motion.motion_curves` (the mouth of a rendered clip).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import numpy as np

from facecast import motion, pipeline
from facecast.audio import AudioTrack, resample
from facecast.errors import InvalidAudioError
from facecast.live.playout import MOUTH_CHANNELS, OUT_RATE, Segment
from facecast.options import RenderOptions
from facecast.speech import Speech

SENTENCE_END = re.compile(r"(?<=[.!?;:…])\s+")
MIN_SENTENCE_CHARS = 24
"""Shorter sentences are spoken together with the next: one synthesis call each costs more
than it saves."""
MIN_CHUNK_RATE, MAX_CHUNK_RATE = 8_000, 48_000
LEAD_LEVEL = 0.01
"""A sample louder than this is sound, not the silence a synthesiser puts before speech."""
LEAD_KEPT_S = 0.02
CONTEXT_S = 0.6
"""Audio before a streamed chunk that its mouth is computed with: the jaw follows loudness
against the speech around it (facecast.motion), which one short chunk alone would not show."""


def sentences(text: str) -> list[str]:
    """`text` cut after sentence marks, short pieces joined to the next."""
    pieces = [p.strip() for p in SENTENCE_END.split(text.strip()) if p.strip()]
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) < MIN_SENTENCE_CHARS:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _mouth(curves: motion.MotionCurves, first: int = 0) -> dict[str, np.ndarray]:
    return {name: getattr(curves, name)[first:].copy() for name in MOUTH_CHANNELS}


def _at_out_rate(track: AudioTrack) -> np.ndarray:
    return resample(track, OUT_RATE).samples.astype(np.float32)


def trim_lead(speech: Speech, keep: float = LEAD_KEPT_S) -> Speech:
    """`speech` without the silence before its first sound beyond `keep` seconds (the phoneme
    timings move with it): the lips of a live reply start that much sooner."""
    audio = speech.audio
    loud = np.flatnonzero(np.abs(audio.samples) > LEAD_LEVEL)
    cut = int(loud[0]) - int(keep * audio.sample_rate) if len(loud) else 0
    if cut <= 0:
        return speech
    shift = cut / audio.sample_rate
    phonemes = tuple(
        dataclasses.replace(p, start=max(p.start - shift, 0.0), end=p.end - shift)
        for p in speech.phonemes
        if p.end > shift
    )
    return Speech(AudioTrack(audio.samples[cut:], audio.sample_rate), phonemes)


def text_segments(text: str, utterance: str, options: RenderOptions) -> Iterator[Segment]:
    """One segment per sentence of `text`, each synthesised when the previous is taken."""
    parts = sentences(text)
    for index, part in enumerate(parts):
        speech = pipeline.speak(part, options)
        if index == 0:
            speech = trim_lead(speech)
        curves = motion.motion_curves(
            speech.audio, options.fps, phonemes=speech.phonemes, seed=options.seed
        )
        yield Segment(
            utterance,
            _at_out_rate(speech.audio),
            _mouth(curves),
            options.fps,
            first=index == 0,
            last=index == len(parts) - 1,
        )


def decode_pcm(pcm: bytes, rate: int) -> AudioTrack:
    """s16le mono bytes at `rate` -> a track; InvalidAudioError for what cannot be that."""
    if not MIN_CHUNK_RATE <= rate <= MAX_CHUNK_RATE:
        raise InvalidAudioError(
            f"rate must be {MIN_CHUNK_RATE} to {MAX_CHUNK_RATE} Hz, not {rate}."
        )
    if len(pcm) % 2:
        raise InvalidAudioError("pcm must be whole 16-bit samples (an even number of bytes).")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return AudioTrack(samples, rate)


class AudioStream:
    """One utterance of streamed audio: each chunk becomes a segment whose mouth is computed
    with the audio before it as context."""

    def __init__(self, utterance: str, rate: int, fps: int, max_seconds: float) -> None:
        self.utterance = utterance
        self.rate = rate
        self.fps = fps
        self.max_samples = int(max_seconds * rate)
        self._heard = np.zeros(0, dtype=np.float32)
        self._first = True

    def add(self, track: AudioTrack, final: bool) -> Segment:
        """The segment for the next chunk (`final` ends the utterance)."""
        if track.sample_rate != self.rate:
            raise InvalidAudioError(
                f"An utterance keeps one rate: it began at {self.rate} Hz, not {track.sample_rate}."
            )
        if len(self._heard) + len(track.samples) > self.max_samples:
            raise InvalidAudioError(
                f"The utterance is longer than {self.max_samples / self.rate:.0f} s."
            )
        context = self._heard[-int(CONTEXT_S * self.rate) :]
        # Frames of the context are dropped: whole frames, so the chunk's first frame starts
        # within a frame of its first sample.
        skip = len(context) * self.fps // self.rate
        context = context[len(context) - skip * self.rate // self.fps :] if skip else context[:0]
        joined = AudioTrack(np.concatenate([context, track.samples]), self.rate)
        curves = motion.motion_curves(joined, self.fps) if len(track.samples) else None
        mouth = (
            _mouth(curves, skip)
            if curves is not None
            else {name: np.zeros(0, np.float32) for name in MOUTH_CHANNELS}
        )
        self._heard = np.concatenate([self._heard, track.samples])
        segment = Segment(
            self.utterance,
            _at_out_rate(track) if len(track.samples) else np.zeros(0, np.float32),
            mouth,
            self.fps,
            first=self._first,
            last=final,
        )
        self._first = False
        return segment

"""Voice transformation through the WORLD vocoder: pure functions over AudioTrack and Speech.

One analysis (F0 by DIO + StoneMask, spectral envelope by CheapTrick, aperiodicity by D4C),
then the changes, then one resynthesis:

- `derive_voice`: another speaker from a voice (a male voice from a female Pico voice): F0
  scaled (the contour kept, its shape in semitones unchanged) and the spectral envelope
  warped along frequency (formants moved, as a longer vocal tract does), loudness matched.
- `apply_prosody`: the caller's rate (time-scaled, pitch kept), pitch (semitones, formants
  kept) and volume (dB); phoneme timings are scaled with the audio so the mouth follows.

Simpler shifters fail at a male-from-female ratio (librosa's phase vocoder and Rubber Band
with formants kept were 86-91 % WER in the issue's probe; sox moves the formants with the
pitch); WORLD keeps the envelope apart from the excitation, so both can be moved on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.audio import AudioTrack
from facecast.options import (
    DEFAULT_PITCH,
    DEFAULT_RATE,
    DEFAULT_VOLUME,
    RenderOptions,
    check_prosody,
)
from facecast.speech import PhonemeEvent, Speech
from facecast.speech.words import scaled

FRAME_PERIOD_MS = 5.0
"""WORLD's analysis hop: 5 ms is its default and fine enough for a 1.5x rate change."""
F0_FLOOR = 60.0
F0_CEIL = 500.0
"""Pitch search range (Hz): spans the synthetic voices (espeak 100 Hz, Pico 160-180 Hz) and
speech after a 12-semitone shift of either."""
ACTIVE_LEVEL = 10 ** (-40 / 20)
"""Samples above -40 dBFS count as speech when loudness is matched."""
PEAK_CEILING = 10 ** (-1 / 20)
"""Peaks stay below -1 dBFS: a louder `volume` stops there instead of clipping."""
SEMITONES_PER_OCTAVE = 12.0


@dataclass(frozen=True)
class VoiceShape:
    """How to turn one speaker into another (see `derive_voice`)."""

    f0_ratio: float
    """Multiplies every F0 value: the contour's shape (in semitones) is kept."""
    formant_ratio: float
    """Moves the spectral envelope along frequency: < 1 lowers the formants (a longer vocal
    tract). The envelope at f comes from f / formant_ratio of the source."""


@dataclass(frozen=True)
class Prosody:
    """The caller's changes to any voice: speaking rate, pitch and loudness."""

    rate: float = DEFAULT_RATE
    """Speed factor: 2.0 says the same in half the time; the pitch does not change."""
    pitch: float = DEFAULT_PITCH
    """Semitones up (+) or down (-); the formants stay where they are."""
    volume: float = DEFAULT_VOLUME
    """Gain in dB (peaks are held below PEAK_CEILING)."""

    def __post_init__(self) -> None:
        check_prosody(self.rate, self.pitch, self.volume)

    @classmethod
    def of(cls, options: RenderOptions) -> Prosody:
        """The prosody `options` ask for."""
        return cls(options.rate, options.pitch, options.volume)

    @property
    def neutral(self) -> bool:
        """True when nothing changes."""
        return self.rate == DEFAULT_RATE and self.pitch == DEFAULT_PITCH and not self.volume

    @property
    def resynthesised(self) -> bool:
        """True when the vocoder must run (rate or pitch change); volume alone is a gain."""
        return self.rate != DEFAULT_RATE or self.pitch != DEFAULT_PITCH


NEUTRAL = Prosody()
"""Rate 1, pitch 0, volume 0 dB: the speech as the backend made it."""


@dataclass(frozen=True)
class WorldFrames:
    """A WORLD analysis: F0 (Hz, 0 = unvoiced), spectral envelope and aperiodicity per frame."""

    f0: np.ndarray
    envelope: np.ndarray
    aperiodicity: np.ndarray
    sample_rate: int


def analyse(track: AudioTrack, robust: bool = True) -> WorldFrames:
    """WORLD's analysis of `track` at FRAME_PERIOD_MS.

    `robust`: F0 by Harvest (about 0.12 CPU seconds per second of speech). DIO + StoneMask is
    five times cheaper and agrees with Harvest on Pico's voices (median 162 vs 162 Hz, 104
    vs 103 after the male derivation), but on Piper's joe it jumped an octave in more than a
    tenth of the frames (median 170 Hz against Harvest's 108): only Pico's derivation uses it.
    """
    import pyworld

    x = track.samples.astype(np.float64)
    rate = track.sample_rate
    if robust:
        f0, times = pyworld.harvest(
            x, rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS
        )
    else:
        f0, times = pyworld.dio(
            x, rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS
        )
        f0 = pyworld.stonemask(x, f0, times, rate)
    # One FFT size for both, from the F0 floor (their own defaults differ at 22.05 kHz).
    fft_size = pyworld.get_cheaptrick_fft_size(rate, F0_FLOOR)
    envelope = pyworld.cheaptrick(x, f0, times, rate, f0_floor=F0_FLOOR, fft_size=fft_size)
    aperiodicity = pyworld.d4c(x, f0, times, rate, fft_size=fft_size)
    return WorldFrames(f0, envelope, aperiodicity, rate)


def synthesise(frames: WorldFrames, length: int) -> np.ndarray:
    """The waveform of `frames`, cut or padded to `length` samples (float32)."""
    import pyworld

    y = pyworld.synthesize(
        np.ascontiguousarray(frames.f0),
        np.ascontiguousarray(frames.envelope),
        np.ascontiguousarray(frames.aperiodicity),
        frames.sample_rate,
        FRAME_PERIOD_MS,
    )
    out = np.zeros(length, dtype=np.float32)
    out[: min(length, len(y))] = y[:length]
    return out


def warp_envelope(envelope: np.ndarray, ratio: float) -> np.ndarray:
    """The envelope moved along frequency: a peak at f lands at f * ratio (linear bins; the
    top bin repeats where the source runs out)."""
    bins = envelope.shape[1]
    source = np.arange(bins) / ratio
    low = np.minimum(np.floor(source).astype(int), bins - 1)
    high = np.minimum(low + 1, bins - 1)
    weight = np.clip(source - low, 0.0, 1.0)
    return envelope[:, low] * (1 - weight) + envelope[:, high] * weight


def time_scale(frames: WorldFrames, rate: float) -> WorldFrames:
    """`frames` played `rate` times as fast: frames resampled in time, F0 kept (voicing
    decided by the nearest source frame so no F0 is invented across a voiced edge)."""
    count = len(frames.f0)
    out_count = max(1, round(count / rate))
    position = np.minimum(np.arange(out_count) * rate, count - 1)
    nearest = np.minimum(np.round(position).astype(int), count - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, count - 1)
    weight = (position - low)[:, None]
    envelope = frames.envelope[low] * (1 - weight) + frames.envelope[high] * weight
    aperiodicity = frames.aperiodicity[low] * (1 - weight) + frames.aperiodicity[high] * weight
    f0 = frames.f0[nearest].copy()
    both = (frames.f0[low] > 0) & (frames.f0[high] > 0)
    w = weight[:, 0]
    f0[both] = np.exp(
        np.log(frames.f0[low][both]) * (1 - w[both]) + np.log(frames.f0[high][both]) * w[both]
    )
    return WorldFrames(f0, envelope, aperiodicity, frames.sample_rate)


def active_rms(samples: np.ndarray) -> float:
    """RMS of the samples loud enough to be speech (silences do not dilute it)."""
    loud = samples[np.abs(samples) > ACTIVE_LEVEL]
    return float(np.sqrt(np.mean(np.square(loud, dtype=np.float64)))) if len(loud) else 0.0


def _gain(samples: np.ndarray, gain: float) -> np.ndarray:
    """`samples` times `gain`, scaled down where that would put a peak above PEAK_CEILING."""
    peak = float(np.max(np.abs(samples))) * gain if len(samples) else 0.0
    if peak > PEAK_CEILING:
        gain *= PEAK_CEILING / peak
    return (samples * gain).astype(np.float32)


def derive_voice(speech: Speech, shape: VoiceShape) -> Speech:
    """Another speaker saying the same: F0 scaled, formants moved, loudness matched to the
    source. The length is unchanged, so the phoneme timings still hold."""
    track = speech.audio
    frames = analyse(track, robust=False)  # Pico only: DIO agrees with Harvest there
    changed = WorldFrames(
        frames.f0 * shape.f0_ratio,
        warp_envelope(frames.envelope, shape.formant_ratio),
        frames.aperiodicity,
        frames.sample_rate,
    )
    samples = synthesise(changed, len(track.samples))
    before, after = active_rms(track.samples), active_rms(samples)
    samples = _gain(samples, before / after if after > 0 else 1.0)
    return Speech(AudioTrack(samples, track.sample_rate), speech.phonemes, speech.words)


def apply_prosody(speech: Speech, prosody: Prosody) -> Speech:
    """`speech` at the caller's rate, pitch and volume; phoneme and word events scaled with
    the audio."""
    if prosody.neutral:
        return speech
    track = speech.audio
    samples, phonemes, words = track.samples, speech.phonemes, speech.words
    if prosody.resynthesised:
        frames = analyse(track)
        if prosody.pitch:
            ratio = 2.0 ** (prosody.pitch / SEMITONES_PER_OCTAVE)
            frames = WorldFrames(
                frames.f0 * ratio, frames.envelope, frames.aperiodicity, frames.sample_rate
            )
        if prosody.rate != DEFAULT_RATE:
            frames = time_scale(frames, prosody.rate)
        length = round(len(track.samples) / prosody.rate)
        samples = synthesise(frames, length)
        # The vocoder's level differs a little from the source's: match it before the gain.
        before, after = active_rms(track.samples), active_rms(samples)
        samples = samples * np.float32(before / after if after > 0 else 1.0)
        phonemes = scale_events(phonemes, 1.0 / prosody.rate, length / track.sample_rate)
        words = scaled(words, 1.0 / prosody.rate, length / track.sample_rate)
    samples = _gain(samples, 10 ** (prosody.volume / 20))
    return Speech(AudioTrack(samples, track.sample_rate), phonemes, words)


def scale_events(
    events: tuple[PhonemeEvent, ...], factor: float, duration: float
) -> tuple[PhonemeEvent, ...]:
    """Phoneme events stretched by `factor` in time and kept inside `duration`."""
    return tuple(
        PhonemeEvent(e.phoneme, min(e.start * factor, duration), min(e.end * factor, duration))
        for e in events
        if e.start * factor < duration
    )

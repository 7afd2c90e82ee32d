"""What the sound itself says about the mouth: loudness judged against the local level, the
spectral cues of closures, and the jaw curve they drive (for recordings alone, and beside the
phoneme timings for text)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from facecast.audio import AudioTrack, frame_rms, resample, voice_activity

ANALYSIS_RATE = 16_000


CURVE_RATE = 200
"""Samples per second of the internal curves before they are sampled at the video rate."""


SIGNAL_LAG = 0.02
"""Delay of the signal path's envelope follower, taken back out (seconds)."""


SIGNAL_JAW_FLOOR = 1.0 / 3.0
"""Share of the loudness range (30 dB) below which an uploaded recording keeps the jaw shut."""


SIGNAL_JAW_MEDIAN = 0.4
"""A recording's median opening over its loud frames (within about 9 dB of its loudest),
relative to its loudest syllables': phoneme-driven speech opens ~0.35 of the way there, and
a viewer judges the mouth where the voice is clearly heard."""


SIGNAL_LOUD = 0.6
"""Loudness opening (0..1 over the top 20 dB) from which a sounding frame counts as loud."""


SIGNAL_CONTRAST_MAX = 6.0
"""Strongest contrast curve (power) for a recording whose loudness barely varies (TTS voices):
stronger ones closed espeak recordings to a slit, weaker ones left Pico's wide open."""


SOUNDING = 0.05
"""Loudness opening (0..1 over the top 20 dB) above which a frame counts as sounding."""


SIGNAL_JAW_GAIN = 0.92
"""A recording's loudest syllables open the jaw this far (phonemes reach ~0.9 on an "a")."""


SPECTRUM_BLOCK = 2048
"""Curve steps whose spectra are computed at once."""


LOCAL_LEVEL_S = 1.5
"""Span (seconds) around each moment whose loudest speech sets the level loudness is judged
against: a reader who drops 6 dB for a sentence still opens the mouth."""


SYNTHETIC_RANGE_DB = 40.0
"""A synthetic voice sounds where it is within this many dB of its loudest."""


LOCAL_LEVEL_MAX_DB = 12.0
"""A quiet passage's level is taken as at most this far below the clip's: quieter still is
mumbling or noise the voice activity let through, and opens less."""


LEVEL_SMOOTH_S = 0.025
"""Smoothing of the power before its peaks are taken (seconds); four times this smooths the
level itself."""


def mouth_from_signal(
    loudness: np.ndarray, activity: np.ndarray, brightness: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Jaw and width at CURVE_RATE from loudness, voice activity (0..1) and brightness (-1..1)."""
    gate = lowpass(np.clip((activity - 0.25) / 0.35, 0.0, 1.0), CURVE_RATE, 4.0)
    # Loudness spans 30 dB below the speech level; the jaw uses the top 20 dB of it with a
    # curve, so quieter consonants between vowels let the mouth nearly close.
    open_ = np.clip((loudness - SIGNAL_JAW_FLOOR) / (1.0 - SIGNAL_JAW_FLOOR), 0.0, 1.0) * gate
    # Syllable nuclei are louder than their consonants: follow the envelope but open a touch
    # faster than it closes, as jaws do.
    jaw = lowpass(_attack_release(open_, CURVE_RATE, attack=0.035, release=0.07), CURVE_RATE, 8.0)
    # The spread is fitted on the final curve: smoothing lifts the troughs between syllables,
    # so a curve fitted before it opened recordings wider than speech from text.
    # Fitted over the sounding frames (voice active and within the top 20 dB), so a voice
    # whose activity outlasts its sound (TTS tails, breaths) is not opened wider for it.
    sounding = (gate > 0.5) & (open_ > SOUNDING)
    jaw = _jaw_contrast(jaw, sounding, sounding & (open_ > SIGNAL_LOUD))
    width = np.clip(brightness, -1.0, 1.0) * 0.7 * np.clip(gate * 1.5, 0.0, 1.0)
    return jaw * SIGNAL_JAW_GAIN, lowpass(width, CURVE_RATE, 4.0)


def _jaw_contrast(open_: np.ndarray, voiced: np.ndarray, loud: np.ndarray) -> np.ndarray:
    """Loudness turned into jaw openings with the spread of phoneme-driven speech.

    Recordings differ in how much their loudness varies within speech; a power curve fitted
    per clip puts the median over the `loud` frames at SIGNAL_JAW_MEDIAN of the loudest
    syllables' opening (over all `voiced` frames when too few are loud).
    """
    if voiced.sum() < 10:
        return open_
    top = float(np.percentile(open_[voiced], 95))
    if top <= 1e-6:
        return open_
    rel = np.clip(open_ / top, 0.0, 1.0)
    median = float(np.median(rel[loud if loud.sum() >= 10 else voiced]))
    power = float(
        np.clip(
            np.log(SIGNAL_JAW_MEDIAN) / np.log(np.clip(median, 1e-3, 0.99)),
            0.5,
            SIGNAL_CONTRAST_MAX,
        )
    )
    return np.asarray(rel**power, dtype=np.float64)


def _attack_release(x: np.ndarray, rate: int, attack: float, release: float) -> np.ndarray:
    a_up = np.exp(-1.0 / (attack * rate))
    a_down = np.exp(-1.0 / (release * rate))
    y = np.empty_like(x)
    state = 0.0
    for i, v in enumerate(x):
        coef = a_up if v > state else a_down
        state = coef * state + (1.0 - coef) * v
        y[i] = state
    return y


def lowpass(x: np.ndarray, rate: float, cutoff_hz: float) -> np.ndarray:
    """Gaussian low-pass whose -3 dB point is near `cutoff_hz`."""
    sigma = rate * 0.1325 / cutoff_hz
    return gaussian_filter1d(x.astype(np.float64), sigma, mode="nearest")


@dataclass(frozen=True)
class SignalFeatures:
    """What motion needs from the audio, at CURVE_RATE."""

    loudness: np.ndarray  # 0..1, relative to the clip's own speech level
    activity: np.ndarray  # voice activity probability 0..1
    brightness: np.ndarray  # -1 (dark, rounded vowels) .. 1 (bright, spread vowels)


def signal_features(track: AudioTrack, *, synthetic: bool = False) -> SignalFeatures:
    """Loudness, voice activity and spectral brightness of `track` at CURVE_RATE.

    Loudness is judged against the speech level of the surrounding ~1.5 s (see
    `local_level`), so a passage spoken more quietly still opens the mouth. A `synthetic`
    voice (text to speech) is clean: its activity is where it sounds (within 40 dB of its
    loudest), without the costly voice activity detector, and its brightness is not needed
    (the phonemes give the lips' width).
    """
    audio = resample(track, ANALYSIS_RATE) if track.sample_rate != ANALYSIS_RATE else track
    n = max(int(np.ceil(audio.duration * CURVE_RATE)), 1)
    rms = frame_rms(audio, CURVE_RATE, n)
    db = 20.0 * np.log10(np.maximum(rms, 1e-6))
    if synthetic:
        activity = (db > db.max() - SYNTHETIC_RANGE_DB).astype(np.float64)
    else:
        activity = voice_activity(audio, CURVE_RATE, n).astype(np.float64)
    voiced = activity > 0.5
    level = local_level(db, voiced)
    floor = np.maximum(level - 30.0, -70.0)
    loudness = np.clip((db - floor) / (level - floor + 1e-6), 0.0, 1.2)
    loudness[db < -60.0] = 0.0
    brightness = np.zeros(n) if synthetic else _brightness(audio, n, voiced)
    return SignalFeatures(loudness, activity, brightness)


def local_level(db: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Speech level (dB) per curve step: the clip's (90th percentile over voiced steps),
    moved by how far the loudest speech within LOCAL_LEVEL_S lies below the clip's loudest;
    lowered by at most LOCAL_LEVEL_MAX_DB, never raised."""
    if voiced.sum() <= 5:
        return np.full(len(db), float(db.max()))
    level = float(np.percentile(db[voiced], 90))
    # Syllable peaks: power smoothed over a few milliseconds, so one click sets no level.
    power = gaussian_filter1d(10.0 ** (db / 10.0), LEVEL_SMOOTH_S * CURVE_RATE)
    peaks = np.where(voiced, 10.0 * np.log10(np.maximum(power, 1e-12)), -np.inf)
    window = max(int(LOCAL_LEVEL_S * CURVE_RATE), 1)
    nearby = maximum_filter1d(peaks, window, mode="nearest")
    drop = np.clip(nearby - float(peaks[voiced].max()), -LOCAL_LEVEL_MAX_DB, 0.0)
    # A long silence has no level of its own: it keeps the clip's (the gate shuts it anyway).
    drop[~np.isfinite(nearby)] = 0.0
    drop = gaussian_filter1d(drop, LEVEL_SMOOTH_S * 4 * CURVE_RATE, mode="nearest")
    return np.asarray(level + drop, dtype=np.float64)


def _brightness(audio: AudioTrack, n: int, voiced: np.ndarray) -> np.ndarray:
    """Spectral centroid of the voice band per curve step, standardised over voiced steps."""
    hop = ANALYSIS_RATE // CURVE_RATE
    win = 512
    padded = np.pad(audio.samples.astype(np.float32), (win // 2, win // 2 + hop * n))
    window = np.hanning(win).astype(np.float32)
    freqs = np.fft.rfftfreq(win, 1.0 / ANALYSIS_RATE)
    band = (freqs > 250) & (freqs < 4000)
    band_freqs = freqs[band].astype(np.float32)
    centroid = np.empty(n, dtype=np.float64)
    # In blocks, so memory stays flat however long the recording is.
    for start in range(0, n, SPECTRUM_BLOCK):
        rows = np.arange(start, min(start + SPECTRUM_BLOCK, n))
        frames = padded[np.arange(win)[None, :] + hop * rows[:, None]] * window
        power = np.abs(np.fft.rfft(frames, axis=1)[:, band]).astype(np.float32) ** 2
        centroid[rows] = (power @ band_freqs) / (power.sum(axis=1) + 1e-9)
    if voiced.sum() < 5:
        return np.zeros(n)
    mu = float(np.median(centroid[voiced]))
    sd = float(np.std(centroid[voiced])) + 1e-6
    z = np.where(voiced, (centroid - mu) / sd, 0.0)
    return lowpass(np.clip(z / 1.5, -1.0, 1.0), CURVE_RATE, 5.0)

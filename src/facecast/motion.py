"""Speech -> per-frame motion curves: mouth, blinks, brows and head.

Two sources drive the mouth. The signal that plays: loudness (against the loudest speech of
the surrounding 1.5 s) drives the jaw, spectral shape drives spreading versus rounding, and voice
activity keeps the mouth shut outside speech. Synthesised speech also brings phoneme timings:
each phoneme gets a viseme target and a dominance, and the targets are blended over time
(Cohen & Massaro's coarticulation model), so a vowel between two bilabials still closes the
lips around it. For text the jaw is a mix of both: the sound's loudness keeps it in time with
what is heard (mapped phoneme times drift by tens of milliseconds), the phonemes give it its
shape (lips pressed on bilabials, rounding, the tongue). Uploaded recordings and voices
without timings (XTTS) use the signal alone.
Blinks and head motion come from a seeded random generator plus the speech's emphasis.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from facecast.audio import AudioTrack, frame_rms, n_video_frames, resample, voice_activity
from facecast.speech import PhonemeEvent

ANALYSIS_RATE = 16_000
CURVE_RATE = 200
"""Samples per second of the internal curves before they are sampled at the video rate."""
VISUAL_LEAD = 0.04
"""Lips move slightly ahead of the sound they make (seconds)."""
DOMINANCE_REACH = 12.0
"""A phoneme's dominance is evaluated this many decay constants beyond its own span."""

BILABIAL_PRESS = (0.55, 0.2)
"""A bilabial's share of the dominance from which the lips start to press (first value) and
over which they close fully (second): about the phoneme's own span. Wider presses (0.3, 0.3)
shut the lips through the loud nasal murmur of Pico's /m/ and the vowels beside it; narrower
ones (0.7, 0.2) left the lips apart on one /m/ in four or five of the male voices and at rate
1.5 (tests/test_voicing.py)."""

PRESS_SMOOTH_HZ = 12.0
"""The lips' pressure is smoothed like the jaw (they close and part as fast as it moves)."""

BILABIAL_CLOSED = 0.5
"""Lip pressure from which a curve step counts as a bilabial closure that a frame must show."""

TONGUE_DOMINANCE = 4.0
"""How much more an alveolar's tongue target weighs than its neighbours' (which is 0)."""

PAUSE_MIN = 0.12
"""Gaps longer than this between phonemes close the mouth."""

# Blinks.
BLINK_MEAN_INTERVAL = 3.4
BLINK_MIN_INTERVAL = 1.3
BLINK_FIRST_WINDOW = (0.5, 1.8)
BLINK_CLOSE_S = 0.07
BLINK_HOLD_S = 0.05
BLINK_OPEN_S = 0.16
DOUBLE_BLINK_P = 0.12

# Head motion, degrees.
HEAD_IDLE_AMPLITUDE = {"yaw": 1.6, "pitch": 1.0, "roll": 0.8}
HEAD_IDLE_FREQS = (0.09, 0.17, 0.31)
NOD_DEGREES = 1.6
NOD_SMOOTH_S = 0.16
BROW_RAISE_P = 0.5
"""Chance that an emphasised syllable also lifts the brows."""
SMILE_RELAX = 0.6
"""While the person talks the photo's smile relaxes this far (smile = -SMILE_RELAX)..."""
SMILE_RETURN_HZ = 0.7
"""...following speech this slowly, so it returns in pauses rather than between syllables."""
SACCADE_HOLD_S = (0.5, 2.6)
"""The eyes rest this long (uniform) on one point before the next saccade."""
SACCADE_S = 0.04
"""A saccade's duration."""
GAZE_SPREAD = (0.45, 0.3)
"""Standard deviation of gaze targets (x, y) in units of the renderer's gaze channels."""
GAZE_CENTRE_P = 0.45
"""Chance that a saccade returns to looking straight ahead."""
GAZE_DRIFT = 0.12
"""Slow drift around each target."""
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
CLOSURE_LEVEL = 0.12
"""A jaw value below this inside a frame's span counts as the lips meeting."""
SPECTRUM_BLOCK = 2048
"""Curve steps whose spectra are computed at once."""
TEXT_SIGNAL_SHARE = 0.7
"""For text, the share of the jaw that follows the sound played, the rest the phonemes. Jaw vs
loudness r on the gallery's texts: phonemes alone 0.44-0.74 (Pico de 0.44, Piper en 0.74),
this mix 0.72-0.82 while bilabials still press the lips shut (the sound alone, without
closures, 0.87-0.89)."""
TEXT_SIGNAL_SCALE = (0.7, 1.5)
"""Bounds on the factor that gives text's mixed jaw the phonemes' median opening."""
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
MAX_SMOOTH_HZ = 6.0
"""Nothing the face does changes faster than this; keeps frames free of jitter."""


@dataclass(frozen=True)
class Viseme:
    """Mouth target for a phoneme: jaw opening 0..1, width -1 (rounded) .. 1 (spread)."""

    jaw: float
    width: float
    dominance: float
    decay: float = 0.055
    """Seconds for the dominance to fall by 1/e beyond the phoneme's own span."""
    tongue: float = 0.0
    """How far the tongue's tip rises towards the ridge behind the upper teeth, 0..1."""


CLOSED = Viseme(0.0, 0.0, 6.0, 0.022)
PAUSE = Viseme(0.0, 0.0, 2.5)
NEUTRAL_CONSONANT = Viseme(0.32, 0.0, 0.25)

# espeak-ng phoneme mnemonics (German and English share most); longest prefix wins.
VISEMES: dict[str, Viseme] = {
    # open vowels
    "a": Viseme(1.0, 0.15, 1.0),
    "A": Viseme(1.0, 0.0, 1.0),
    "&": Viseme(0.75, 0.35, 1.0),
    "V": Viseme(0.65, 0.1, 1.0),
    "aI": Viseme(0.9, 0.25, 1.0),
    "aU": Viseme(0.9, -0.1, 1.0),
    # mid vowels
    "E": Viseme(0.55, 0.4, 1.0),
    "e": Viseme(0.42, 0.5, 1.0),
    "@": Viseme(0.36, 0.0, 0.7),
    "3": Viseme(0.45, 0.0, 0.8),
    "6": Viseme(0.45, 0.0, 0.8),
    # close vowels
    "I": Viseme(0.32, 0.55, 1.0),
    "i": Viseme(0.28, 0.7, 1.0),
    # rounded vowels
    "O": Viseme(0.6, -0.55, 1.0),
    "o": Viseme(0.45, -0.75, 1.0),
    "0": Viseme(0.65, -0.45, 1.0),
    "OY": Viseme(0.55, -0.5, 1.0),
    "U": Viseme(0.32, -0.8, 1.0),
    "u": Viseme(0.26, -0.95, 1.0),
    "y": Viseme(0.26, -0.9, 1.0),
    "Y": Viseme(0.32, -0.8, 1.0),
    "2": Viseme(0.38, -0.75, 1.0),
    "9": Viseme(0.5, -0.6, 1.0),
    "W": Viseme(0.5, -0.6, 1.0),
    # bilabials close the lips whatever surrounds them
    "p": CLOSED,
    "b": CLOSED,
    "m": CLOSED,
    # labiodentals: lower lip to the upper teeth
    "f": Viseme(0.1, 0.05, 3.0, 0.03),
    "v": Viseme(0.1, 0.05, 3.0, 0.03),
    "pf": CLOSED,
    # rounded glides and postalveolars push the lips forward
    "w": Viseme(0.15, -0.9, 2.0),
    "S": Viseme(0.2, -0.55, 1.5),
    "Z": Viseme(0.2, -0.55, 1.5),
    "tS": Viseme(0.2, -0.5, 1.5),
    "dZ": Viseme(0.2, -0.5, 1.5),
    # alveolar and dental consonants: teeth close together, lips neutral-spread
    "s": Viseme(0.14, 0.35, 1.2, tongue=0.6),
    "z": Viseme(0.14, 0.35, 1.2, tongue=0.6),
    "ts": Viseme(0.14, 0.3, 1.2, tongue=0.6),
    "t": Viseme(0.2, 0.2, 0.6, tongue=1.0),
    "d": Viseme(0.2, 0.2, 0.6, tongue=1.0),
    "n": Viseme(0.22, 0.15, 0.5, tongue=1.0),
    "l": Viseme(0.3, 0.15, 0.5, tongue=1.0),
    "T": Viseme(0.22, 0.1, 0.8, tongue=1.0),
    "D": Viseme(0.22, 0.1, 0.8, tongue=1.0),
    "r": Viseme(0.3, -0.1, 0.4),
    "R": Viseme(0.35, 0.0, 0.3),
    "j": Viseme(0.25, 0.45, 0.6),
    # back consonants follow their neighbours
    "k": NEUTRAL_CONSONANT,
    "g": NEUTRAL_CONSONANT,
    "N": NEUTRAL_CONSONANT,
    "x": NEUTRAL_CONSONANT,
    "C": Viseme(0.22, 0.35, 0.6),
    "h": Viseme(0.4, 0.0, 0.15),
    "?": Viseme(0.3, 0.0, 0.15),
    "_": PAUSE,
}
STRESS_MARKS = "',%="
_PREFIXES = sorted(VISEMES, key=len, reverse=True)


@dataclass(frozen=True)
class MotionCurves:
    """Per-frame values for every motion channel the renderers understand.

    jaw 0..1 (1 = widest speaking opening), width -1..1 (rounded..spread), blink_a/blink_b
    0..1 per eye, brows 0..1 (raised), yaw/pitch/roll in degrees, tongue 0..1 (tip raised),
    smile -1..1 (relaxed..broader than in the photo), gaze_x/gaze_y -1..1 (eyes' direction),
    pressed 0..1 (lips held together on a bilabial).
    """

    fps: int
    jaw: np.ndarray
    width: np.ndarray
    blink_a: np.ndarray
    blink_b: np.ndarray
    brows: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    tongue: np.ndarray
    smile: np.ndarray
    gaze_x: np.ndarray
    gaze_y: np.ndarray
    pressed: np.ndarray
    """0..1: how firmly a bilabial (m, b, p) holds the lips together, whatever the photo's
    rest pose (a kept smile over teeth closes its lips on it). Zero for recordings."""

    @property
    def n_frames(self) -> int:
        return len(self.jaw)

    def frame(self, i: int) -> dict[str, float]:
        """All channel values at frame `i`."""
        return {name: float(getattr(self, name)[i]) for name in CHANNELS}

    def at(self, i: int) -> MotionFrame:
        """Frame `i` as renderers receive it: its time and every channel's value."""
        return MotionFrame(i, self.fps, self.frame(i))


CHANNELS = (
    "jaw",
    "width",
    "blink_a",
    "blink_b",
    "brows",
    "yaw",
    "pitch",
    "roll",
    "tongue",
    "smile",
    "gaze_x",
    "gaze_y",
    "pressed",
)


@dataclass(frozen=True)
class MotionFrame:
    """One video frame's motion, as renderers receive it: which frame, when it shows, and every
    channel's value (`values`, keyed as CHANNELS; the properties read the common ones)."""

    index: int
    fps: int
    values: Mapping[str, float]

    @property
    def start(self) -> float:
        """Seconds from the start of the audio at which this frame shows."""
        return self.index / self.fps

    @property
    def end(self) -> float:
        """Seconds at which the next frame shows."""
        return (self.index + 1) / self.fps

    @property
    def jaw(self) -> float:
        """0..1: closed .. widest speaking opening."""
        return self.values.get("jaw", 0.0)

    @property
    def width(self) -> float:
        """-1..1: rounded .. spread lips."""
        return self.values.get("width", 0.0)

    @property
    def blinks(self) -> tuple[float, float]:
        """0..1 per eye (blink_a, blink_b): open .. shut."""
        return self.values.get("blink_a", 0.0), self.values.get("blink_b", 0.0)

    @property
    def head(self) -> tuple[float, float, float]:
        """Yaw, pitch and roll in degrees."""
        get = self.values.get
        return get("yaw", 0.0), get("pitch", 0.0), get("roll", 0.0)


def viseme_for(phoneme: str) -> Viseme:
    """The viseme of an espeak phoneme mnemonic (stress and length marks ignored)."""
    core = phoneme.lstrip(STRESS_MARKS)
    if not core or core.startswith("_") or core in (";", ":"):
        return PAUSE
    for prefix in _PREFIXES:
        if core.startswith(prefix):
            return VISEMES[prefix]
    return NEUTRAL_CONSONANT


@dataclass(frozen=True)
class PhonemeMouth:
    """The phonemes' mouth targets at CURVE_RATE, before smoothing.

    `pressed` (0..1) is how firmly a bilabial holds the lips shut, whatever the jaw does.
    """

    jaw: np.ndarray
    width: np.ndarray
    tongue: np.ndarray
    pressed: np.ndarray


def phoneme_targets(
    phonemes: Sequence[PhonemeEvent], duration: float, loudness: np.ndarray
) -> PhonemeMouth:
    """Jaw, width, tongue and lip pressure from phoneme timings, blended by dominance.

    `loudness` (0..1 at CURVE_RATE) scales each opening so stressed syllables open wider.
    """
    n = max(int(np.ceil(duration * CURVE_RATE)), 1)
    t = np.arange(n, dtype=np.float64) / CURVE_RATE + VISUAL_LEAD
    events = _with_pauses(phonemes, duration)
    num_jaw = np.zeros(n)
    num_width = np.zeros(n)
    num_tongue = np.zeros(n)
    num_closed = np.zeros(n)
    den_tongue = np.full(n, 1e-6)
    den = np.full(n, 1e-6)
    for ev in events:
        vis = viseme_for(ev.phoneme)
        centre = 0.5 * (ev.start + ev.end)
        half = max(0.5 * (ev.end - ev.start), 0.02)
        # Only the span where this phoneme's dominance still matters: linear in clip length.
        reach = half + DOMINANCE_REACH * vis.decay
        lo = max(int((centre - reach - VISUAL_LEAD) * CURVE_RATE), 0)
        hi = min(int((centre + reach - VISUAL_LEAD) * CURVE_RATE) + 2, n)
        if hi <= lo:
            continue
        # Flat top over the phoneme's own span, exponential tails into its neighbours.
        dist = np.maximum(np.abs(t[lo:hi] - centre) - half * 0.6, 0.0)
        dom = vis.dominance * np.exp(-dist / vis.decay)
        num_jaw[lo:hi] += dom * vis.jaw
        num_width[lo:hi] += dom * vis.width
        # The tongue's tip is what an alveolar is about: it dominates the tongue channel.
        tongue_dom = dom * (TONGUE_DOMINANCE if vis.tongue > 0 else 1.0)
        num_tongue[lo:hi] += tongue_dom * vis.tongue
        den_tongue[lo:hi] += tongue_dom
        if vis is CLOSED:
            num_closed[lo:hi] += dom
        den[lo:hi] += dom
    gain = 0.75 + 0.35 * np.clip(loudness[:n], 0.0, 1.0)
    # Where a bilabial dominates, the lips press together whatever the jaw does around it: a
    # weighted mean alone leaves a short /m/ between two vowels a little open.
    pressed = np.clip((num_closed / den - BILABIAL_PRESS[0]) / BILABIAL_PRESS[1], 0.0, 1.0)
    return PhonemeMouth(num_jaw / den * gain, num_width / den, num_tongue / den_tongue, pressed)


def mouth_from_phonemes(
    phonemes: Sequence[PhonemeEvent], duration: float, loudness: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jaw, width and tongue at CURVE_RATE from phoneme timings alone (see phoneme_targets)."""
    targets = phoneme_targets(phonemes, duration, loudness)
    return _finish_phoneme_mouth(targets, targets.jaw)


def _finish_phoneme_mouth(
    targets: PhonemeMouth, jaw: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`jaw` with the bilabials' pressure applied, and the phonemes' width and tongue, smoothed."""
    jaw = jaw * (1.0 - targets.pressed)
    tongue = _lowpass(targets.tongue, CURVE_RATE, 8.0)
    return _lowpass(jaw, CURVE_RATE, 12.0), _lowpass(targets.width, CURVE_RATE, 6.0), tongue


def mouth_from_speech(
    phonemes: Sequence[PhonemeEvent], duration: float, features: SignalFeatures
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Jaw, width, tongue and the bilabials' lip pressure (0..1), at CURVE_RATE, for
    synthesised speech: the jaw follows the sound that plays (TEXT_SIGNAL_SHARE) and the
    phonemes, which also give the lips' closures, their rounding and the tongue."""
    targets = phoneme_targets(phonemes, duration, features.loudness)
    signal_jaw = _signal_jaw_aligned(features)[: len(targets.jaw)]
    mixed = TEXT_SIGNAL_SHARE * signal_jaw + (1.0 - TEXT_SIGNAL_SHARE) * targets.jaw
    # The sound sets when the jaw moves, the phonemes how far: the mix is scaled so that its
    # median over the sounding steps is what the phonemes alone would open (the sound's
    # troughs between syllables would otherwise lower every opening).
    sounding = signal_jaw > SOUNDING
    if sounding.sum() >= 10:
        alone = np.median(targets.jaw[sounding] * (1.0 - targets.pressed[sounding]))
        now = max(float(np.median(mixed[sounding] * (1.0 - targets.pressed[sounding]))), 1e-3)
        mixed = mixed * float(np.clip(alone / now, *TEXT_SIGNAL_SCALE))
    jaw, width, tongue = _finish_phoneme_mouth(targets, mixed)
    return jaw, width, tongue, targets.pressed


def _signal_jaw_aligned(features: SignalFeatures) -> np.ndarray:
    """The signal path's jaw moved ahead by the lips' lead and the envelope follower's lag."""
    jaw, _width = mouth_from_signal(features.loudness, features.activity, features.brightness)
    return _lead(jaw)


def _lead(curve: np.ndarray) -> np.ndarray:
    """`curve` moved earlier: lips move ahead of the sound they make, and the envelope
    follower lags it a little."""
    lead = round((VISUAL_LEAD + SIGNAL_LAG) * CURVE_RATE)
    return np.concatenate([curve[lead:], np.zeros(min(lead, len(curve)))])


def _with_pauses(phonemes: Sequence[PhonemeEvent], duration: float) -> list[PhonemeEvent]:
    """Phonemes with explicit closed-mouth pauses before, after and in long gaps."""
    out = [PhonemeEvent("_", -0.5, phonemes[0].start if phonemes else duration)]
    for prev, cur in itertools.pairwise(phonemes):
        out.append(prev)
        if cur.start - prev.end > PAUSE_MIN:
            out.append(PhonemeEvent("_", prev.end, cur.start))
    if phonemes:
        out.append(phonemes[-1])
        out.append(PhonemeEvent("_", phonemes[-1].end, duration + 0.5))
    return out


def mouth_from_signal(
    loudness: np.ndarray, activity: np.ndarray, brightness: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Jaw and width at CURVE_RATE from loudness, voice activity (0..1) and brightness (-1..1)."""
    gate = _lowpass(np.clip((activity - 0.25) / 0.35, 0.0, 1.0), CURVE_RATE, 4.0)
    # Loudness spans 30 dB below the speech level; the jaw uses the top 20 dB of it with a
    # curve, so quieter consonants between vowels let the mouth nearly close.
    open_ = np.clip((loudness - SIGNAL_JAW_FLOOR) / (1.0 - SIGNAL_JAW_FLOOR), 0.0, 1.0) * gate
    # Syllable nuclei are louder than their consonants: follow the envelope but open a touch
    # faster than it closes, as jaws do.
    jaw = _lowpass(_attack_release(open_, CURVE_RATE, attack=0.035, release=0.07), CURVE_RATE, 8.0)
    # The spread is fitted on the final curve: smoothing lifts the troughs between syllables,
    # so a curve fitted before it opened recordings wider than speech from text.
    # Fitted over the sounding frames (voice active and within the top 20 dB), so a voice
    # whose activity outlasts its sound (TTS tails, breaths) is not opened wider for it.
    sounding = (gate > 0.5) & (open_ > SOUNDING)
    jaw = _jaw_contrast(jaw, sounding, sounding & (open_ > SIGNAL_LOUD))
    width = np.clip(brightness, -1.0, 1.0) * 0.7 * np.clip(gate * 1.5, 0.0, 1.0)
    return jaw * SIGNAL_JAW_GAIN, _lowpass(width, CURVE_RATE, 4.0)


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


def _lowpass(x: np.ndarray, rate: float, cutoff_hz: float) -> np.ndarray:
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
    return _lowpass(np.clip(z / 1.5, -1.0, 1.0), CURVE_RATE, 5.0)


def blink_curve(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure 0..1 at `rate` with natural, irregular blinks."""
    curve = np.zeros(n)
    t = rng.uniform(*BLINK_FIRST_WINDOW)
    duration = n / rate
    while t < duration:
        _add_blink(curve, t, rate)
        if rng.random() < DOUBLE_BLINK_P:
            _add_blink(curve, t + BLINK_CLOSE_S + BLINK_HOLD_S + BLINK_OPEN_S + 0.06, rate)
        interval = BLINK_MIN_INTERVAL + rng.gamma(
            2.0, (BLINK_MEAN_INTERVAL - BLINK_MIN_INTERVAL) / 2.0
        )
        t += interval
    return curve


def _add_blink(curve: np.ndarray, start: float, rate: int) -> None:
    times = np.arange(len(curve)) / rate - start
    close = np.clip(times / BLINK_CLOSE_S, 0.0, 1.0)
    opening = np.clip((times - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S, 0.0, 1.0)
    shape = np.where(times < 0, 0.0, np.sin(close * np.pi / 2) * (1.0 - opening**0.8))
    np.maximum(curve, shape, out=curve)


def head_curves(
    loudness: np.ndarray, activity: np.ndarray, rate: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Yaw, pitch, roll (degrees) and brow raise: slow idle sway plus nods on emphasis."""
    n = len(loudness)
    t = np.arange(n) / rate
    speaking = _lowpass(np.clip(activity, 0.0, 1.0), rate, 0.5)
    liveliness = 0.55 + 0.45 * speaking
    out: dict[str, np.ndarray] = {}
    for axis, amplitude in HEAD_IDLE_AMPLITUDE.items():
        sway = np.zeros(n)
        for f in HEAD_IDLE_FREQS:
            freq = f * rng.uniform(0.75, 1.3)
            sway += np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.5, 1.0)
        out[axis] = sway / len(HEAD_IDLE_FREQS) * 1.6 * amplitude * liveliness
    emphasis = _emphasis_onsets(loudness, rate)
    nods = np.zeros(n)
    brows = np.zeros(n)
    for i in emphasis:
        strength = rng.uniform(0.5, 1.0)
        nods[i] += strength
        if rng.random() < BROW_RAISE_P:
            brows[i] += rng.uniform(0.5, 1.0)
    kernel_s = NOD_SMOOTH_S
    out["pitch"] = out["pitch"] + NOD_DEGREES * _impulse_response(nods, rate, kernel_s)
    out["yaw"] = out["yaw"] + 0.5 * NOD_DEGREES * _impulse_response(
        nods * rng.choice([-1.0, 1.0], size=n), rate, kernel_s
    )
    out["brows"] = np.clip(_impulse_response(brows, rate, 0.25), 0.0, 1.0)
    return out


def gaze_curves(n: int, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaze x and y at `rate`: fixations joined by quick saccades, with a slow drift."""
    t = np.arange(n) / rate
    targets_x, targets_y = np.zeros(n), np.zeros(n)
    start, x, y = 0, 0.0, 0.0
    while start < n:
        hold = int(rng.uniform(*SACCADE_HOLD_S) * rate)
        targets_x[start : start + hold] = x
        targets_y[start : start + hold] = y
        start += hold
        if rng.random() < GAZE_CENTRE_P:
            x, y = 0.0, 0.0
        else:
            x = float(np.clip(rng.normal(0.0, GAZE_SPREAD[0]), -1.0, 1.0))
            y = float(np.clip(rng.normal(0.0, GAZE_SPREAD[1]), -1.0, 1.0))
    # A saccade is a short ramp, not a jump between two frames.
    ramp = max(int(SACCADE_S * rate), 1)
    kernel = np.ones(ramp) / ramp
    out = []
    for target, phase in ((targets_x, rng.uniform(0, 6.3)), (targets_y, rng.uniform(0, 6.3))):
        drift = GAZE_DRIFT * np.sin(2 * np.pi * 0.23 * t + phase)
        out.append(np.convolve(target, kernel, mode="same") + drift)
    return out[0], out[1]


def _emphasis_onsets(loudness: np.ndarray, rate: int) -> list[int]:
    """Indices where loudness rises sharply: stressed syllables."""
    smooth = _lowpass(loudness, rate, 4.0)
    rise = np.diff(smooth, prepend=smooth[0]) * rate
    threshold = max(float(np.percentile(rise, 97)), 1.5)
    onsets: list[int] = []
    min_gap = int(0.45 * rate)
    for i in np.flatnonzero(rise > threshold):
        if not onsets or i - onsets[-1] > min_gap:
            onsets.append(int(i))
    return onsets


def _impulse_response(impulses: np.ndarray, rate: int, time_constant: float) -> np.ndarray:
    """Impulses turned into smooth rise-and-decay bumps (a critically damped response)."""
    k_t = np.arange(int(6 * time_constant * rate)) / rate
    kernel = (k_t / time_constant) * np.exp(1.0 - k_t / time_constant)
    return np.convolve(impulses, kernel)[: len(impulses)]


def motion_curves(
    track: AudioTrack,
    fps: int,
    *,
    phonemes: Sequence[PhonemeEvent] | None = None,
    seed: int = 0,
) -> MotionCurves:
    """Every channel, one value per video frame, for `track`.

    The mouth follows the signal; with `phonemes` (synthesised speech) also the phonemes.
    """
    features = signal_features(track, synthetic=bool(phonemes))
    n_curve = len(features.loudness)
    if phonemes:
        jaw, width, tongue, pressed = mouth_from_speech(phonemes, track.duration, features)
        closures = pressed > BILABIAL_CLOSED
        activity = np.clip(_lowpass(features.loudness * 3.0, CURVE_RATE, 2.0), 0.0, 1.0)
    else:
        jaw, width = mouth_from_signal(features.loudness, features.activity, features.brightness)
        jaw, width = _lead(jaw), _lead(width)
        tongue = np.zeros_like(jaw)
        # Without phonemes, any dip of the jaw to nearly shut may be a closure; which of them
        # are bilabials the sound does not say, so the lips press on none.
        closures = np.ones(len(jaw), dtype=bool)
        pressed = np.zeros_like(jaw)
        activity = features.activity
    rng = np.random.default_rng(seed)
    blink = blink_curve(n_curve, CURVE_RATE, rng)
    head = head_curves(features.loudness, activity, CURVE_RATE, rng)
    gaze_x, gaze_y = gaze_curves(n_curve, CURVE_RATE, rng)
    smile = -SMILE_RELAX * np.clip(_lowpass(activity, CURVE_RATE, SMILE_RETURN_HZ), 0.0, 1.0)
    n_frames = n_video_frames(track.duration, fps)

    def at_frames(curve: np.ndarray, smooth: bool = True) -> np.ndarray:
        src = _lowpass(curve, CURVE_RATE, min(MAX_SMOOTH_HZ, fps / 2.5)) if smooth else curve
        times = (np.arange(n_frames) + 0.5) / fps * CURVE_RATE
        return np.interp(times, np.arange(len(src)), src).astype(np.float32)

    blink_frames = _blink_frames(blink, fps, n_frames)
    return MotionCurves(
        fps=fps,
        jaw=np.clip(_with_closures(at_frames(jaw), jaw, closures, fps), 0.0, 1.0),
        width=np.clip(at_frames(width), -1.0, 1.0),
        blink_a=blink_frames,
        blink_b=blink_frames.copy(),
        brows=np.clip(at_frames(head["brows"]), 0.0, 1.0),
        yaw=at_frames(head["yaw"]),
        pitch=at_frames(head["pitch"]),
        roll=at_frames(head["roll"]),
        tongue=np.clip(at_frames(tongue), 0.0, 1.0),
        smile=np.clip(at_frames(smile), -1.0, 1.0),
        # Saccades are fast: sampled without the low-pass that keeps the rest free of jitter.
        gaze_x=np.clip(at_frames(gaze_x, smooth=False), -1.0, 1.0),
        gaze_y=np.clip(at_frames(gaze_y, smooth=False), -1.0, 1.0),
        pressed=_press_frames(pressed, fps, n_frames),
    )


def _press_frames(pressed: np.ndarray, fps: int, n_frames: int) -> np.ndarray:
    """The lips' pressure at the video rate: smoothed like the jaw (PRESS_SMOOTH_HZ), and
    each frame takes the firmest pressure within its span, so a bilabial shorter than a
    frame still presses the lips on one (as _with_closures lands the jaw's closure)."""
    smooth = np.clip(_lowpass(pressed, CURVE_RATE, PRESS_SMOOTH_HZ), 0.0, 1.0)
    step = CURVE_RATE / fps
    out = np.zeros(n_frames, dtype=np.float32)
    for i in range(n_frames):
        lo = int(i * step)
        hi = max(int((i + 1) * step), lo + 1)
        if lo < len(smooth):
            out[i] = float(smooth[lo:hi].max())
    return out


def _with_closures(
    frames: np.ndarray, curve: np.ndarray, closures: np.ndarray, fps: int
) -> np.ndarray:
    """Frame values, except that a lip closure (a bilabial) between frames lands on one.

    Sampling at frame centres after smoothing would skip a closure shorter than a frame.
    Only curve steps marked in `closures` count: for text the bilabials, not every dip of a
    jaw that follows the sound between syllables.
    """
    step = CURVE_RATE / fps
    out = frames.copy()
    for i in range(len(frames)):
        lo = int(i * step)
        hi = max(int((i + 1) * step), lo + 1)
        if lo >= len(curve):
            break
        span = curve[lo:hi][closures[lo:hi]]
        if not len(span):
            continue
        low = float(span.min())
        if low < CLOSURE_LEVEL and low < out[i]:
            out[i] = low
    return out


def _blink_frames(blink: np.ndarray, fps: int, n_frames: int) -> np.ndarray:
    """Blinks sampled at the video rate so that each blink's closed moment lands on a frame."""
    step = CURVE_RATE / fps
    out = np.zeros(n_frames, dtype=np.float32)
    for i in range(n_frames):
        lo = int(i * step)
        hi = max(int((i + 1) * step), lo + 1)
        if lo < len(blink):
            out[i] = float(blink[lo:hi].max())
    return out

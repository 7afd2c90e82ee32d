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

from facecast.audio import AudioTrack, n_video_frames
from facecast.motion_idle import blink_curve, gaze_curves, head_curves
from facecast.motion_signal import (
    CURVE_RATE,
    SIGNAL_LAG,
    SOUNDING,
    SignalFeatures,
    lowpass,
    mouth_from_signal,
    signal_features,
)
from facecast.speech import PhonemeEvent

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


SMILE_RELAX = 0.6
"""While the person talks the photo's smile relaxes this far (smile = -SMILE_RELAX)..."""


SMILE_RETURN_HZ = 0.7
"""...following speech this slowly, so it returns in pauses rather than between syllables."""


CLOSURE_LEVEL = 0.12
"""A jaw value below this inside a frame's span counts as the lips meeting."""


TEXT_SIGNAL_SHARE = 0.7
"""For text, the share of the jaw that follows the sound played, the rest the phonemes. Jaw vs
loudness r on the gallery's texts: phonemes alone 0.44-0.74 (Pico de 0.44, Piper en 0.74),
this mix 0.72-0.82 while bilabials still press the lips shut (the sound alone, without
closures, 0.87-0.89)."""


TEXT_SIGNAL_SCALE = (0.7, 1.5)
"""Bounds on the factor that gives text's mixed jaw the phonemes' median opening."""


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
    tongue = lowpass(targets.tongue, CURVE_RATE, 8.0)
    return lowpass(jaw, CURVE_RATE, 12.0), lowpass(targets.width, CURVE_RATE, 6.0), tongue


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
        activity = np.clip(lowpass(features.loudness * 3.0, CURVE_RATE, 2.0), 0.0, 1.0)
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
    smile = -SMILE_RELAX * np.clip(lowpass(activity, CURVE_RATE, SMILE_RETURN_HZ), 0.0, 1.0)
    n_frames = n_video_frames(track.duration, fps)

    def at_frames(curve: np.ndarray, smooth: bool = True) -> np.ndarray:
        src = lowpass(curve, CURVE_RATE, min(MAX_SMOOTH_HZ, fps / 2.5)) if smooth else curve
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
    smooth = np.clip(lowpass(pressed, CURVE_RATE, PRESS_SMOOTH_HZ), 0.0, 1.0)
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

"""Motion curves: visemes and their blending, the signal-driven mouth, blinks and head motion."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facecast import motion, motion_idle
from facecast.audio import AudioTrack, n_video_frames
from facecast.pipeline import synthesize
from facecast.speech import PhonemeEvent, Speech

RATE = motion.CURVE_RATE
STORY = (
    "Es war einmal ein kleines Mädchen, das lebte mit seiner Mutter in einem Haus am Rande "
    "des Waldes. Eines Tages sagte die Mutter: Bring doch der Großmutter diesen Kuchen und "
    "eine Flasche Wein. Sie ist krank und schwach, und das wird ihr guttun."
)
"""About 13 s of German."""
MINUTE_S = 60.0
CLOSED_JAW = 0.1
OPEN_JAW = 0.4
HEAD_LIMIT_DEG = 5.0
HEAD_STEP_DEG = 1.0
"""Largest change of a head angle between two frames at 25 fps."""


def _index(t: float) -> int:
    """Curve sample showing time `t` (the mouth leads the sound by VISUAL_LEAD)."""
    return round((t - motion.VISUAL_LEAD) * RATE)


@pytest.fixture(scope="module")
def story() -> Speech:
    return synthesize(STORY, "de")


@pytest.fixture(scope="module")
def minute_of_speech(story: Speech) -> Speech:
    """The story told until it lasts a minute, with its phoneme timeline shifted along."""
    audio = story.audio
    repeats = int(np.ceil(MINUTE_S / audio.duration))
    events = [
        PhonemeEvent(e.phoneme, e.start + k * audio.duration, e.end + k * audio.duration)
        for k in range(repeats)
        for e in story.phonemes
    ]
    samples = np.tile(audio.samples, repeats)
    return Speech(AudioTrack(samples, audio.sample_rate), tuple(events))


# --- visemes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phoneme", "expected"),
    [
        ("m", motion.CLOSED),
        ("'a:", motion.VISEMES["a"]),
        (",aI", motion.VISEMES["aI"]),
        ("_", motion.PAUSE),
        ("_:", motion.PAUSE),
        ("", motion.PAUSE),
        ("pf", motion.CLOSED),
        ("@-", motion.VISEMES["@"]),
        ("qq", motion.NEUTRAL_CONSONANT),
    ],
)
def test_viseme_for(phoneme: str, expected: motion.Viseme) -> None:
    assert motion.viseme_for(phoneme) == expected


def _mama(m_s: float, a_s: float) -> tuple[list[PhonemeEvent], float]:
    events = [PhonemeEvent("_", 0.0, 0.3)]
    t = 0.3
    for phoneme, length in (("m", m_s), ("a", a_s), ("m", m_s), ("a", a_s)):
        events.append(PhonemeEvent(phoneme, t, t + length))
        t += length
    events.append(PhonemeEvent("_", t, t + 0.4))
    return events, t + 0.4


@pytest.mark.parametrize(("m_s", "a_s"), [(0.07, 0.14), (0.08, 0.15), (0.1, 0.2)])
def test_mama_closes_on_m_and_opens_on_a(m_s: float, a_s: float) -> None:
    events, duration = _mama(m_s, a_s)
    loudness = np.ones(int(np.ceil(duration * RATE)))
    jaw, width, _tongue = motion.mouth_from_phonemes(events, duration, loudness)
    assert len(jaw) == len(width) == len(loudness)
    at = {i: float(jaw[_index(0.5 * (e.start + e.end))]) for i, e in enumerate(events)}
    kinds = [e.phoneme for e in events]
    assert kinds == ["_", "m", "a", "m", "a", "_"]
    for i in (1, 3):
        assert at[i] < CLOSED_JAW, f"/m/ stays open: {at}"
    for i in (2, 4):
        assert at[i] > OPEN_JAW, f"/a/ does not open: {at}"
    assert at[0] < 0.02 and at[5] < 0.02
    assert float(jaw[: _index(0.2)].max()) < 0.02, "mouth open before speech"


def test_mama_lips_meet_on_a_video_frame() -> None:
    speech = synthesize("Mama, Mama, Mama.", "de")
    curves = motion.motion_curves(speech.audio, 25, phonemes=speech.phonemes)
    pairs = itertools.pairwise(speech.phonemes)
    inner = [e for prev, e in pairs if e.phoneme == "m" and prev.phoneme != "_"]
    assert inner
    for e in inner:
        # frames on screen while the /m/ shows (the mouth leads the sound by VISUAL_LEAD)
        shown = (e.start - motion.VISUAL_LEAD, e.end - motion.VISUAL_LEAD)
        frames = slice(int(shown[0] * 25), int(np.ceil(shown[1] * 25)))
        assert float(curves.jaw[frames].min()) < CLOSED_JAW, (e, curves.jaw[frames])


# --- signal-driven mouth -----------------------------------------------------------------


def test_mouth_from_signal_closes_outside_speech() -> None:
    n = 3 * RATE
    speech = slice(RATE, 2 * RATE)
    loudness = np.zeros(n)
    loudness[speech] = 0.5 + 0.5 * np.abs(np.sin(np.arange(RATE) / RATE * 4 * np.pi))
    activity = np.zeros(n)
    activity[speech] = 1.0
    jaw, width = motion.mouth_from_signal(loudness, activity, np.zeros(n))
    assert float(jaw[: int(0.8 * RATE)].max()) < 0.01
    assert float(jaw[int(2.3 * RATE) :].max()) < 0.01
    # The loud half of the syllables opens wide; over the whole span the median stays at a
    # speaking opening (a recording's median is fitted to phoneme-driven speech's, ~0.33).
    assert float(np.percentile(jaw[speech], 75)) > OPEN_JAW
    assert float(np.median(jaw[speech])) > 2 * CLOSED_JAW
    assert float(np.abs(width).max()) < 1e-6


def test_loud_sound_without_voice_keeps_the_mouth_shut() -> None:
    """A door slam or music: loud, but the voice activity detector says no speech."""
    n = 2 * RATE
    jaw, _ = motion.mouth_from_signal(np.ones(n), np.zeros(n), np.zeros(n))
    assert float(jaw.max()) < 0.01


def test_silent_track_gives_a_closed_mouth_and_blinks() -> None:
    track = AudioTrack(np.zeros(4 * 16_000, np.float32), 16_000)
    curves = motion.motion_curves(track, 25)
    assert curves.n_frames == 100
    assert float(curves.jaw.max()) < 0.01
    assert float(curves.blink_a.max()) > 0.95


# --- curves ------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_curves_cover_every_frame_within_range(story: Speech, fps: int) -> None:
    curves = motion.motion_curves(story.audio, fps, phonemes=story.phonemes, seed=3)
    n = n_video_frames(story.audio.duration, fps)
    assert curves.n_frames == n
    for name in motion.CHANNELS:
        values = getattr(curves, name)
        assert values.shape == (n,) and values.dtype == np.float32
        assert np.isfinite(values).all()
    for name in ("jaw", "blink_a", "blink_b", "brows"):
        values = getattr(curves, name)
        assert values.min() >= 0.0 and values.max() <= 1.0
    assert curves.width.min() >= -1.0 and curves.width.max() <= 1.0
    assert set(curves.frame(0)) == set(motion.CHANNELS)


def test_same_seed_same_curves(story: Speech) -> None:
    one, two = (
        motion.motion_curves(story.audio, 25, phonemes=story.phonemes, seed=5) for _ in range(2)
    )
    for name in motion.CHANNELS:
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))


# --- blinks ------------------------------------------------------------------------------


def _blink_onsets(curve: np.ndarray, rate: float) -> np.ndarray:
    closed = curve > 0.5
    return np.flatnonzero(closed & ~np.concatenate(([False], closed[:-1]))) / rate


@pytest.mark.parametrize("seed", range(6))
def test_blinks_are_irregular_and_within_bounds(seed: int) -> None:
    curve = motion_idle.blink_curve(int(MINUTE_S * RATE), RATE, np.random.default_rng(seed))
    onsets = _blink_onsets(curve, RATE)
    low, high = motion_idle.BLINK_FIRST_WINDOW
    assert low <= onsets[0] <= high + motion_idle.BLINK_CLOSE_S
    gaps = np.diff(onsets)
    # Double blinks follow their first within half a second; episodes are further apart.
    assert np.all((gaps < 0.5) | (gaps >= motion_idle.BLINK_MIN_INTERVAL)), gaps
    episodes = np.diff(onsets[np.concatenate(([True], gaps >= 0.5))])
    assert 10 <= len(episodes) + 1 <= 30, "people blink 10-30 times a minute"
    assert float(episodes.max()) < 10.0
    assert float(episodes.std()) > 0.4, "blinks tick like a clock"
    assert 2.0 < float(episodes.mean()) < 5.5


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_every_blink_closes_the_eyes_on_some_frame(minute_of_speech: Speech, fps: int) -> None:
    curves = motion.motion_curves(minute_of_speech.audio, fps, phonemes=minute_of_speech.phonemes)
    blink = curves.blink_a
    np.testing.assert_array_equal(blink, curves.blink_b)
    moving = blink > 0.05
    starts = np.flatnonzero(moving & ~np.concatenate(([False], moving[:-1])))
    ends = np.flatnonzero(moving & ~np.concatenate((moving[1:], [False])))
    assert len(starts) >= 10
    for start, end in zip(starts, ends, strict=True):
        assert float(blink[start : end + 1].max()) > 0.95, f"half blink at frame {start}"


# --- head --------------------------------------------------------------------------------


def test_head_stays_within_a_few_degrees_and_moves_smoothly(minute_of_speech: Speech) -> None:
    curves = motion.motion_curves(minute_of_speech.audio, 25, phonemes=minute_of_speech.phonemes)
    for name in ("yaw", "pitch", "roll"):
        angle = getattr(curves, name)
        assert float(np.abs(angle).max()) < HEAD_LIMIT_DEG, name
        assert float(np.abs(np.diff(angle)).max()) < HEAD_STEP_DEG, name
        assert float(np.ptp(angle)) > 0.3, f"{name} never moves"
    assert float(np.abs(np.diff(curves.brows)).max()) < 0.5


def test_recording_path_head_motion_is_bounded(story: Speech) -> None:
    """Without phonemes: loudness and voice activity drive the nods."""
    curves = motion.motion_curves(story.audio, 25)
    for name in ("yaw", "pitch", "roll"):
        angle = getattr(curves, name)
        assert float(np.abs(angle).max()) < HEAD_LIMIT_DEG, name
        assert float(np.abs(np.diff(angle)).max()) < HEAD_STEP_DEG, name


# --- tongue, smile and gaze (issue 10) -------------------------------------------------


def test_tongue_rises_for_alveolars_only() -> None:
    events = [
        PhonemeEvent("_", 0.0, 0.2),
        PhonemeEvent("a", 0.2, 0.4),
        PhonemeEvent("l", 0.4, 0.5),
        PhonemeEvent("a", 0.5, 0.7),
        PhonemeEvent("_", 0.7, 1.0),
    ]
    _jaw, _width, tongue = motion.mouth_from_phonemes(events, 1.0, np.ones(RATE))
    lead = motion.VISUAL_LEAD
    assert float(tongue[_index(0.45 - lead)]) > 0.6
    assert float(tongue[_index(0.25 - lead)]) < 0.3


def test_smile_relaxes_while_talking_and_returns_in_pauses() -> None:
    speech = synthesize("Hallo, wie geht es dir heute? Mir geht es gut.", "de")
    rate = speech.audio.sample_rate
    pause = np.zeros(3 * rate, np.float32)
    track = AudioTrack(np.concatenate([speech.audio.samples, pause]), rate)
    curves = motion.motion_curves(track, 25, phonemes=speech.phonemes)
    talking = int(speech.audio.duration * 0.7 * 25)
    assert float(curves.smile[talking]) < -0.3, "the smile does not relax in speech"
    assert float(curves.smile[-2]) > -0.1, "the smile does not come back in the pause"


def test_gaze_makes_saccades_and_returns() -> None:
    curves = motion.motion_curves(AudioTrack(np.zeros(16_000 * 20, np.float32), 16_000), 25)
    steps = np.abs(np.diff(curves.gaze_x))
    assert int(np.sum(steps > 0.1)) >= 3, "no saccades"
    assert float(np.max(np.abs(curves.gaze_x))) <= 1.0
    assert float(np.median(np.abs(curves.gaze_x))) < 0.4, "the eyes never come back"

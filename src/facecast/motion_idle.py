"""Motion that is not speech: blinks at natural intervals, the head's sway, nods on emphasis
and brow raises, and the gaze's saccades."""

from __future__ import annotations

import numpy as np

from facecast.motion_signal import lowpass

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
    speaking = lowpass(np.clip(activity, 0.0, 1.0), rate, 0.5)
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
    smooth = lowpass(loudness, rate, 4.0)
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

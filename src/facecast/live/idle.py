"""The face between utterances: blinks, breathing, a slow head sway and wandering gaze, with a
closed, relaxed mouth. Endless and continuous: every channel is a function of time that never
wraps, so a session of any length never jumps.

The amplitudes and timings are the engine's own (facecast.motion), so an idling live face
moves like a rendered clip's pauses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facecast import motion_idle

BREATH_HZ = 0.24
"""About 14 breaths a minute, at rest."""
BREATH_PITCH = 0.35
"""Degrees the head tips with each breath."""
IDLE_LIVELINESS = 0.55
"""Share of the speaking head sway kept while listening (motion_idle.head_curves' floor)."""
SWAY_SCALE = 1.6
"""motion_idle.head_curves' normalisation of its summed sines."""
BLINK_LENGTH_S = motion_idle.BLINK_CLOSE_S + motion_idle.BLINK_HOLD_S + motion_idle.BLINK_OPEN_S
DOUBLE_BLINK_GAP_S = 0.06


def blink_shape(since: float) -> float:
    """Lid closure 0..1 `since` seconds after a blink began (motion's blink shape)."""
    if since < 0 or since > BLINK_LENGTH_S:
        return 0.0
    close = min(since / motion_idle.BLINK_CLOSE_S, 1.0)
    opened = since - motion_idle.BLINK_CLOSE_S - motion_idle.BLINK_HOLD_S
    opening = min(max(opened / motion_idle.BLINK_OPEN_S, 0.0), 1.0)
    return math.sin(close * math.pi / 2) * (1.0 - opening**0.8)


@dataclass(frozen=True)
class Sway:
    """One axis of head sway: a sum of slow sines with fixed frequencies, phases, weights."""

    amplitude: float
    freqs: tuple[float, ...]
    phases: tuple[float, ...]
    weights: tuple[float, ...]

    def at(self, t: float) -> float:
        """Degrees at time `t` (seconds)."""
        total = sum(
            w * math.sin(2 * math.pi * f * t + p)
            for f, p, w in zip(self.freqs, self.phases, self.weights, strict=True)
        )
        return total / len(self.freqs) * SWAY_SCALE * self.amplitude * IDLE_LIVELINESS


class IdleMotion:
    """Channel values (motion.CHANNELS) for any time of a session, asked in increasing order.

    Blinks and gaze fixations are drawn from a seeded generator as time passes; the sway is
    closed-form.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._sway = {
            axis: Sway(
                amplitude,
                tuple(f * float(self._rng.uniform(0.75, 1.3)) for f in motion_idle.HEAD_IDLE_FREQS),
                tuple(
                    float(self._rng.uniform(0, 2 * math.pi)) for _ in motion_idle.HEAD_IDLE_FREQS
                ),
                tuple(float(self._rng.uniform(0.5, 1.0)) for _ in motion_idle.HEAD_IDLE_FREQS),
            )
            for axis, amplitude in motion_idle.HEAD_IDLE_AMPLITUDE.items()
        }
        self._breath_phase = float(self._rng.uniform(0, 2 * math.pi))
        self._blinks: list[float] = [float(self._rng.uniform(*motion_idle.BLINK_FIRST_WINDOW))]
        self._gaze_from = (0.0, 0.0)
        self._gaze_to = (0.0, 0.0)
        self._gaze_at = 0.0
        self._gaze_next = float(self._rng.uniform(*motion_idle.SACCADE_HOLD_S))

    def _blink(self, t: float) -> float:
        while self._blinks[-1] < t:
            last = self._blinks[-1]
            if self._rng.random() < motion_idle.DOUBLE_BLINK_P:
                self._blinks.append(last + BLINK_LENGTH_S + DOUBLE_BLINK_GAP_S)
            gap = motion_idle.BLINK_MIN_INTERVAL + self._rng.gamma(
                2.0, (motion_idle.BLINK_MEAN_INTERVAL - motion_idle.BLINK_MIN_INTERVAL) / 2.0
            )
            self._blinks.append(last + float(gap))
        # Blinks wholly in the past are forgotten; the one under way still counts.
        self._blinks = [b for b in self._blinks if b + BLINK_LENGTH_S >= t]
        return max(blink_shape(t - b) for b in self._blinks)

    def _gaze(self, t: float) -> tuple[float, float]:
        while t >= self._gaze_next:
            self._gaze_from, self._gaze_at = self._gaze_to, self._gaze_next
            if self._rng.random() < motion_idle.GAZE_CENTRE_P:
                self._gaze_to = (0.0, 0.0)
            else:
                spread_x, spread_y = motion_idle.GAZE_SPREAD
                self._gaze_to = (
                    float(np.clip(self._rng.normal(0.0, spread_x), -1.0, 1.0)),
                    float(np.clip(self._rng.normal(0.0, spread_y), -1.0, 1.0)),
                )
            self._gaze_next += float(self._rng.uniform(*motion_idle.SACCADE_HOLD_S))
        share = min((t - self._gaze_at) / motion_idle.SACCADE_S, 1.0)
        x = self._gaze_from[0] + share * (self._gaze_to[0] - self._gaze_from[0])
        y = self._gaze_from[1] + share * (self._gaze_to[1] - self._gaze_from[1])
        drift = motion_idle.GAZE_DRIFT * math.sin(2 * math.pi * 0.23 * t + self._breath_phase)
        return x + drift, y + drift * 0.5

    def at(self, t: float) -> dict[str, float]:
        """Every channel at session time `t` seconds (never earlier than the last call)."""
        blink = self._blink(t)
        gaze_x, gaze_y = self._gaze(t)
        breath = BREATH_PITCH * math.sin(2 * math.pi * BREATH_HZ * t + self._breath_phase)
        return {
            "jaw": 0.0,
            "width": 0.0,
            "blink_a": blink,
            "blink_b": blink,
            "brows": 0.0,
            "yaw": self._sway["yaw"].at(t),
            "pitch": self._sway["pitch"].at(t) + breath,
            "roll": self._sway["roll"].at(t),
            "tongue": 0.0,
            "pressed": 0.0,
            "smile": 0.0,
            "gaze_x": float(np.clip(gaze_x, -1.0, 1.0)),
            "gaze_y": float(np.clip(gaze_y, -1.0, 1.0)),
        }

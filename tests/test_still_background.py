"""The warp renderer resamples only what moves: every other pixel is the photo's own, bit for bit.

Renders the renderer's frames directly (no encoder), so "bit-identical" means exactly that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _measure import background_mask
from facecast import motion
from facecast.pipeline import RenderOptions, prepare_portrait, synthesize
from facecast.render.warp import HEAD_CAP_DEGREES, RENDER_STEPS, StepClock, WarpAnimator

SIZE = 256
TEXT = "Hallo, wie geht es dir heute?"


@pytest.fixture(scope="module", params=["grace", "astronaut"])
def rendered(request: pytest.FixtureRequest) -> tuple[np.ndarray, WarpAnimator, list[np.ndarray]]:
    """A photo's framed crop, its animator and the frames of a short sentence."""
    from conftest import PHOTOS

    photo: Path = PHOTOS[request.param]()
    portrait = prepare_portrait(photo, RenderOptions(size=SIZE))
    animator = WarpAnimator(portrait)
    speech = synthesize(TEXT, "de")
    curves = motion.motion_curves(speech.audio, 25, phonemes=speech.phonemes, seed=3)
    frames = [animator.render(curves.frame(i)) for i in range(curves.n_frames)]
    return portrait.rgb, animator, frames


def test_untouched_background_is_the_photos_crop(
    rendered: tuple[np.ndarray, WarpAnimator, list[np.ndarray]],
) -> None:
    photo, animator, frames = rendered
    untouched = ~animator.moving_mask()
    # What moves is the person's head and its feathered border, not the background: most of
    # the background (outside the person's matte, grown by 4 %) is never resampled.
    background = background_mask(photo)
    assert background.mean() > 0.2, "the test needs a photo with background"
    assert untouched[background].mean() > 0.8
    assert untouched.mean() > 0.4
    changed = np.zeros(untouched.shape, bool)
    for i, frame in enumerate(frames):
        assert np.array_equal(frame[untouched], photo[untouched]), f"frame {i}"
        changed |= (frame != photo).any(axis=-1)
    # ...and the moving part does move (the mask is not just everything that changed).
    assert changed[~untouched].mean() > 0.3


def test_a_turn_past_the_bands_still_leaves_the_rest_exact(
    rendered: tuple[np.ndarray, WarpAnimator, list[np.ndarray]],
) -> None:
    photo, animator, frames = rendered
    turned = animator.render({"yaw": 1.5 * HEAD_CAP_DEGREES, "jaw": 0.5})
    assert not np.array_equal(turned, frames[0])  # the head did turn
    background = background_mask(photo)
    assert (turned[background] == photo[background]).all(axis=-1).mean() > 0.8


def test_frames_are_new_arrays_and_the_clock_times_every_step(
    rendered: tuple[np.ndarray, WarpAnimator, list[np.ndarray]],
) -> None:
    _, animator, frames = rendered
    assert len({id(f) for f in frames}) == len(frames)
    clock = StepClock.new()
    animator.clock = clock
    try:
        for value in (0.0, 0.4, 0.8):
            animator.render({"jaw": value, "yaw": value, "blink_a": value})
    finally:
        from facecast.render.warp import NO_CLOCK

        animator.clock = NO_CLOCK
    assert set(clock.seconds) == set(RENDER_STEPS)
    assert sum(clock.seconds.values()) > 0.0

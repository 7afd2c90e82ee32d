"""The mouth's rest pose (`expression` keep | neutral) and its painted interior, on real photos.

A teeth-showing smile is kept as it is in the photo with `keep` and closed with `neutral`; a
mouth caught open (mid-word, a dropped jaw) rests closed either way. The interior the warp
paints is never near-black on a bright photo and its teeth stay between the lip corners.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from _measure import lip_gap, measure_clip
from conftest import LIPSYNC_SIZE
from facecast import face, motion
from facecast.face import CHEEK_SAMPLES, LOWER_INNER_LIP, UPPER_INNER_LIP
from facecast.pipeline import RenderOptions, prepare_portrait, render_talking_head, synthesize
from facecast.render import fields, lip_fields
from facecast.render.mouth import mouth_state
from facecast.render.warp import WarpAnimator, WarpRenderer, _lip_outline, _skin

LUMA = np.array([0.299, 0.587, 0.114])
CLOSED_GAP = 0.02
"""A mouth at rest reads closed below this lip gap (face heights; tests/test_engine.py)."""
KEPT_GAP = 0.25
"""A kept rest pose opens within this share of the photo's own lip gap."""
INTERIOR_MEAN = 0.3
"""The painted interior's mean luma is at least this share of the cheeks' (black: 0)..."""
INTERIOR_DARKEST = 0.16
"""...and its darkest 5 % at least this share (the flat dark fill before: 0.12-0.13)."""
BILABIAL_TEXT = "Mama malt ein Bild. Papa bringt Obst mit, am Abend."
"""German with a bilabial in almost every word, some between two open vowels."""
PRESSED = 0.9
"""Frames whose lip pressure (motion.MotionCurves.pressed) is at least this are a bilabial."""
TOOTH_REDNESS = 0.5
"""A tooth's red minus blue is under this share of its luma (teeth ~0.35; Grace's skin and
lips 0.8 and more)..."""
TOOTH_LIGHT = 0.7
"""...and it is at least this share as light as the cheeks."""


def _rig(photo: Path | bytes, expression: str) -> tuple[face.Portrait, WarpAnimator]:
    portrait = prepare_portrait(photo, RenderOptions(size=LIPSYNC_SIZE))
    return portrait, WarpRenderer().prepare(portrait, expression=expression)


def _frame_gap(frame: np.ndarray) -> tuple[float, face.FaceLandmarks]:
    lm = face.detect_landmarks(frame)
    return lip_gap(lm), lm


def _cheeks(frame: np.ndarray, lm: face.FaceLandmarks) -> float:
    pts = lm.xy[list(CHEEK_SAMPLES)].round().astype(int)
    return float(frame[pts[:, 1], pts[:, 0]].astype(np.float64).mean(axis=0) @ LUMA)


def _open_photo(grace: Path, path: Path) -> Path:
    """Grace with her jaw dropped, teeth and tongue showing (a photo caught mid-word)."""
    _portrait, animator = _rig(grace, "neutral")
    frame = animator.render({"jaw": 0.8, "tongue": 0.3})
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path


def test_the_photo_mouth_is_told_apart(astronaut: Path, grace: Path, tmp_path: Path) -> None:
    """A smile over teeth is an expression; a dropped jaw is not."""
    for photo, expected in ((astronaut, "smile"), (_open_photo(grace, tmp_path / "o.png"), "open")):
        portrait = prepare_portrait(photo, RenderOptions(size=LIPSYNC_SIZE))
        lm, rgb = portrait.landmarks, portrait.rgb
        lips = _lip_outline(lm, fields.mouth_geometry(lm))
        assert mouth_state(rgb, lips, lip_fields.smile_degree(lm), _skin(rgb, lm)) == expected


def test_a_teeth_smile_is_kept_at_rest_and_talks_under_its_teeth(astronaut: Path) -> None:
    portrait, animator = _rig(astronaut, "keep")
    own = lip_gap(portrait.landmarks)
    assert own > 2 * CLOSED_GAP, "the astronaut's photo should show her teeth"
    rest = animator.render({})
    gap, _ = _frame_gap(rest)
    assert abs(gap - own) <= KEPT_GAP * own, f"rest gap {gap:.3f}, photo {own:.3f}"
    # The rest pose is the photo itself around the mouth.
    diff = np.abs(rest.astype(np.int16) - portrait.rgb.astype(np.int16)).mean()
    assert diff < 2.0, f"rest frame differs from the photo by {diff:.2f} levels"
    # Speaking, the jaw drops under the photo's upper teeth, which stay in place.
    talking = animator.render({"jaw": 0.6})
    open_gap, lm = _frame_gap(talking)
    assert open_gap > own + 0.04, f"jaw 0.6 opens to {open_gap:.3f} from {own:.3f}"
    up = portrait.landmarks.xy[list(UPPER_INNER_LIP)][4:7]
    rows = np.round(up[:, 1] + 2).astype(int)
    cols = np.round(up[:, 0]).astype(int)
    teeth = talking[rows, cols].astype(np.float64) @ LUMA
    assert teeth.min() > 0.8 * _cheeks(talking, lm), "the upper teeth left with the jaw"


def test_a_teeth_smile_closes_with_neutral(astronaut: Path) -> None:
    _portrait, animator = _rig(astronaut, "neutral")
    gap, _ = _frame_gap(animator.render({}))
    assert gap < CLOSED_GAP, f"neutral rest gap {gap:.3f}"


@pytest.mark.parametrize("expression", ["keep", "neutral"])
def test_an_open_jaw_rests_closed_in_both_modes(
    grace: Path, tmp_path: Path, expression: str
) -> None:
    photo = _open_photo(grace, tmp_path / "grace-open.png")
    gap, _ = _frame_gap(prepare_portrait(photo, RenderOptions(size=LIPSYNC_SIZE)).rgb)
    assert gap > 3 * CLOSED_GAP, "photo not open"
    _portrait, animator = _rig(photo, expression)
    rest, _ = _frame_gap(animator.render({}))
    assert rest < CLOSED_GAP, f"{expression}: rest gap {rest:.3f}"


@pytest.mark.parametrize("jaw", [0.4, 1.0])
def test_no_near_black_interior_and_teeth_within_the_corners(grace: Path, jaw: float) -> None:
    """On Grace (a bright photo) the opening is a dark warm cavity, not a black hole, and
    no tooth shows beyond the mouth's corners as the face mesh reads them on the frame."""
    _portrait, animator = _rig(grace, "keep")
    frame = animator.render({"jaw": jaw})
    _gap, lm = _frame_gap(frame)
    skin = _cheeks(frame, lm)
    inner = np.concatenate([lm.xy[list(UPPER_INNER_LIP)], lm.xy[list(LOWER_INNER_LIP)][::-1]])
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(inner).astype(np.int32)], 1)
    luma = frame[cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0].astype(np.float64) @ LUMA
    assert luma.size > 50
    assert luma.mean() >= INTERIOR_MEAN * skin, f"interior {luma.mean() / skin:.2f} of skin"
    darkest = float(np.percentile(luma, 5))
    assert darkest >= INTERIOR_DARKEST * skin, f"darkest {darkest / skin:.2f} of skin"
    # Teeth anywhere in the mouth's rows, searched well beyond the corners.
    left, right = float(lm.xy[61, 0]), float(lm.xy[291, 0])
    reach = 0.3 * (right - left)
    y0 = int(lm.xy[list(UPPER_INNER_LIP), 1].min()) - 2
    y1 = int(lm.xy[list(LOWER_INNER_LIP), 1].max()) + 3
    x0 = int(left - reach)
    band = frame[y0:y1, x0 : int(right + reach)].astype(np.float64)
    light = band @ LUMA
    tooth = (light > TOOTH_LIGHT * skin) & (band[..., 0] - band[..., 2] < TOOTH_REDNESS * light)
    cols = np.flatnonzero(tooth.sum(axis=0) >= 2) + x0
    assert len(cols), "no teeth in an open mouth"
    assert left <= cols.min() and cols.max() <= right, (left, right, cols.min(), cols.max())


def test_keep_reaches_the_render(astronaut: Path, silence_wav: Path, tmp_path: Path) -> None:
    """Through render_talking_head: over silence a kept smile stays as open as the photo's,
    a neutral one shut."""
    own = lip_gap(prepare_portrait(astronaut, RenderOptions(size=LIPSYNC_SIZE)).landmarks)
    for expression in ("keep", "neutral"):
        options = RenderOptions(size=LIPSYNC_SIZE, expression=expression)
        out = tmp_path / f"{expression}.mp4"
        result = render_talking_head(astronaut, out, audio=silence_wav, options=options)
        gap = float(np.nanmedian(measure_clip(expression, result, options.fps).faces.gap))
        if expression == "keep":
            assert abs(gap - own) <= KEPT_GAP * own, f"keep: silent gap {gap:.3f}, photo {own:.3f}"
        else:
            assert gap < CLOSED_GAP, f"neutral: silent gap {gap:.3f}"


def test_a_kept_smile_presses_its_lips_on_bilabials(astronaut: Path) -> None:
    """With keep, the astronaut's smile over her teeth closes on every m, b and p of a
    spoken text (as the face mesh reads the frames) and opens past her smile on vowels."""
    portrait, animator = _rig(astronaut, "keep")
    own = lip_gap(portrait.landmarks)
    speech = synthesize(BILABIAL_TEXT, "de")
    curves = motion.motion_curves(speech.audio, 25, phonemes=speech.phonemes)
    pressed = np.flatnonzero(curves.pressed >= PRESSED)
    assert len(pressed) >= 6, "the text's bilabials should press the lips"
    gaps = [_frame_gap(animator.render(curves.frame(int(i))))[0] for i in pressed]
    assert max(gaps) < CLOSED_GAP, f"bilabial gaps {np.round(gaps, 3)}, photo {own:.3f}"
    vowel = int(np.argmax(curves.jaw))
    gap, _ = _frame_gap(animator.render(curves.frame(vowel)))
    assert gap > own + 0.04, f"widest vowel {gap:.3f}, photo {own:.3f}"

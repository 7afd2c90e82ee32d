"""Blinks of the warp renderer: the lids meet on every eye shape and a shut eye reads as shut.

The face mesh judges the rendered frames (as tests/_measure.py does for videos): blink depth
is 1 - eye ratio of a shut frame / eye ratio of an open one; a full closure reads 0.6-0.8.
A narrow-eyed variant is made by the renderer itself: the astronaut with her lids half down,
rigged again as a new photo, has little opening left for the lids to travel.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from _measure import eye_ratio
from conftest import PHOTOS
from facecast import face
from facecast.pipeline import RenderOptions, prepare_portrait
from facecast.render.eyes import Lids, LidWarp, lid_geometry
from facecast.render.warp import WarpAnimator

SIZE = 512
BLINK_DEPTH = {"astronaut": 0.7, "narrowed": 0.58, "grace": 0.52}
"""Shut-eye depth the mesh must read (measured: astronaut 0.79, narrowed 0.65, grace 0.61).
Behind Grace Hopper's thick glasses, and on eyes that are narrow in the photo, the mesh reads
even fully shut lids as less narrow than on wide open eyes: their open ratio is small already
(the narrowed variant reads 0.25 open against the astronaut's 0.35), and the mesh never puts
the lids of a shut eye closer than ~0.07-0.11 of its width. Before the lids were painted
Grace's shut eyes read 0.29 and the astronaut's 0.64."""
NARROWING = 0.55
"""How far the lids of the narrowed variant are already down in its photo."""
JPEG_QUALITY = 85
"""Frames are judged after lossy compression, as a viewer sees them in the video."""
SHUT = {"blink_a": 1.0, "blink_b": 1.0}
LUMA = np.array([0.299, 0.587, 0.114])
LASH_REACH = 0.12
"""Share of the eye's width above the upper lid that the lashes take."""
RIM_LUMA = 60.0
"""Pixels of Grace Hopper's glasses' frames are darker than this."""


def _lossy(rgb: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    assert ok
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def _animator(photo: bytes) -> WarpAnimator:
    return WarpAnimator(prepare_portrait(photo, RenderOptions(size=SIZE)))


def _photos() -> dict[str, Callable[[], bytes]]:
    def narrowed() -> bytes:
        half = {"blink_a": NARROWING, "blink_b": NARROWING}
        return _png(_animator(PHOTOS["astronaut"]().read_bytes()).render(half))

    return {
        "astronaut": lambda: PHOTOS["astronaut"]().read_bytes(),
        "grace": lambda: PHOTOS["grace"]().read_bytes(),
        "narrowed": narrowed,
    }


@pytest.mark.parametrize("name", list(BLINK_DEPTH))
def test_shut_lids_read_as_shut(name: str) -> None:
    animator = _animator(_photos()[name]())
    opened = eye_ratio(face.detect_landmarks(_lossy(animator.render({}))))
    shut = eye_ratio(face.detect_landmarks(_lossy(animator.render(SHUT))))
    depth = 1.0 - shut / opened
    assert depth >= BLINK_DEPTH[name], f"{name}: open {opened:.3f}, shut {shut:.3f}"


def test_the_narrowed_variant_is_narrow() -> None:
    """The variant is a real test of narrow eyes only if its eyes are narrow to the mesh."""
    photos = _photos()
    options = RenderOptions(size=SIZE)
    wide = eye_ratio(prepare_portrait(photos["astronaut"](), options).landmarks)
    narrow = eye_ratio(prepare_portrait(photos["narrowed"](), options).landmarks)
    assert narrow < 0.75 * wide, (wide, narrow)


def _eye(opening: float, width: float = 40.0) -> Lids:
    """Lids of a synthetic almond eye at (60, 50), `opening` px high in the middle."""
    xs = np.linspace(40.0, 40.0 + width, 9)
    bulge = np.sin(np.linspace(0.0, np.pi, 9))
    upper = np.stack([xs, 50.0 - 0.5 * opening * bulge], axis=1)
    lower = np.stack([xs, 50.0 + 0.5 * opening * bulge], axis=1)
    points = np.zeros((478, 3), np.float32)
    points[:9, :2], points[9:18, :2] = upper, lower
    lm = face.FaceLandmarks(points=points)
    lids = lid_geometry(lm, tuple(range(9)), tuple(range(9, 18)))
    assert lids is not None
    return lids


def _sources(lids: Lids, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Output rows and the photo rows they sample at blink `amount`, (rows, columns)."""
    warp = LidWarp(lids, 0, 0, 120, 100)
    rows = warp.box[0]
    ys = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None]
    return ys, ys + warp.offsets(amount)


@pytest.mark.parametrize("opening", [3.0, 6.0, 12.0, 24.0])
def test_shut_lids_sample_no_eyeball_whatever_the_opening(opening: float) -> None:
    """At blink = 1 no output pixel of the eye samples between the photo's lids."""
    lids = _eye(opening)
    ys, src = _sources(lids, 1.0)
    middle = np.abs(lids.xs - 60.0) <= 0.3 * lids.width
    for j in np.flatnonzero(middle):
        inside = (src[:, j] > lids.upper[j] + 0.5) & (src[:, j] < lids.lower[j] - 0.5)
        assert not inside.any(), f"column {lids.xs[j]} shows the eyeball at rows {ys[inside, 0]}"


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.6, 0.9])
def test_a_closing_lid_slides_over_the_eyeball(amount: float) -> None:
    """Below the moving lid's edge the eyeball is shown where it is, not squeezed."""
    lids = _eye(12.0)
    ys, src = _sources(lids, amount)
    j = int(np.argmin(np.abs(lids.xs - 60.0)))
    edge = lids.upper[j] + amount * (lids.closed[j] - lids.upper[j])
    ball = (ys[:, 0] > edge + 0.5) & (ys[:, 0] < lids.lower[j] - 2.0)
    np.testing.assert_allclose(src[ball, j], ys[ball, 0])
    if amount == 0.0:
        np.testing.assert_allclose(src[:, j], ys[:, 0])


def test_glasses_frames_stay_put_while_the_lids_shut() -> None:
    """Grace Hopper's dark frames run between her brows and lids: a blink leaves them be."""
    portrait = prepare_portrait(PHOTOS["grace"]().read_bytes(), RenderOptions(size=SIZE))
    animator = WarpAnimator(portrait)
    opened, shut = animator.render({}), animator.render(SHUT)
    xy = portrait.landmarks.xy
    luma = opened.astype(np.float64) @ LUMA
    for brow, upper in ((face.BROW_A, face.EYE_A_UPPER), (face.BROW_B, face.EYE_B_UPPER)):
        x0, x1 = int(xy[list(upper), 0].min()), int(xy[list(upper), 0].max())
        # Down to the lashes: where the frame touches them its edge may move with them.
        lashes = LASH_REACH * (x1 - x0)
        y0, y1 = int(xy[list(brow), 1].min()), int(xy[list(upper), 1].min() - lashes)
        rim = luma[y0:y1, x0:x1] < RIM_LUMA
        assert rim.sum() > 20, "no frame found between brow and lid"
        moved = np.abs(shut[y0:y1, x0:x1].astype(int) - opened[y0:y1, x0:x1].astype(int))
        assert float(moved.max(axis=-1)[rim].mean()) < 2.0

"""The mouth interior on a plain canvas: teeth, tongue and throat where they belong."""

from __future__ import annotations

import cv2
import numpy as np

from facecast.render.lips import tongue_off_the_lip
from facecast.render.mouth import LipOutline, draw_interior
from facecast.render.mouth_palette import palette_from

FACE_HEIGHT = 180.0
LUMA = np.array([0.299, 0.587, 0.114])


def _open_mouth(
    opening: float, tongue: float = 0.0, skin: tuple[int, int, int] = (200, 160, 140)
) -> np.ndarray:
    """An open mouth 100 px wide whose lips part by `opening` px in the middle."""
    image = np.full((120, 140, 3), skin, np.uint8)
    image[10:20] = (170, 90, 90)  # lips, sampled for the palette
    palette = palette_from(image, np.array([[70.0, 15.0]]), np.array([[70.0, 100.0]]))
    xs = np.linspace(20, 120, 11)
    upper = np.stack([xs, np.full(11, 40.0)], axis=1)
    lower = np.stack([xs, 40.0 + opening * np.sin(np.linspace(0, np.pi, 11))], axis=1)
    draw_interior(image, upper, lower, palette, FACE_HEIGHT, tongue=tongue)
    return image


def _column(image: np.ndarray) -> np.ndarray:
    return image[:, 70].astype(np.float64) @ LUMA


def test_upper_teeth_under_the_lip_then_dark_throat() -> None:
    luma = _column(_open_mouth(36.0))
    teeth = luma[42:46].mean()
    throat = luma[52:58].mean()
    assert teeth > 2.0 * throat, (teeth, throat)


def test_teeth_have_gaps() -> None:
    image = _open_mouth(36.0)
    row = image[43, 25:115].astype(np.float64) @ LUMA
    # Between neighbouring teeth the strip darkens: the row is not flat.
    assert float(np.ptp(row)) > 20.0


def test_tongue_shows_when_open_and_rises_for_alveolars() -> None:
    def tongue_top(image: np.ndarray) -> int:
        # The tongue: red (the teeth are ivory), and lighter than the dark red cavity.
        r = image[:, 70, 0].astype(int)
        red = r - image[:, 70, 2].astype(int)
        light = _column(image) > 0.3 * float(np.array([200, 160, 140]) @ LUMA)
        rows = np.flatnonzero(
            (red > 0.45 * r) & light & (np.arange(len(r)) > 45) & (np.arange(len(r)) < 76)
        )
        return int(rows.min()) if len(rows) else 10_000

    rest = tongue_top(_open_mouth(36.0))
    raised = tongue_top(_open_mouth(36.0, tongue=1.0))
    assert rest < 76, "no tongue in an open mouth"
    assert raised < rest - 8, (rest, raised)


def test_a_black_and_white_photo_gets_a_grey_interior() -> None:
    image = _open_mouth(36.0, tongue=1.0, skin=(150, 150, 150))
    inside = image[45:75, 50:90].astype(int)
    assert int(np.abs(inside[..., 0] - inside[..., 2]).max()) <= 6


def test_closed_lips_draw_nothing() -> None:
    image = _open_mouth(0.3)
    assert (image[21:] == (200, 160, 140)).all()


def _lips(tongue: bool) -> tuple[np.ndarray, LipOutline]:
    """Skin with an upper and a lower lip 100 px wide, the mouth open between them, and
    optionally a tongue hanging from the opening over the middle of the lower lip."""
    image = np.full((120, 140, 3), (200, 160, 140), np.uint8)
    xs = np.linspace(20, 120, 11)
    bulge = np.sin(np.linspace(0, np.pi, 11))
    upper_outer = np.stack([xs, 40.0 - 4 * bulge], axis=1)
    upper_inner = np.stack([xs, 40.0 + 4 * bulge], axis=1)
    lower_inner = np.stack([xs, 40.0 + 14 * bulge], axis=1)
    lower_outer = np.stack([xs, 40.0 + 24 * bulge], axis=1)
    for top, bottom, colour in (
        (upper_outer, upper_inner, (170, 90, 90)),
        (upper_inner, lower_inner, (40, 15, 15)),
        (lower_inner, lower_outer, (170, 90, 90)),
    ):
        outline = np.concatenate([top, bottom[::-1]])
        cv2.fillPoly(image, [np.round(outline).astype(np.int32)], colour)
    if tongue:
        image[45:70, 55:85] = (225, 120, 140)
        # Over a tongue the face mesh puts the lower lip's inner edge on the tongue.
        lower_inner = np.stack([xs, 40.0 + 6 * bulge], axis=1)
    return image, LipOutline(upper_inner, upper_outer, lower_inner, lower_outer, 70.0, 50.0)


def test_a_tongue_over_the_lower_lip_is_painted_over_with_lip() -> None:
    image, lips = _lips(tongue=True)
    painted, lower_inner = tongue_off_the_lip(image, lips)
    lip = np.array([170, 90, 90], np.float64)
    # Where the tongue covered the lower lip, lip colour; the lip's inner edge moves down
    # onto the drawn lip (the real lip's top is at 54), so the closing lifts it over the
    # rest of the tongue.
    assert np.linalg.norm(painted[60, 70].astype(np.float64) - lip) < 30, painted[60, 70]
    assert 50.0 < lower_inner[5, 1] < 56.0, lower_inner[5]


def test_a_lower_lip_without_a_tongue_is_left_alone() -> None:
    image, lips = _lips(tongue=False)
    painted, lower_inner = tongue_off_the_lip(image, lips)
    assert painted is image
    np.testing.assert_array_equal(lower_inner, lips.lower_inner)

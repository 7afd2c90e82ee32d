"""The lips' edges: a tongue that lies over the lower lip put back behind it, the contact
line where pressed lips meet, and mouth corners filled with the skin beside them."""

from __future__ import annotations

import cv2
import numpy as np

from facecast.render.mouth import SUBPIXEL_BITS, LipOutline
from facecast.render.mouth_palette import MouthPalette, sample, smooth_curve

TONGUE_OVER_LIP_DISTANCE = 38.0
"""A pixel of the lower lip differs from the lip's own colour by this much (RGB distance)
where a tongue lies over it..."""


TONGUE_OVER_LIP_COVER = 0.6
"""...and a tongue is out when it covers this share of the lower lip's middle."""


TONGUE_REDNESS = 0.7
"""...and is at least this share as red (red over green and blue) as the upper lip..."""


TONGUE_MIN_REDNESS = 30.0
"""...and never less red than this (8-bit levels)."""


TONGUE_REACH = 1.6
"""The tongue is looked for down to this many lower-lip heights below the lip's inner edge
(its tip can hang below the lip)."""


LOWER_LIP_OVER_UPPER = 1.4
"""A lower lip hidden under a tongue is drawn this many times as thick as the upper lip..."""


LOWER_LIP_SHARE = (0.1, 0.2)
"""...but at least and at most these shares of the mouth's width."""


TONGUE_SIDES = (0.55, 0.85)
"""The skin under the lip is taken between these shares of the half-width from the middle,
where a tongue does not reach."""


def tongue_off_the_lip(rgb: np.ndarray, lips: LipOutline) -> tuple[np.ndarray, np.ndarray]:
    """The photo with a tongue that lies over the lower lip painted over, and where the
    lower lip's inner edge really is.

    Over a tongue the face mesh puts the lower lip's inner edge on the tongue. The lip under
    the tongue is not in the photo: it is drawn, as thick as the upper lip (or
    LOWER_LIP_SHARE of the mouth's width) up from its outer edge, in the upper lip's colour
    (a tongue never covers that), lit in its middle, and the tongue's tip below it in the
    colour of the skin under the lip at the mouth's sides. The returned inner edge sits on
    the drawn lip, so the closing warp lifts the lip over the rest of the tongue.
    Returns `rgb` itself and `lips.lower_inner` when no tongue covers the lower lip.
    """
    inner, outer = lips.lower_inner, lips.lower_outer
    x0 = max(int(np.floor(outer[:, 0].min())), 0)
    x1 = min(int(np.ceil(outer[:, 0].max())) + 1, rgb.shape[1])
    xs = np.arange(x0, x1, dtype=np.float64)
    top = _curve_at(inner, xs)
    bottom = _curve_at(outer, xs)
    lip_h = np.maximum(bottom - top, 1.0)
    y0 = max(int(np.floor(top.min())), 0)
    y1 = min(int(np.ceil((top + TONGUE_REACH * lip_h).max())) + 1, rgb.shape[0])
    if x1 - x0 < 8 or y1 - y0 < 4:
        return rgb, inner
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    depth = (ys - top[None, :]) / lip_h[None, :]
    u = (xs - lips.centre_x)[None, :] / max(lips.half_width, 1.0)
    band = (depth >= 0.0) & (depth <= TONGUE_REACH)
    patch = rgb[y0:y1, x0:x1].astype(np.float64)
    skin = _side_skin(patch, band, depth, u)
    if skin is None:
        return rgb, inner
    lip = _upper_lip_colour(rgb, lips)
    into_skin = np.clip((depth - 0.9) / 0.2, 0.0, 1.0)[..., None]
    expected = lip[None, None, :] * (1.0 - into_skin) + skin * into_skin
    differs = np.linalg.norm(patch - expected, axis=-1) > TONGUE_OVER_LIP_DISTANCE
    # A tongue is at least about as red as the lip; a beard or a shadow under the lip is not.
    red_enough = max(TONGUE_REDNESS * float(_redness(lip[None, :])[0]), TONGUE_MIN_REDNESS)
    differs &= _redness(patch) > red_enough
    middle = band & (np.abs(u) < 0.25) & (depth > 0.2) & (depth < 1.0)
    if middle.sum() == 0 or differs[middle].mean() < TONGUE_OVER_LIP_COVER:
        return rgb, inner
    # The lip as thick as the upper lip, thinning towards the corners.
    upper_h = float(np.median(lips.upper_inner[3:8, 1] - lips.upper_outer[3:8, 1]))
    mouth_w = 2.0 * lips.half_width
    thick = float(
        np.clip(
            LOWER_LIP_OVER_UPPER * upper_h,
            LOWER_LIP_SHARE[0] * mouth_w,
            LOWER_LIP_SHARE[1] * mouth_w,
        )
    )
    shape = np.sqrt(np.clip(1.0 - u[0] ** 2, 0.0, 1.0))
    lip_top = np.maximum(top, bottom - thick * shape)
    v = np.clip((ys - lip_top[None, :]) / np.maximum(bottom - lip_top, 1.0)[None, :], 0.0, 1.0)
    below = np.clip((ys - bottom[None, :]) / 2.0 + 0.5, 0.0, 1.0)[..., None]
    lit = 0.85 + 0.2 * np.sin(np.pi * v)
    wanted = lip[None, None, :] * lit[..., None] * (1.0 - below) + skin * below
    covered = differs & band & (ys >= lip_top[None, :] - 1.0) & (np.abs(u) < TONGUE_SIDES[0])
    mask = cv2.morphologyEx(covered.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 1.0)
    # Fading out towards the sides, where the lip shows again.
    alpha = (alpha * np.clip((TONGUE_SIDES[0] - np.abs(u)) / 0.2, 0.0, 1.0))[..., None]
    out = rgb.copy()
    painted = patch * (1.0 - alpha) + wanted * alpha
    out[y0:y1, x0:x1] = np.clip(painted + 0.5, 0, 255).astype(np.uint8)
    moved = inner.copy()
    moved[1:-1, 1] = np.maximum(inner[1:-1, 1], np.interp(inner[1:-1, 0], xs, lip_top))
    return out, moved


def _redness(colour: np.ndarray) -> np.ndarray:
    """Red over the mean of green and blue, per colour (last axis RGB)."""
    return np.asarray(colour[..., 0] - 0.5 * (colour[..., 1] + colour[..., 2]))


def _curve_at(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def _upper_lip_colour(rgb: np.ndarray, lips: LipOutline) -> np.ndarray:
    """Mean colour of the upper lip's middle, towards its outer edge (the inner edge of an
    open mouth's landmarks can sit on the teeth)."""
    inner, outer = lips.upper_inner[3:8], lips.upper_outer[3:8]
    samples = [inner + (outer - inner) * t for t in (0.65, 0.75, 0.85)]
    return sample(rgb, np.concatenate(samples))


def _side_skin(
    patch: np.ndarray, band: np.ndarray, depth: np.ndarray, u: np.ndarray
) -> np.ndarray | None:
    """Per pixel, the skin's colour under the lip at the mouth's sides, blended from the left
    side to the right (None when a side is out of the photo)."""
    refs = []
    for sign in (-1.0, 1.0):
        side = band & (depth > 1.2) & (sign * u > TONGUE_SIDES[0]) & (sign * u < TONGUE_SIDES[1])
        if side.sum() < 4:
            return None
        refs.append(patch[side].mean(axis=0))
    t = np.clip((u + TONGUE_SIDES[0]) / (2.0 * TONGUE_SIDES[0]), 0.0, 1.0)[..., None]
    return np.asarray(refs[0] * (1.0 - t) + refs[1] * t)


CONTACT_OPACITY = 0.45
"""Opacity of the shadow line where the lips of a photo closed by the warp meet."""


def draw_contact_line(
    image: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    palette: MouthPalette,
    strength: float = 1.0,
) -> None:
    """A soft dark line where closed lips meet, into `image` (RGB uint8, in place).

    A photo whose mouth the warp closed has no such line of its own (its lips never touched
    in the photo); without it the lips read as one pale band. Where the lips part, the
    interior is drawn over it. `strength` (0..1) scales the line's opacity.
    """
    line = smooth_curve(0.5 * (upper + lower))
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(line.min(axis=0)).astype(int) - 3, 0)
    x1, y1 = np.ceil(line.max(axis=0)).astype(int) + 4
    x1, y1 = min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 2:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    pts = np.round((line - [x0, y0]) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.polylines(mask, [pts], False, 255, 1, cv2.LINE_AA, SUBPIXEL_BITS)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0.6).astype(np.float32)[..., None] / 255.0
    shadow = palette.cavity * 2.0
    patch = image[y0:y1, x0:x1].astype(np.float32)
    patch += (shadow - patch) * alpha * (CONTACT_OPACITY * min(max(strength, 0.0), 1.0))
    image[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


CORNER_DARK = 0.5
"""Inside the lips but outside their opening, a pixel darker than this share of the lips'
brightness is the mouth's cavity showing at a corner of an open mouth."""


CORNER_OPENING = 0.7
"""...and inside the opening beyond this share of the half-width from the middle..."""


CORNER_REACH = 0.12
"""...also within this share of the mouth's half-width around each outer corner."""


def corners_filled(rgb: np.ndarray, lips: LipOutline) -> np.ndarray:
    """The photo with the dark cavity at the corners of an open mouth filled with lip.

    The face mesh's inner corners often sit short of where the opening ends; the closing warp
    covers the opening between them, and what lies beyond (dark, between the outer corners)
    would stay a black notch at each corner of the closed mouth and widen as the jaw opens.
    It is filled from the lip around it. Returns `rgb` itself when nothing is dark there.
    """
    outer = np.concatenate([lips.upper_outer, lips.lower_outer[::-1]])
    inner = np.concatenate([lips.upper_inner, lips.lower_inner[::-1]])
    pad = int(np.ceil(CORNER_REACH * lips.half_width)) + 3
    x0, y0 = np.maximum(np.floor(outer.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.ceil(outer.max(axis=0)).astype(int) + pad + 1
    x1, y1 = min(x1, rgb.shape[1]), min(y1, rgb.shape[0])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return rgb
    shape = (y1 - y0, x1 - x0)
    band = np.zeros(shape, np.uint8)
    cv2.fillPoly(band, [np.round(outer - [x0, y0]).astype(np.int32)], 1)
    # The dark of an open mouth reaches a little past the mesh's corners: closed, it would
    # stay a thin black stroke out of each corner.
    radius = max(round(CORNER_REACH * lips.half_width), 2)
    for corner in (lips.upper_outer[0], lips.upper_outer[-1]):
        cv2.circle(band, tuple(int(v) for v in np.round(corner - [x0, y0])), radius, 1, -1)
    opening = np.zeros(shape, np.uint8)
    cv2.fillPoly(opening, [np.round(inner - [x0, y0]).astype(np.int32)], 1)
    opening = cv2.dilate(opening, np.ones((3, 3), np.uint8))
    roi = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    luma = roi.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lip_luma = float(np.median(luma[(band > 0) & (opening == 0)])) if band.any() else 0.0
    # Near the corners the opening itself is filled too: the closing meets the lips in the
    # middle, but where the mesh's corners sit inside the dark, the gap there stays open.
    xs = np.arange(x0, x1, dtype=np.float64)[None, :]
    near_corner = np.abs(xs - lips.centre_x) > CORNER_OPENING * lips.half_width
    dark = (band > 0) & ((opening == 0) | near_corner) & (luma < CORNER_DARK * lip_luma)
    if not dark.any():
        return rgb
    mask = cv2.dilate(dark.astype(np.uint8), np.ones((3, 3), np.uint8))
    out = rgb.copy()
    out[y0:y1, x0:x1] = cv2.inpaint(roi, mask, 3, cv2.INPAINT_TELEA)
    return out

"""The inside of an open mouth: a dark, shaded cavity with a hint of upper teeth.

Drawn only where the lips part, from smoothed curves through the inner lip points, and
blended over a pixel at its edges so it reads as part of the photo rather than a sticker.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_OPENING = 0.6
"""Openings thinner than this (pixels) draw nothing: the lips still touch."""
SUBPIXEL_BITS = 4
TEETH_SHARE = 0.34
"""Upper teeth show over at most this share of the opening's height..."""
TEETH_MAX = 0.045
"""...and at most this fraction of the face height."""
TEETH_SPAN = 0.68
"""Teeth are visible across this share of the mouth's half-width before fading into shadow."""


@dataclass(frozen=True)
class MouthPalette:
    """Colours sampled from the photo once, so the interior matches its light."""

    cavity: np.ndarray  # float32 RGB
    tongue: np.ndarray
    teeth: np.ndarray


def palette_from(rgb: np.ndarray, lip_points: np.ndarray, cheek_points: np.ndarray) -> MouthPalette:
    """Interior colours derived from the lips' and skin's colour and brightness."""
    lips = _sample(rgb, lip_points)
    skin = _sample(rgb, cheek_points)
    luma = float(skin @ np.array([0.299, 0.587, 0.114]))
    light = np.clip(luma / 170.0, 0.55, 1.15)
    cavity = lips * 0.24 + np.array([10.0, 2.0, 2.0])
    tongue = lips * 0.55 + np.array([12.0, 2.0, 2.0])
    teeth = np.array([226.0, 220.0, 206.0]) * light * 0.9 + skin * 0.1
    return MouthPalette(
        cavity.astype(np.float32),
        tongue.astype(np.float32),
        np.clip(teeth, 0, 255).astype(np.float32),
    )


def _sample(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    return rgb[ys, xs].astype(np.float64).mean(axis=0)


def _smooth_curve(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting with fixed end points: a smooth curve through the lip points."""
    pts = points
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        pts = np.concatenate([pts[:1], mid, pts[-1:]])
    return pts


def draw_interior(
    image: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    palette: MouthPalette,
    face_height: float,
) -> None:
    """Paint the mouth interior between the inner lip curves into `image` (RGB uint8, in place).

    `upper` and `lower` are the inner lip points from one corner to the other, in `image`'s
    pixel coordinates, as they stand in this frame.
    """
    opening = lower[:, 1] - upper[:, 1]
    if float(opening.max()) < MIN_OPENING:
        return
    up = _smooth_curve(upper)
    lo = _smooth_curve(lower)
    h, w = image.shape[:2]
    x0 = max(int(np.floor(min(up[:, 0].min(), lo[:, 0].min()))) - 2, 0)
    x1 = min(int(np.ceil(max(up[:, 0].max(), lo[:, 0].max()))) + 3, w)
    y0 = max(int(np.floor(up[:, 1].min())) - 2, 0)
    y1 = min(int(np.ceil(lo[:, 1].max())) + 3, h)
    if x1 - x0 < 3 or y1 - y0 < 2:
        return
    poly = np.concatenate([up, lo[::-1]]) - np.array([x0, y0])
    scale = 1 << SUBPIXEL_BITS
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * scale).astype(np.int32)], 255, cv2.LINE_AA, SUBPIXEL_BITS)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0.5).astype(np.float32)[..., None] / 255.0
    if float(alpha.max()) <= 0.0:
        return
    xs = np.arange(x0, x1, dtype=np.float64)
    top = np.interp(xs, up[:, 0], up[:, 1])[None, :]
    bottom = np.interp(xs, lo[:, 0], lo[:, 1])[None, :]
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    height = np.maximum(bottom - top, 1e-3)
    v = np.clip((ys - top) / height, 0.0, 1.0)
    centre_x = 0.5 * (up[0, 0] + up[-1, 0])
    half_w = max(0.5 * abs(up[-1, 0] - up[0, 0]), 1.0)
    u = np.abs(xs - centre_x)[None, :] / half_w

    # Cavity: darkest in the middle and towards the corners, a little light near the lips.
    depth = 0.75 + 0.25 * np.abs(2.0 * v - 1.0)
    depth = depth * (1.0 - 0.35 * np.clip(u, 0, 1) ** 2)
    colour = palette.cavity[None, None, :] * depth[..., None]
    # Tongue shows low in a wide-open mouth.
    tall = np.clip((height - 0.05 * face_height) / (0.05 * face_height), 0.0, 1.0)
    tongue_w = np.clip((v - 0.62) / 0.3, 0.0, 1.0) * tall * (1.0 - np.clip(u, 0, 1) ** 2)
    colour = (
        colour * (1.0 - tongue_w[..., None])
        + palette.tongue[None, None, :] * tongue_w[..., None] * 0.8
    )

    # Upper teeth: a narrow strip under the upper lip, shaded and fading toward the corners.
    teeth_h = np.minimum(height * TEETH_SHARE, TEETH_MAX * face_height)
    dist = ys - top
    in_teeth = np.clip((teeth_h - dist) / 0.9, 0.0, 1.0) * np.clip(dist / 0.7 + 0.4, 0.0, 1.0)
    span = np.clip((TEETH_SPAN - u) / 0.25, 0.0, 1.0)
    show = np.clip((height - 1.2) / 2.5, 0.0, 1.0)
    teeth_a = in_teeth * span * show * 0.92
    # The upper lip shades the top of the teeth; they darken toward the sides.
    shade = (0.72 + 0.28 * np.clip(dist / np.maximum(teeth_h, 1e-3), 0, 1)) * (
        1.0 - 0.3 * np.clip(u, 0, 1)
    )
    teeth = palette.teeth[None, None, :] * shade[..., None]
    colour = colour * (1.0 - teeth_a[..., None]) + teeth * teeth_a[..., None]

    patch = image[y0:y1, x0:x1].astype(np.float32)
    # A soft shadow just inside the lips keeps the edge from looking cut out.
    patch = patch * (1.0 - alpha) + colour * alpha
    image[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

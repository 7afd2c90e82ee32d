"""The colours of a painted mouth, taken from the photo: the cavity's dark warm tones, the
teeth's and tongue's, the grain and softness of the photo around the mouth, and the photo's
own teeth where it shows them."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import cv2
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])


TEETH_SHOW = 0.042
"""Upper teeth hang this fraction of the face height below the upper lip in a small opening..."""


TONGUE_LIGHT = 1.05
"""The tongue's top is about as light as the lips (it is wet and faces the light)."""


CAVITY_EDGE = 0.5
"""The lips' inner, wet surface at the rim of the opening: this share of the lips' colour..."""


CAVITY_DEEP = 0.3
"""...and the back of the mouth this share: dark and warm, lit a little from the front."""


CAVITY_SATURATION = 1.6
"""The inside of the lips and the cavity are this much more saturated than the lips' outside."""


MOUTH_RED = np.array([1.75, 0.72, 0.66])
"""The hue of the inside of a mouth (per unit of luma)..."""


MOUTH_RED_SHARE = 0.5
"""...that the lips' own colour is pulled this far towards: pale or brownish lips still have
a red mouth behind them."""


TEETH_LUMA = (0.55, 110.0)
"""Teeth brightness = a x the skin's luma + b: on a face in shadow the teeth are darker
too (a bright white strip on a dim face reads as a denture)..."""


TEETH_LUMA_RANGE = (120.0, 225.0)
"""...within these bounds."""


TEETH_TINT = np.array([1.08, 1.0, 0.82])
"""Ivory, not paper white."""


OWN_TEETH_MIN_GAP = 0.02
"""A photo whose lips part by this fraction of the face height may show its own teeth..."""


OWN_TEETH_LIGHTNESS = 0.8
"""...used when the strip under the upper lip is at least this bright relative to the skin."""


OWN_TEETH_COLUMNS = 64


GRAIN_TILE = 64
"""The grain added to the interior is a fixed tile of this many pixels, anchored to the frame
(a photo's grain does not crawl)."""


GRAIN_SHARE = 0.6
"""Share of the fine detail around the mouth that is grain (the rest is the skin's pores)."""


SOFT_RATIO = (0.45, 0.9)
"""Share of the gradient energy around the mouth that a 1 px blur keeps: a sharp photo keeps
the first, a soft (enlarged, out of focus) one the second..."""


BLUR_RANGE = (0.6, 1.8)
"""...and the interior is softened by a Gaussian of these sigmas (pixels) between them."""


@dataclass(frozen=True)
class MouthPalette:
    """Colours sampled from the photo once, so the interior matches its light."""

    cavity: np.ndarray  # float32 RGB
    tongue: np.ndarray
    teeth: np.ndarray
    own_teeth: np.ndarray | None = None
    """The photo's upper teeth as (rows, OWN_TEETH_COLUMNS, 3) float32: a column per position
    across the mouth, a row per pixel below the upper lip (at `own_teeth_scale`)."""
    own_teeth_scale: float = 1.0
    """Face height of the photo the teeth were taken from, in pixels."""
    lips: np.ndarray | None = None
    """The lips' colour (None: twice the cavity's)."""
    blur: float = BLUR_RANGE[0]
    """Gaussian sigma (pixels) that softens the interior like the photo around the mouth."""
    grain: np.ndarray | None = None
    """(GRAIN_TILE, GRAIN_TILE) float32 luma noise as strong as the photo's, or None."""

    @property
    def lip_colour(self) -> np.ndarray:
        return self.cavity * 2.0 if self.lips is None else self.lips


def palette_from(
    rgb: np.ndarray,
    lip_points: np.ndarray,
    cheek_points: np.ndarray,
    finish: tuple[float, float] = (BLUR_RANGE[0], 0.0),
) -> MouthPalette:
    """Interior colours derived from the lips' and skin's colour and brightness; `finish` is
    the photo's softness and grain around the mouth (photo_finish)."""
    lips = sample(rgb, lip_points)
    skin = sample(rgb, cheek_points)
    luma = float(skin @ LUMA)
    light = np.clip(luma / 170.0, 0.55, 1.15)
    # Dark and warm, from the lips' own colour, redder than pale lips look from outside: a
    # real mouth is red inside, never flat black.
    red = np.clip(_saturate(lips, CAVITY_SATURATION), 1.0, 255.0)
    red = (1.0 - MOUTH_RED_SHARE) * red + MOUTH_RED_SHARE * MOUTH_RED * float(red @ LUMA)
    red = np.clip(red, 1.0, 255.0)
    cavity = red * CAVITY_DEEP + np.array([6.0, 1.0, 1.0]) * light
    # The tongue: the lips' hue, pinker and lighter than dark lips, darker than pale ones.
    tongue = 0.5 * red * TONGUE_LIGHT + 0.5 * np.array([180.0, 92.0, 92.0]) * light
    teeth_luma = float(np.clip(TEETH_LUMA[0] * luma + TEETH_LUMA[1], *TEETH_LUMA_RANGE))
    # Warmed by the light inside the mouth and off the skin: a cold grey reads as plastic.
    warm = skin * teeth_luma / max(float(skin @ LUMA), 1.0)
    teeth = TEETH_TINT * teeth_luma / float(TEETH_TINT @ LUMA) * 0.7 + warm * 0.3
    # As colourful as the photo: a black-and-white portrait gets a grey mouth.
    colourful = float(np.clip((skin.max() - skin.min()) / 40.0, 0.0, 1.0))
    lips = red
    cavity, tongue, teeth, lip = (_saturate(c, colourful) for c in (cavity, tongue, teeth, lips))
    blur, grain = finish
    tile = None
    if grain > 0.5:
        noise = np.random.default_rng(0).standard_normal((GRAIN_TILE, GRAIN_TILE))
        tile = (noise * grain).astype(np.float32)
    return MouthPalette(
        cavity.astype(np.float32),
        np.clip(tongue, 0, 255).astype(np.float32),
        np.clip(teeth, 0, 255).astype(np.float32),
        lips=np.clip(lip, 0, 255).astype(np.float32),
        blur=float(blur),
        grain=tile,
    )


def photo_finish(rgb: np.ndarray, centre: np.ndarray, half_width: float) -> tuple[float, float]:
    """How soft (Gaussian sigma in pixels) and how grainy (noise std in luma) the photo is
    around the mouth, so the painted interior can match it."""
    r = int(max(1.6 * half_width, 8.0))
    cx, cy = round(float(centre[0])), round(float(centre[1]))
    patch = rgb[max(cy - r, 0) : cy + r, max(cx - r, 0) : cx + r]
    if patch.shape[0] < 8 or patch.shape[1] < 8:
        return BLUR_RANGE[0], 0.0
    luma = patch.astype(np.float32) @ LUMA.astype(np.float32)

    def energy(image: np.ndarray) -> float:
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1)
        return float(np.mean(gx * gx + gy * gy))

    kept = energy(cv2.GaussianBlur(luma, (0, 0), 1.0)) / max(energy(luma), 1e-3)
    soft = float(np.clip((kept - SOFT_RATIO[0]) / (SOFT_RATIO[1] - SOFT_RATIO[0]), 0.0, 1.0))
    blur = BLUR_RANGE[0] + (BLUR_RANGE[1] - BLUR_RANGE[0]) * soft
    # The grain: what a small blur takes away, robustly (edges are few, noise everywhere).
    high = luma - cv2.GaussianBlur(luma, (0, 0), 1.0)
    grain = GRAIN_SHARE * 1.4826 * float(np.median(np.abs(high - np.median(high))))
    return blur, grain


def _saturate(colour: np.ndarray, amount: float) -> np.ndarray:
    grey = float(colour @ LUMA)
    return np.asarray(grey + (colour - grey) * amount, dtype=np.float64)


def with_own_teeth(
    palette: MouthPalette,
    rgb: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    face_height: float,
    skin: np.ndarray,
) -> MouthPalette:
    """`palette` plus the photo's own upper teeth, if its lips part over bright teeth.

    `upper` and `lower` are the photo's inner lip points (corner to corner) before closing.
    """
    gap = lower[:, 1] - upper[:, 1]
    if float(np.median(gap[3:-3])) < OWN_TEETH_MIN_GAP * face_height:
        return palette
    rows = max(round(min(float(np.median(gap[3:-3])), TEETH_SHOW * face_height * 1.3)), 2)
    up = smooth_curve(upper)
    xs = np.linspace(up[0, 0], up[-1, 0], OWN_TEETH_COLUMNS + 2)[1:-1]
    tops = np.interp(xs, up[:, 0], up[:, 1])
    grid_x = np.repeat(xs[None, :], rows, axis=0).astype(np.float32)
    grid_y = (tops[None, :] + 1.0 + np.arange(rows)[:, None]).astype(np.float32)
    strip = cv2.remap(rgb, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    strip = strip.astype(np.float32)
    luma = strip @ LUMA.astype(np.float32)
    skin_luma = float(skin @ LUMA)
    middle = luma[:, OWN_TEETH_COLUMNS // 4 : 3 * OWN_TEETH_COLUMNS // 4]
    if float(np.median(middle)) < OWN_TEETH_LIGHTNESS * skin_luma:
        return palette
    return dataclasses.replace(palette, own_teeth=strip, own_teeth_scale=face_height)


def sample(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    return rgb[ys, xs].astype(np.float64).mean(axis=0)


def smooth_curve(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting with fixed end points: a smooth curve through the lip points."""
    return np.asarray(_chaikin(len(points), iterations) @ points)


@functools.lru_cache(maxsize=8)
def _chaikin(n: int, iterations: int) -> np.ndarray:
    """Chaikin's corner cutting is linear in the points: its (m, n) matrix, built once."""
    pts = np.eye(n)
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), n))
        mid[0::2], mid[1::2] = q, r
        pts = np.concatenate([pts[:1], mid, pts[-1:]])
    return pts


@dataclass(frozen=True)
class Layout:
    """Per-pixel coordinates of the opening's bounding box."""

    dist: np.ndarray  # pixels below the upper lip
    rise: np.ndarray  # pixels above the lower lip
    height: np.ndarray  # opening per column (1, w)
    u: np.ndarray  # |x - centre| / half-width, (1, w)


def clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """np.clip without its dispatch (which costs more than the clipping on small arrays)."""
    return np.minimum(np.maximum(x, lo), hi)


def own_teeth(
    palette: MouthPalette, lay: Layout, face_height: float
) -> tuple[np.ndarray, np.ndarray]:
    """The photo's own teeth (planes), looked up by position across the mouth and depth
    below the lip, and per pixel how far (0..1) it lies below what the photo showed of them."""
    strip = palette.own_teeth
    assert strip is not None
    rows, cols = strip.shape[:2]
    # u is unsigned; recover the side from the column order of the bounding box.
    width = lay.u.shape[1]
    signed = np.where(np.arange(width) < np.argmin(lay.u[0]), -lay.u[0], lay.u[0])
    col = np.clip((signed + 1.0) / 2.0 * (cols - 1), 0, cols - 1)
    depth = lay.dist * (palette.own_teeth_scale / face_height)
    row = clamp(depth, 0, rows - 1)
    map_x = np.broadcast_to(col[None, :], row.shape).astype(np.float32)
    beyond = clamp((depth - (rows - 2)) / 2.0, 0.0, 1.0)
    own = cv2.remap(strip, map_x, row.astype(np.float32), cv2.INTER_LINEAR)
    return np.stack(cv2.split(own)), beyond

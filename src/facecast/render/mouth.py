"""The inside of an open mouth: throat, upper and lower teeth, tongue and the lips' shadow.

Drawn only where the lips part, from smoothed curves through the inner lip points, and
blended over about a pixel at its edges so it reads as part of the photo, not a sticker.
Where the photo itself shows the upper teeth, they are taken from the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_OPENING = 0.6
"""Openings thinner than this (pixels) draw nothing: the lips still touch."""
SUBPIXEL_BITS = 4
TEETH_SHOW = 0.042
"""Upper teeth hang this fraction of the face height below the upper lip..."""
TEETH_SHARE = 0.55
"""...but fill at most this share of a small opening."""
TEETH_SPAN = 0.78
"""Teeth are visible across this share of the mouth's half-width before the corners' shadow."""
TOOTH_EDGES = (0.0, 0.22, 0.4, 0.55, 0.67, 0.77, 0.86, 0.94)
"""Where one tooth ends and the next begins, across the half-width from the middle: the
incisors are widest, the teeth further back look narrower in perspective."""
LOWER_TEETH_FROM = 0.1
"""Lower teeth show once the opening exceeds this fraction of the face height..."""
LOWER_TEETH_SHOW = 0.02
"""...and rise up to this fraction of the face height above the lower lip."""
TONGUE_REST = 0.42
"""The tongue fills this share of the opening from below at rest..."""
TONGUE_RAISED = 0.8
"""...and this share when raised to the ridge behind the teeth (l, t, d, n)."""
TONGUE_FROM = 0.03
"""The tongue shows once the opening exceeds this fraction of the face height."""
OWN_TEETH_MIN_GAP = 0.02
"""A photo whose lips part by this fraction of the face height may show its own teeth..."""
OWN_TEETH_LIGHTNESS = 0.8
"""...used when the strip under the upper lip is at least this bright relative to the skin."""
OWN_TEETH_COLUMNS = 64


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


def palette_from(rgb: np.ndarray, lip_points: np.ndarray, cheek_points: np.ndarray) -> MouthPalette:
    """Interior colours derived from the lips' and skin's colour and brightness."""
    lips = _sample(rgb, lip_points)
    skin = _sample(rgb, cheek_points)
    luma = float(skin @ np.array([0.299, 0.587, 0.114]))
    light = np.clip(luma / 170.0, 0.55, 1.15)
    # A throat that is lit a little by the photo's light, never a flat black hole.
    cavity = lips * 0.22 + np.array([14.0, 3.0, 3.0]) * light
    # The tongue: the lips' hue, pinker and lighter than dark lips, darker than pale ones.
    tongue = 0.5 * lips + 0.5 * np.array([190.0, 95.0, 95.0]) * light
    teeth = np.array([232.0, 226.0, 210.0]) * light * 0.88 + skin * 0.1
    # As colourful as the photo: a black-and-white portrait gets a grey mouth.
    colourful = float(np.clip((skin.max() - skin.min()) / 40.0, 0.0, 1.0))
    cavity, tongue, teeth = (_saturate(c, colourful) for c in (cavity, tongue, teeth))
    return MouthPalette(
        cavity.astype(np.float32),
        np.clip(tongue, 0, 255).astype(np.float32),
        np.clip(teeth, 0, 255).astype(np.float32),
    )


def _saturate(colour: np.ndarray, amount: float) -> np.ndarray:
    grey = float(colour @ np.array([0.299, 0.587, 0.114]))
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
    up = _smooth_curve(upper)
    xs = np.linspace(up[0, 0], up[-1, 0], OWN_TEETH_COLUMNS + 2)[1:-1]
    tops = np.interp(xs, up[:, 0], up[:, 1])
    grid_x = np.repeat(xs[None, :], rows, axis=0).astype(np.float32)
    grid_y = (tops[None, :] + 1.0 + np.arange(rows)[:, None]).astype(np.float32)
    strip = cv2.remap(rgb, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    strip = strip.astype(np.float32)
    luma = strip @ np.array([0.299, 0.587, 0.114], np.float32)
    skin_luma = float(skin @ np.array([0.299, 0.587, 0.114]))
    middle = luma[:, OWN_TEETH_COLUMNS // 4 : 3 * OWN_TEETH_COLUMNS // 4]
    if float(np.median(middle)) < OWN_TEETH_LIGHTNESS * skin_luma:
        return palette
    return MouthPalette(palette.cavity, palette.tongue, palette.teeth, strip, face_height)


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


def _tooth_profile(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the dark gap between neighbouring teeth (0..1) and each tooth's roundness.

    Roundness is 1 in a tooth's middle and 0 at its sides: the light falls on its bulge.
    """
    edges = np.asarray(TOOTH_EDGES)
    idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, len(edges) - 2)
    left, right = edges[idx], edges[idx + 1]
    t = np.clip((u - left) / (right - left), 0.0, 1.0)
    # The gap line sits on the tooth's edge; the middle line between the incisors (t=0 at
    # idx 0) is a gap too.
    edge = np.minimum(t, 1.0 - t) * (right - left)
    gap = np.exp(-((edge / 0.008) ** 2))
    return gap, np.sin(np.pi * t)


@dataclass(frozen=True)
class _Layout:
    """Per-pixel coordinates of the opening's bounding box."""

    dist: np.ndarray  # pixels below the upper lip
    rise: np.ndarray  # pixels above the lower lip
    height: np.ndarray  # opening per column (1, w)
    u: np.ndarray  # |x - centre| / half-width, (1, w)
    v: np.ndarray  # 0 at the upper lip, 1 at the lower


def draw_interior(
    image: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    palette: MouthPalette,
    face_height: float,
    tongue: float = 0.0,
) -> None:
    """Paint the mouth interior between the inner lip curves into `image` (RGB uint8, in place).

    `upper` and `lower` are the inner lip points from one corner to the other, in `image`'s
    pixel coordinates, as they stand in this frame; `tongue` 0..1 raises the tongue's tip.
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
    alpha = cv2.GaussianBlur(mask, (3, 3), 0.7).astype(np.float32)[..., None] / 255.0
    if float(alpha.max()) <= 0.0:
        return
    xs = np.arange(x0, x1, dtype=np.float64)
    top = np.interp(xs, up[:, 0], up[:, 1])[None, :]
    bottom = np.interp(xs, lo[:, 0], lo[:, 1])[None, :]
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    height = np.maximum(bottom - top, 1e-3)
    centre_x = 0.5 * (up[0, 0] + up[-1, 0])
    half_w = max(0.5 * abs(up[-1, 0] - up[0, 0]), 1.0)
    lay = _Layout(
        dist=ys - top,
        rise=bottom - ys,
        height=height,
        u=np.abs(xs - centre_x)[None, :] / half_w,
        v=np.clip((ys - top) / height, 0.0, 1.0),
    )
    widest = float(height.max())
    colour = _throat(palette, lay)
    colour = _tongue(colour, palette, lay, widest, face_height, tongue)
    colour = _lower_teeth(colour, palette, lay, widest, face_height)
    colour = _upper_teeth(colour, palette, lay, face_height)
    # The lips' own shadow: the interior darkens right under the upper lip and at the corners.
    shadow = 1.0 - 0.45 * np.exp(-np.maximum(lay.dist, 0.0) / 1.6)
    shadow = shadow * (1.0 - 0.5 * np.clip((lay.u - 0.75) / 0.25, 0.0, 1.0))
    colour = colour * shadow[..., None]
    patch = image[y0:y1, x0:x1].astype(np.float32)
    patch = patch * (1.0 - alpha) + colour.astype(np.float32) * alpha
    image[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def _throat(palette: MouthPalette, lay: _Layout) -> np.ndarray:
    """The cavity: darkest deep in the middle, a little light near the lips."""
    depth = 0.55 + 0.45 * np.abs(2.0 * lay.v - 1.0) ** 1.5
    depth = depth * (1.0 - 0.4 * np.clip(lay.u, 0, 1) ** 2)
    return palette.cavity[None, None, :] * depth[..., None]


def _tongue(
    colour: np.ndarray,
    palette: MouthPalette,
    lay: _Layout,
    widest: float,
    face_height: float,
    raised: float,
) -> np.ndarray:
    """A rounded tongue rising from the floor of the mouth; raised, its tip nears the teeth."""
    show = float(np.clip((widest - TONGUE_FROM * face_height) / (0.04 * face_height), 0.0, 1.0))
    share = TONGUE_REST + (TONGUE_RAISED - TONGUE_REST) * float(np.clip(raised, 0.0, 1.0))
    if show <= 0.0 and raised <= 0.0:
        return colour
    # Its upper outline is an arch: highest in the middle, falling off towards the sides.
    # Raised, only its tip reaches up: the arch narrows.
    spread = 0.8 - 0.35 * float(np.clip(raised, 0.0, 1.0))
    arch = np.clip(1.0 - (lay.u / spread) ** 2, 0.0, 1.0)
    surface = lay.height * share * arch  # pixels above the lower lip
    inside = np.clip((surface - lay.rise) / 1.2, 0.0, 1.0) * max(show, raised)
    # Lit on its top, darker deeper down and towards the sides.
    below = np.clip((surface - lay.rise) / np.maximum(surface, 1e-3), 0.0, 1.0)
    shade = (1.0 - 0.35 * below) * (1.0 - 0.35 * np.clip(lay.u, 0, 1) ** 2)
    groove = 1.0 - 0.12 * np.exp(-((lay.u / 0.06) ** 2))
    tongue = palette.tongue[None, None, :] * (shade * groove)[..., None]
    return colour * (1.0 - inside[..., None]) + tongue * inside[..., None]


def _lower_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: _Layout, widest: float, face_height: float
) -> np.ndarray:
    """Lower incisors' edges above the lower lip once the mouth is wide open, in shadow."""
    show = float(np.clip((widest - LOWER_TEETH_FROM * face_height) / (0.03 * face_height), 0, 1))
    if show <= 0.0:
        return colour
    teeth_h = LOWER_TEETH_SHOW * face_height * show * (1.0 - 0.4 * lay.u**2)
    inside = np.clip((teeth_h - lay.rise) / 0.8, 0.0, 1.0) * np.clip((0.5 - lay.u) / 0.2, 0, 1)
    gap, round_ = _tooth_profile(lay.u * 1.4)
    shade = (0.45 + 0.12 * round_) * (1.0 - 0.3 * gap) * (1.0 - 0.3 * lay.u)
    teeth = palette.teeth[None, None, :] * shade[..., None]
    return colour * (1.0 - inside[..., None]) + teeth * inside[..., None]


def _upper_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: _Layout, face_height: float
) -> np.ndarray:
    """Upper teeth hanging from under the upper lip: shaped, with gaps, shaded at the top."""
    reach = np.minimum(TEETH_SHOW * face_height, TEETH_SHARE * lay.height)
    # The incisors are longest; each tooth's edge is a little rounded.
    gap, round_ = _tooth_profile(lay.u)
    teeth_h = reach * (1.0 - 0.3 * lay.u**2) * (0.9 + 0.1 * round_)
    inside = np.clip((teeth_h - lay.dist) / 0.9, 0.0, 1.0)
    inside = inside * np.clip((TEETH_SPAN - lay.u) / 0.2, 0.0, 1.0)
    inside = inside * np.clip((lay.height - 1.0) / 2.0, 0.0, 1.0)
    lit = np.clip(lay.dist / np.maximum(teeth_h, 1e-3), 0.0, 1.0)
    shade = (0.7 + 0.3 * lit) * (0.88 + 0.12 * round_) * (1.0 - 0.35 * np.clip(lay.u, 0, 1))
    shade = shade * (1.0 - 0.3 * gap)
    if palette.own_teeth is not None:
        teeth = _own_teeth(palette, lay, face_height) * (1.0 - 0.25 * (1.0 - lit))[..., None]
    else:
        teeth = palette.teeth[None, None, :] * shade[..., None]
    return colour * (1.0 - inside[..., None]) + teeth * inside[..., None]


def _own_teeth(palette: MouthPalette, lay: _Layout, face_height: float) -> np.ndarray:
    """The photo's own teeth, looked up by position across the mouth and depth below the lip."""
    strip = palette.own_teeth
    assert strip is not None
    rows, cols = strip.shape[:2]
    # u is unsigned; recover the side from the column order of the bounding box.
    width = lay.u.shape[1]
    signed = np.where(np.arange(width) < np.argmin(lay.u[0]), -lay.u[0], lay.u[0])
    col = np.clip((signed + 1.0) / 2.0 * (cols - 1), 0, cols - 1)
    row = np.clip(lay.dist * (palette.own_teeth_scale / face_height), 0, rows - 1)
    map_x = np.broadcast_to(col[None, :], row.shape).astype(np.float32)
    return cv2.remap(strip, map_x, row.astype(np.float32), cv2.INTER_LINEAR)

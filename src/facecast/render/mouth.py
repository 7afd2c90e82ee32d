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
"""Upper teeth hang this fraction of the face height below the upper lip in a small opening..."""
TEETH_SHOW_WIDE = 0.068
"""...and this much once the opening reaches TEETH_WIDE_AT: the upper lip draws back and the
incisors show their whole height on an open vowel..."""
TEETH_WIDE_AT = 0.15
TEETH_SHARE = 0.55
"""...but fill at most this share of a small opening."""
TEETH_SPAN = 0.78
"""Teeth are visible across this share of the mouth's half-width before the corners' shadow."""
TOOTH_EDGES = (0.0, 0.22, 0.4, 0.55, 0.67, 0.77, 0.86, 0.94)
"""Where one tooth ends and the next begins, across the half-width from the middle: the
incisors are widest, the teeth further back look narrower in perspective."""
LOWER_TEETH_FROM = 0.09
"""Lower teeth show once the opening exceeds this fraction of the face height..."""
LOWER_TEETH_SHOW = 0.026
"""...and rise up to this fraction of the face height above the lower lip."""
LOWER_TEETH_SPAN = 0.6
"""Lower teeth are visible across this share of the mouth's half-width (a narrower arch)."""
TONGUE_REST = 0.36
"""The tongue fills this share of the opening from below at rest..."""
TONGUE_RAISED = 0.8
"""...and this share when raised to the ridge behind the teeth (l, t, d, n)."""
THROAT_GLOW = 0.35
"""How much of the tongue's colour (darkened) the sides and floor of the cavity take on."""
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
    cavity = palette.cavity[None, None, :] * depth[..., None]
    # The insides of the cheeks and the floor of the mouth catch a little light: tongue-red,
    # strongest towards the corners and the bottom, none deep in the middle.
    glow = THROAT_GLOW * (np.clip(lay.u, 0, 1) ** 2 * 0.6 + lay.v**2 * 0.4)
    return cavity * (1.0 - glow[..., None]) + palette.tongue[None, None, :] * 0.45 * glow[..., None]


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
    spread = 0.85 - 0.25 * float(np.clip(raised, 0.0, 1.0))
    # Broad and flat at rest, a rounded tip when raised.
    power = 4.0 - 2.0 * float(np.clip(raised, 0.0, 1.0))
    arch = np.clip(1.0 - (lay.u / spread) ** power, 0.0, 1.0) ** 0.5
    surface = lay.height * share * arch  # pixels above the lower lip
    # Its top edge is soft: it curves away from view rather than ending in a line.
    soft = 1.2 + 0.15 * surface
    inside = np.clip((surface - lay.rise) / soft, 0.0, 1.0) * max(show, raised)
    # Lit on its top, darker deeper down and towards the sides.
    below = np.clip((surface - lay.rise) / np.maximum(surface, 1e-3), 0.0, 1.0)
    # Its top catches the light just behind its edge; further back it curves into the dark.
    ridge = np.exp(-(((surface - lay.rise) / np.maximum(0.25 * surface, 1.0) - 0.35) ** 2) * 4.0)
    shade = (0.85 + 0.15 * ridge - 0.3 * below) * (1.0 - 0.35 * np.clip(lay.u, 0, 1) ** 2)
    groove = 1.0 - 0.12 * np.exp(-((lay.u / 0.06) ** 2))
    tongue = palette.tongue[None, None, :] * (shade * groove)[..., None]
    return colour * (1.0 - inside[..., None]) + tongue * inside[..., None]


def _lower_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: _Layout, widest: float, face_height: float
) -> np.ndarray:
    """Lower incisors' edges above the lower lip once the mouth is wide open, in shadow."""
    show = float(np.clip((widest - LOWER_TEETH_FROM * face_height) / (0.04 * face_height), 0, 1))
    if show <= 0.0:
        return colour
    span = LOWER_TEETH_SPAN
    gap, round_ = _tooth_profile(lay.u / span * 0.8)
    # Each lower incisor's edge is a little rounded, and they are shorter towards the sides.
    teeth_h = LOWER_TEETH_SHOW * face_height * show * (1.0 - 0.45 * (lay.u / span) ** 2)
    teeth_h = teeth_h * (0.88 + 0.12 * round_)
    inside = np.clip((teeth_h - lay.rise) / 0.8, 0.0, 1.0)
    inside = inside * np.clip((span - lay.u) / 0.15, 0.0, 1.0)
    # In the upper lip's and the tongue's shadow: darker than the upper teeth, lit at the edge.
    edge = np.clip(1.0 - (teeth_h - lay.rise) / np.maximum(teeth_h, 1e-3), 0.0, 1.0)
    shade = (0.72 + 0.12 * round_ + 0.1 * edge) * (1.0 - 0.35 * gap) * (1.0 - 0.35 * lay.u)
    teeth = palette.teeth[None, None, :] * shade[..., None]
    return colour * (1.0 - inside[..., None]) + teeth * inside[..., None]


def _upper_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: _Layout, face_height: float
) -> np.ndarray:
    """Upper teeth hanging from under the upper lip: shaped, with gaps, shaded at the top."""
    wide = np.clip(lay.height / (TEETH_WIDE_AT * face_height), 0.0, 1.0)
    show = TEETH_SHOW + (TEETH_SHOW_WIDE - TEETH_SHOW) * wide
    reach = np.minimum(show * face_height, TEETH_SHARE * lay.height)
    # The incisors are longest, the canines and the teeth behind them shorter; each tooth's
    # edge is rounded at its corners.
    gap, round_ = _tooth_profile(lay.u)
    teeth_h = reach * (1.0 - 0.3 * lay.u**2) * (0.84 + 0.16 * np.sqrt(round_))
    inside = np.clip((teeth_h - lay.dist) / 0.9, 0.0, 1.0)
    inside = inside * np.clip((TEETH_SPAN - lay.u) / 0.2, 0.0, 1.0)
    inside = inside * np.clip((lay.height - 1.0) / 2.0, 0.0, 1.0)
    lit = np.clip(lay.dist / np.maximum(teeth_h, 1e-3), 0.0, 1.0)
    shade = (0.7 + 0.3 * lit) * (0.88 + 0.12 * round_) * (1.0 - 0.35 * np.clip(lay.u, 0, 1))
    # The gaps between teeth are darkest up at the gum and fade towards the biting edge, and
    # the edge itself is a little translucent (greyer).
    shade = (
        shade * (1.0 - (0.45 - 0.3 * lit) * gap) * (1.0 - 0.14 * np.clip(lit - 0.82, 0, 1) / 0.18)
    )
    teeth = palette.teeth[None, None, :] * shade[..., None]
    if palette.own_teeth is not None:
        own, beyond = _own_teeth(palette, lay, face_height)
        own = own * (1.0 - 0.25 * (1.0 - lit))[..., None]
        # Below what the photo showed, drawn teeth of the own teeth's colour continue them.
        edge = palette.own_teeth[-2:].reshape(-1, 3).mean(axis=0)
        drawn = edge[None, None, :] * (shade / max(float(shade.max()), 1e-3))[..., None]
        teeth = own * (1.0 - beyond[..., None]) + drawn * beyond[..., None]
    return colour * (1.0 - inside[..., None]) + teeth * inside[..., None]


def _own_teeth(
    palette: MouthPalette, lay: _Layout, face_height: float
) -> tuple[np.ndarray, np.ndarray]:
    """The photo's own teeth, looked up by position across the mouth and depth below the lip,
    and per pixel how far (0..1) it lies below what the photo showed of them."""
    strip = palette.own_teeth
    assert strip is not None
    rows, cols = strip.shape[:2]
    # u is unsigned; recover the side from the column order of the bounding box.
    width = lay.u.shape[1]
    signed = np.where(np.arange(width) < np.argmin(lay.u[0]), -lay.u[0], lay.u[0])
    col = np.clip((signed + 1.0) / 2.0 * (cols - 1), 0, cols - 1)
    depth = lay.dist * (palette.own_teeth_scale / face_height)
    row = np.clip(depth, 0, rows - 1)
    map_x = np.broadcast_to(col[None, :], row.shape).astype(np.float32)
    beyond = np.clip((depth - (rows - 2)) / 2.0, 0.0, 1.0)
    return cv2.remap(strip, map_x, row.astype(np.float32), cv2.INTER_LINEAR), beyond


TONGUE_OVER_LIP_DISTANCE = 38.0
"""A pixel of the lower lip differs from the lip's own colour by this much (RGB distance)
where a tongue lies over it..."""
TONGUE_OVER_LIP_COVER = 0.6
"""...and a tongue is out when it covers this share of the lower lip's middle."""
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


@dataclass(frozen=True)
class LipOutline:
    """The inner and outer edges of both lips, each corner to corner, in photo pixels."""

    upper_inner: np.ndarray
    upper_outer: np.ndarray
    lower_inner: np.ndarray
    lower_outer: np.ndarray
    centre_x: float
    half_width: float


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


def _curve_at(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def _upper_lip_colour(rgb: np.ndarray, lips: LipOutline) -> np.ndarray:
    """Mean colour of the upper lip's middle, towards its outer edge (the inner edge of an
    open mouth's landmarks can sit on the teeth)."""
    inner, outer = lips.upper_inner[3:8], lips.upper_outer[3:8]
    samples = [inner + (outer - inner) * t for t in (0.65, 0.75, 0.85)]
    return _sample(rgb, np.concatenate(samples))


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
    image: np.ndarray, upper: np.ndarray, lower: np.ndarray, palette: MouthPalette
) -> None:
    """A soft dark line where closed lips meet, into `image` (RGB uint8, in place).

    A photo whose mouth the warp closed has no such line of its own (its lips never touched
    in the photo); without it the lips read as one pale band. Where the lips part, the
    interior is drawn over it.
    """
    line = _smooth_curve(0.5 * (upper + lower))
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
    patch += (shadow - patch) * alpha * CONTACT_OPACITY
    image[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


CORNER_DARK = 0.5
"""Inside the lips but outside their opening, a pixel darker than this share of the lips'
brightness is the mouth's cavity showing at a corner of an open mouth."""


def corners_filled(rgb: np.ndarray, lips: LipOutline) -> np.ndarray:
    """The photo with the dark cavity at the corners of an open mouth filled with lip.

    The face mesh's inner corners often sit short of where the opening ends; the closing warp
    covers the opening between them, and what lies beyond (dark, between the outer corners)
    would stay a black notch at each corner of the closed mouth and widen as the jaw opens.
    It is filled from the lip around it. Returns `rgb` itself when nothing is dark there.
    """
    outer = np.concatenate([lips.upper_outer, lips.lower_outer[::-1]])
    inner = np.concatenate([lips.upper_inner, lips.lower_inner[::-1]])
    x0, y0 = np.maximum(np.floor(outer.min(axis=0)).astype(int) - 3, 0)
    x1, y1 = np.ceil(outer.max(axis=0)).astype(int) + 4
    x1, y1 = min(x1, rgb.shape[1]), min(y1, rgb.shape[0])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return rgb
    shape = (y1 - y0, x1 - x0)
    band = np.zeros(shape, np.uint8)
    cv2.fillPoly(band, [np.round(outer - [x0, y0]).astype(np.int32)], 1)
    opening = np.zeros(shape, np.uint8)
    cv2.fillPoly(opening, [np.round(inner - [x0, y0]).astype(np.int32)], 1)
    opening = cv2.dilate(opening, np.ones((3, 3), np.uint8))
    roi = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    luma = roi.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lip_luma = float(np.median(luma[(band > 0) & (opening == 0)])) if band.any() else 0.0
    dark = (band > 0) & (opening == 0) & (luma < CORNER_DARK * lip_luma)
    if not dark.any():
        return rgb
    mask = cv2.dilate(dark.astype(np.uint8), np.ones((3, 3), np.uint8))
    out = rgb.copy()
    out[y0:y1, x0:x1] = cv2.inpaint(roi, mask, 3, cv2.INPAINT_TELEA)
    return out

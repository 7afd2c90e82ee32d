"""The inside of an open mouth: throat, upper and lower teeth, tongue and the lips' shadow.

Drawn only where the lips part, from smoothed curves through the inner lip points, and
blended at its edges so it reads as part of the photo, not a sticker: its colours come from
the lips and skin (a dark warm cavity, never flat black; teeth about as bright as the light
on the face allows), and it is softened and given grain to match the photo around the mouth.
Where the photo itself shows the upper teeth, they are taken from the photo.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import cv2
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])
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
TEETH_SPAN = 0.7
"""Teeth show across this share of the opening's half-width; beyond, the dental arch turns
away into the dark, well inside the lip corners."""
TOOTH_EDGES = (0.0, 0.22, 0.4, 0.55, 0.67, 0.77, 0.86, 0.94)
"""Where one tooth ends and the next begins, across the half-width from the middle: the
incisors are widest, the teeth further back look narrower in perspective."""
TOOTH_TONES = (1.0, 0.96, 0.93, 0.97, 0.9, 0.86, 0.84)
"""Each tooth's own brightness, from the middle out: no two teeth are alike."""
LOWER_TEETH_FROM = 0.09
"""Lower teeth show once the opening exceeds this fraction of the face height..."""
LOWER_TEETH_SHOW = 0.022
"""...and rise up to this fraction of the face height above the lower lip."""
LOWER_TEETH_SPAN = 0.55
"""Lower teeth are visible across this share of the opening's half-width (a narrower arch)."""
TONGUE_REST = 0.36
"""The tongue fills this share of the opening from below at rest..."""
TONGUE_RAISED = 0.75
"""...and this share when raised to the ridge behind the teeth (l, t, d, n)."""
TONGUE_LIGHT = 1.05
"""The tongue's top is about as light as the lips (it is wet and faces the light)."""
TONGUE_FROM = 0.03
"""The tongue shows once the opening exceeds this fraction of the face height."""
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
CAVITY_DEPTH = 0.35
"""The rim darkens into the back over this share of the opening's height."""
TEETH_LUMA = (0.55, 110.0)
"""Teeth brightness = a x the skin's luma + b: on a face in shadow the teeth are darker
too (a bright white strip on a dim face reads as a denture)..."""
TEETH_LUMA_RANGE = (120.0, 225.0)
"""...within these bounds."""
TEETH_TINT = np.array([1.08, 1.0, 0.82])
"""Ivory, not paper white."""
LIP_SHADOW = 0.68
"""The upper lip shades the upper half of the teeth down to this share of their light."""
CORNER_START = 0.78
"""From this share of the half-width out, the opening closes into the lip corners: the lips
fold in, so it takes their shaded colour rather than the cavity's."""
CORNER_FADE = 0.6
"""...and the painting fades by this share at the very corner, over the lips meeting there."""
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
SMILE_MIN = 0.08
"""A photo's mouth whose corners sit this far above the lips' middle (over its width) smiles."""
OPEN_GAP = 0.3
"""Lips parted by more than this share of the mouth's width are an open jaw (a word, a
yawn), not a smile..."""
DARK_LUMA = 0.45
"""...and so is an opening that shows mostly cavity: pixels darker than this share of the
skin's luma..."""
DARK_SHARE = 0.4
"""...over this share of its middle (a smile shows teeth there)."""
TEETH_BRIGHT = 0.8
"""A pixel at least this share of the skin's luma in the opening is a tooth..."""
TEETH_SHARE_MIN = 0.25
"""...and an opening wider than TOOTHLESS_GAP of the mouth's width with fewer teeth than this
share of its middle shows a tongue or the cavity: open, not a smile."""
TOOTHLESS_GAP = 0.12


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
    lips = _sample(rgb, lip_points)
    skin = _sample(rgb, cheek_points)
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
    up = _smooth_curve(upper)
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


def mouth_state(rgb: np.ndarray, lips: LipOutline, smile: float, skin: np.ndarray) -> str:
    """What the photo's open mouth is: "smile" (an expression: parted lips over teeth, the
    corners up) or "open" (a jaw caught mid-word, a yawn, a tongue: not an expression).

    `smile` is how far the corners sit above the lips' middle over the mouth's width.
    """
    up, lo = lips.upper_inner, lips.lower_inner
    gap = lo[:, 1] - up[:, 1]
    width = max(2.0 * lips.half_width, 1.0)
    if float(np.median(gap[3:-3])) > OPEN_GAP * width or smile < SMILE_MIN:
        return "open"
    # The middle of the opening: teeth in a smile, the dark cavity or a tongue in a word.
    t = np.linspace(0.1, 0.9, 9)[:, None, None]
    points = (up[3:8] + (lo[3:8] - up[3:8]) * t).reshape(-1, 2)
    h, w = rgb.shape[:2]
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    luma = rgb[ys, xs].astype(np.float64) @ LUMA
    skin_luma = float(skin @ LUMA)
    dark = float(np.mean(luma < DARK_LUMA * skin_luma))
    bright = float(np.mean(luma > TEETH_BRIGHT * skin_luma))
    # A wide opening that shows no teeth shows a tongue or the cavity.
    toothless = bright < TEETH_SHARE_MIN and float(np.median(gap[3:-3])) > TOOTHLESS_GAP * width
    return "open" if dark > DARK_SHARE or toothless else "smile"


PARTING_DROP = 0.75
"""The upper teeth end where the light falls below this share of their brightest row."""


def teeth_parting(rgb: np.ndarray, lips: LipOutline) -> np.ndarray:
    """Per inner-lip point, where between the lips (0 upper, 1 lower) the upper teeth end:
    the darkest line across the opening of a smile (between the rows of teeth, or the
    cavity under the upper teeth), so the upper teeth stay with the upper jaw."""
    up, lo = lips.upper_inner, lips.lower_inner
    t = np.linspace(0.0, 1.0, 21)
    h, w = rgb.shape[:2]
    shares = np.full(len(up), 0.6)
    blurred = cv2.GaussianBlur(rgb, (3, 3), 0).astype(np.float64) @ LUMA
    for i in range(2, len(up) - 2):
        pts = up[i] + (lo[i] - up[i]) * t[:, None]
        xs = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
        ys = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
        profile = blurred[ys, xs]
        # Down from the teeth's brightest row to where the light falls off (their biting
        # edge); teeth down to the lower lip part there.
        top = int(np.argmax(profile[: len(t) * 2 // 3]))
        below = np.flatnonzero(profile[top:] < PARTING_DROP * profile[top])
        shares[i] = t[top + int(below[0])] if len(below) else t[-1]
    # One smooth line: a single dark tooth gap must not pull one column away.
    middle = float(np.median(shares[2:-2]))
    return np.asarray(np.clip(0.5 * shares + 0.5 * middle, 0.35, 0.95), dtype=np.float64)


def _sample(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    return rgb[ys, xs].astype(np.float64).mean(axis=0)


def _smooth_curve(points: np.ndarray, iterations: int = 2) -> np.ndarray:
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


def _tooth_profile(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: the dark gap between neighbouring teeth (0..1), each tooth's roundness and
    its own tone (TOOTH_TONES).

    Roundness is 1 in a tooth's middle and 0 at its sides: the light falls on its bulge.
    """
    edges = np.asarray(TOOTH_EDGES, dtype=np.float32)
    idx = _clamp(np.searchsorted(edges, u, side="right") - 1, 0, len(edges) - 2)
    left, right = edges[idx], edges[idx + 1]
    t = _clamp((u - left) / (right - left), 0.0, 1.0)
    # The gap line sits on the tooth's edge; the middle line between the incisors (t=0 at
    # idx 0) is a gap too.
    edge = np.minimum(t, 1.0 - t) * (right - left)
    gap = np.exp(-((edge / 0.008) ** 2))
    return gap, np.sin(np.float32(np.pi) * t), np.asarray(TOOTH_TONES, dtype=np.float32)[idx]


@dataclass(frozen=True)
class _Layout:
    """Per-pixel coordinates of the opening's bounding box."""

    dist: np.ndarray  # pixels below the upper lip
    rise: np.ndarray  # pixels above the lower lip
    height: np.ndarray  # opening per column (1, w)
    u: np.ndarray  # |x - centre| / half-width, (1, w)


def draw_interior(
    image: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    palette: MouthPalette,
    face_height: float,
    tongue: float = 0.0,
    teeth: bool = True,
    lower_teeth: bool = True,
) -> None:
    """Paint the mouth interior between the inner lip curves into `image` (RGB uint8, in place).

    `upper` and `lower` are the inner lip points from one corner to the other, in `image`'s
    pixel coordinates, as they stand in this frame; `tongue` 0..1 raises the tongue's tip.
    `teeth` False leaves the upper teeth out (the photo's own frame the opening), and
    `lower_teeth` False the lower ones.
    """
    opening = lower[:, 1] - upper[:, 1]
    if float(opening.max()) < MIN_OPENING:
        return
    up = _smooth_curve(upper)
    lo = _smooth_curve(lower)
    h, w = image.shape[:2]
    margin = 2 + int(np.ceil(2.0 * palette.blur))
    x0 = max(int(np.floor(min(up[:, 0].min(), lo[:, 0].min()))) - margin, 0)
    x1 = min(int(np.ceil(max(up[:, 0].max(), lo[:, 0].max()))) + margin + 1, w)
    y0 = max(int(np.floor(up[:, 1].min())) - margin, 0)
    y1 = min(int(np.ceil(lo[:, 1].max())) + margin + 1, h)
    if x1 - x0 < 3 or y1 - y0 < 2:
        return
    poly = np.concatenate([up, lo[::-1]]) - np.array([x0, y0])
    scale = 1 << SUBPIXEL_BITS
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * scale).astype(np.int32)], 255, cv2.LINE_AA, SUBPIXEL_BITS)
    # The edge as soft as the photo's own edges (at least about a pixel).
    alpha = cv2.GaussianBlur(mask, (0, 0), max(0.7, 0.8 * palette.blur))
    alpha = alpha.astype(np.float32) / 255.0
    if float(alpha.max()) <= 0.0:
        return
    # float32 throughout: the interior is painted every frame (half the memory traffic).
    xs = np.arange(x0, x1, dtype=np.float32)
    top = np.interp(xs, up[:, 0], up[:, 1]).astype(np.float32)[None, :]
    bottom = np.interp(xs, lo[:, 0], lo[:, 1]).astype(np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    height = np.maximum(bottom - top, np.float32(1e-3))
    centre_x = 0.5 * (up[0, 0] + up[-1, 0])
    half_w = max(0.5 * abs(up[-1, 0] - up[0, 0]), 1.0)
    lay = _Layout(
        dist=ys - top,
        rise=bottom - ys,
        height=height,
        u=(np.abs(xs - np.float32(centre_x)) / np.float32(half_w))[None, :],
    )
    widest = float(height.max())
    colour = _throat(palette, lay)
    colour = _tongue(colour, palette, lay, widest, face_height, tongue)
    if lower_teeth:
        colour = _lower_teeth(colour, palette, lay, widest, face_height)
    if teeth:
        colour = _upper_teeth(colour, palette, lay, face_height)
    colour = _lips_shadow(colour, palette, lay)
    colour = _finish(colour, palette, x0, y0)
    # Right at the corners the warped lips themselves show through: they meet there.
    corner = _smoothstep((lay.u - CORNER_START) / (1.0 - CORNER_START))
    alpha = (alpha * (1.0 - CORNER_FADE * corner)).astype(np.float32)
    patch = image[y0:y1, x0:x1].astype(np.float32)
    # One weighted sum per pixel for all three channels (cv2 takes the (h, w) weights).
    blended = cv2.blendLinear(patch, colour, 1.0 - alpha, alpha)
    image[y0:y1, x0:x1] = _clamp(blended + 0.5, 0.0, 255.0).astype(np.uint8)


def _throat(palette: MouthPalette, lay: _Layout) -> np.ndarray:
    """The cavity: the lips' wet inner surface at the rim, darkening into the back of the
    mouth, which the light from the front reaches more in the middle than at the sides.

    Colours here and below are planes (3, h, w): numpy multiplies a plane by a (h, w) weight
    several times faster than it broadcasts (h, w, 1) over three interleaved channels.
    """
    rim = np.maximum(np.minimum(lay.dist, lay.rise), 0.0)
    depth = _clamp(rim / np.maximum(CAVITY_DEPTH * lay.height, 1.0), 0.0, 1.0)
    # depth ** 0.8 within 0.02, without a power per pixel.
    depth = np.sqrt(depth) * (0.6 + 0.4 * depth)
    front = 1.0 - 0.4 * _clamp(lay.u, 0.0, 1.0) ** 2
    edge = _planes(palette.lip_colour * CAVITY_EDGE) * front
    deep = _planes(palette.cavity) * front
    return np.asarray(edge + (deep - edge) * depth)


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
    spread = 0.72 - 0.2 * float(np.clip(raised, 0.0, 1.0))
    # A dome at rest, a rounded tip when raised.
    power = 2.2 - 0.6 * float(np.clip(raised, 0.0, 1.0))
    arch = np.sqrt(_clamp(1.0 - (lay.u / spread) ** power, 0.0, 1.0))
    surface = lay.height * share * arch  # pixels above the lower lip
    # Its top edge is soft: it curves away from view rather than ending in a line.
    soft = 1.5 + 0.2 * surface
    # Only the rows it reaches up to are painted.
    r0 = _first_row(lay.rise[0] - surface - soft, lay.rise.shape[0])
    out, colour, lay = colour, colour[:, r0:], _rows(lay, r0, None)
    above = surface - lay.rise
    inside = _clamp(above / soft, 0.0, 1.0) * max(show, raised)
    # Lit on its top, in the lower lip's and the cheeks' shadow below and at the sides.
    below = _clamp(above / np.maximum(surface, 1e-3), 0.0, 1.0)
    # A soft ridge of light a little below its top: exp(-4 z^2) as a cheap bump.
    z = above / np.maximum(0.25 * surface, 1.0) - 0.35
    ridge = np.maximum(1.0 - 2.0 * z * z, 0.0) ** 2
    sides = (1.0 - 0.45 * _clamp(lay.u, 0.0, 1.0) ** 2) * (
        1.0 - 0.1 * np.exp(-((lay.u / 0.06) ** 2))
    )
    shade = (0.8 + 0.2 * ridge - 0.35 * below) * sides
    out[:, r0:] = _mix(colour, _planes(palette.tongue) * shade, inside)
    return out


def _lower_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: _Layout, widest: float, face_height: float
) -> np.ndarray:
    """Lower incisors' edges above the lower lip once the mouth is wide open, in shadow."""
    show = float(np.clip((widest - LOWER_TEETH_FROM * face_height) / (0.04 * face_height), 0, 1))
    if show <= 0.0:
        return colour
    span = LOWER_TEETH_SPAN
    gap, round_, tone = _tooth_profile(lay.u / span * 0.8)
    # Each lower incisor's edge is a little rounded, and they are shorter towards the sides.
    teeth_h = LOWER_TEETH_SHOW * face_height * show * (1.0 - 0.45 * (lay.u / span) ** 2)
    teeth_h = teeth_h * (0.94 + 0.06 * round_)
    r0 = _first_row(lay.rise[0] - teeth_h - 1.0, lay.rise.shape[0])
    out, colour, lay = colour, colour[:, r0:], _rows(lay, r0, None)
    inside = _clamp((teeth_h - lay.rise) / 0.8, 0.0, 1.0)
    inside = inside * _clamp((span - lay.u) / 0.15, 0.0, 1.0)
    # In the upper lip's and the tongue's shadow: darker than the upper teeth, lit at the edge.
    edge = _clamp(1.0 - (teeth_h - lay.rise) / np.maximum(teeth_h, 1e-3), 0.0, 1.0)
    shade = (0.72 + 0.1 * round_ + 0.12 * edge) * ((1.0 - 0.3 * gap) * (1.0 - 0.4 * lay.u) * tone)
    out[:, r0:] = _mix(colour, _planes(palette.teeth) * shade, inside)
    return out


def _upper_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: _Layout, face_height: float
) -> np.ndarray:
    """Upper teeth hanging from under the upper lip, each shaded on its own, in the lip's
    shadow at the top, turning away into the dark along the dental arch."""
    wide = _clamp(lay.height / (TEETH_WIDE_AT * face_height), 0.0, 1.0)
    show = TEETH_SHOW + (TEETH_SHOW_WIDE - TEETH_SHOW) * wide
    reach = np.minimum(show * face_height, TEETH_SHARE * lay.height)
    # The incisors are longest, the teeth behind them shorter (the arch curves up and away);
    # the biting edge is nearly straight, only a little rounded at each tooth's corners.
    gap, round_, tone = _tooth_profile(lay.u)
    arch = _clamp(lay.u / TEETH_SPAN, 0.0, 1.0)
    teeth_h = reach * (1.0 - 0.35 * arch**2) * (0.95 + 0.05 * np.sqrt(np.maximum(round_, 0.0)))
    # Only the rows they hang down to; per column (1, w) first, per pixel what varies down.
    r1 = _first_row(-(teeth_h + 1.0 - lay.dist[0]), lay.dist.shape[0], last=True)
    out, colour, lay = colour, colour[:, :r1], _rows(lay, 0, r1)
    across = _clamp((TEETH_SPAN - lay.u) / 0.15, 0.0, 1.0) * _clamp(
        (lay.height - 1.0) / 2.0, 0.0, 1.0
    )
    inside = _clamp((teeth_h - lay.dist) / 0.9, 0.0, 1.0) * across
    lit = _clamp(lay.dist / np.maximum(teeth_h, 1e-3), 0.0, 1.0)
    # The upper lip's shadow over their upper half, the light from the front below it.
    shade = LIP_SHADOW + (1.0 - LIP_SHADOW) * _smoothstep(lit / 0.6)
    shade = shade * ((0.88 + 0.12 * round_) * tone * (1.0 - 0.4 * arch**1.5))
    # The gaps between teeth are darkest up at the gum and fade towards the biting edge, and
    # the edge itself is a little translucent (greyer).
    shade = shade * (1.0 - (0.3 - 0.2 * lit) * gap) * (1.0 - 0.8 * np.maximum(lit - 0.85, 0.0))
    if palette.own_teeth is None:
        out[:, :r1] = _mix(colour, _planes(palette.teeth) * shade, inside)
        return out
    own, beyond = _own_teeth(palette, lay, face_height)
    own = own * (1.0 - 0.25 * (1.0 - lit))
    # Below what the photo showed, drawn teeth of the own teeth's colour continue them.
    edge = palette.own_teeth[-2:].reshape(-1, 3).mean(axis=0)
    drawn = _planes(edge) * (shade / max(float(shade.max(initial=0.0)), 1e-3))
    out[:, :r1] = _mix(colour, own + (drawn - own) * beyond, inside)
    return out


def _lips_shadow(colour: np.ndarray, palette: MouthPalette, lay: _Layout) -> np.ndarray:
    """The upper lip's shadow right under it, and the corners, where the lips fold in and
    meet (a commissure, not a dark wedge)."""
    shadow = 1.0 - 0.35 * np.exp(-np.maximum(lay.dist, 0.0) / (1.2 + 0.05 * lay.height))
    corner = _smoothstep((lay.u - CORNER_START) / (1.0 - CORNER_START))
    crease = _planes(palette.lip_colour * 0.6 * 0.75) * corner
    return np.asarray(colour * (shadow * (1.0 - 0.75 * corner)) + crease)


def _finish(colour: np.ndarray, palette: MouthPalette, x0: int, y0: int) -> np.ndarray:
    """The interior (planes) as soft and as grainy as the photo around it, interleaved
    (h, w, 3)."""
    planes = [np.ascontiguousarray(c, dtype=np.float32) for c in colour]
    if palette.blur > 0.75:
        planes = [cv2.GaussianBlur(c, (0, 0), palette.blur) for c in planes]
    if palette.grain is not None:
        h, w = planes[0].shape
        tile = palette.grain
        rows = (np.arange(y0, y0 + h) % GRAIN_TILE)[:, None]
        cols = (np.arange(x0, x0 + w) % GRAIN_TILE)[None, :]
        grain = tile[rows, cols]
        planes = [c + grain for c in planes]
    return np.asarray(cv2.merge(planes))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = _clamp(x, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t))


def _rows(lay: _Layout, r0: int, r1: int | None) -> _Layout:
    """The layout of rows r0:r1 of the opening's box."""
    return dataclasses.replace(lay, dist=lay.dist[r0:r1], rise=lay.rise[r0:r1])


def _first_row(offset: np.ndarray, rows: int, last: bool = False) -> int:
    """The first row (of `rows`) that any column reaches, where column c reaches rows
    r > offset[c]; with `last`, one past the last row any reaches, rows r < -offset[c]."""
    if last:
        return int(np.clip(np.ceil(-float(offset.min())) + 1, 0, rows))
    return int(np.clip(np.floor(float(offset.min())), 0, rows))


def _clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """np.clip without its dispatch (which costs more than the clipping on small arrays)."""
    return np.minimum(np.maximum(x, lo), hi)


def _planes(colour: np.ndarray) -> np.ndarray:
    """An RGB colour as (3, 1, 1), to multiply (h, w) weights into colour planes."""
    return np.asarray(colour, dtype=np.float32)[:, None, None]


def _mix(colour: np.ndarray, paint: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """`paint` over `colour` (both planes) by `amount` (h, w) per pixel."""
    return np.asarray(colour + (paint - colour) * amount)


def _own_teeth(
    palette: MouthPalette, lay: _Layout, face_height: float
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
    row = _clamp(depth, 0, rows - 1)
    map_x = np.broadcast_to(col[None, :], row.shape).astype(np.float32)
    beyond = _clamp((depth - (rows - 2)) / 2.0, 0.0, 1.0)
    own = cv2.remap(strip, map_x, row.astype(np.float32), cv2.INTER_LINEAR)
    return np.stack(cv2.split(own)), beyond


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

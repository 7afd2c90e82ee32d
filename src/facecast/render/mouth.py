"""The inside of an open mouth: throat, upper and lower teeth, tongue and the lips' shadow.

Drawn only where the lips part, from smoothed curves through the inner lip points, and
blended at its edges so it reads as part of the photo, not a sticker: its colours come from
the lips and skin (a dark warm cavity, never flat black; teeth about as bright as the light
on the face allows), and it is softened and given grain to match the photo around the mouth.
Where the photo itself shows the upper teeth, they are taken from the photo.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from facecast.render.mouth_palette import (
    CAVITY_EDGE,
    GRAIN_TILE,
    LUMA,
    TEETH_SHOW,
    Layout,
    MouthPalette,
    clamp,
    own_teeth,
    smooth_curve,
)

MIN_OPENING = 0.6
"""Openings thinner than this (pixels) draw nothing: the lips still touch."""


SUBPIXEL_BITS = 4


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


TONGUE_FROM = 0.03
"""The tongue shows once the opening exceeds this fraction of the face height."""


CAVITY_DEPTH = 0.35
"""The rim darkens into the back over this share of the opening's height."""


LIP_SHADOW = 0.68
"""The upper lip shades the upper half of the teeth down to this share of their light."""


CORNER_START = 0.78
"""From this share of the half-width out, the opening closes into the lip corners: the lips
fold in, so it takes their shaded colour rather than the cavity's."""


CORNER_FADE = 0.6
"""...and the painting fades by this share at the very corner, over the lips meeting there."""


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


def _tooth_profile(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: the dark gap between neighbouring teeth (0..1), each tooth's roundness and
    its own tone (TOOTH_TONES).

    Roundness is 1 in a tooth's middle and 0 at its sides: the light falls on its bulge.
    """
    edges = np.asarray(TOOTH_EDGES, dtype=np.float32)
    idx = clamp(np.searchsorted(edges, u, side="right") - 1, 0, len(edges) - 2)
    left, right = edges[idx], edges[idx + 1]
    t = clamp((u - left) / (right - left), 0.0, 1.0)
    # The gap line sits on the tooth's edge; the middle line between the incisors (t=0 at
    # idx 0) is a gap too.
    edge = np.minimum(t, 1.0 - t) * (right - left)
    gap = np.exp(-((edge / 0.008) ** 2))
    return gap, np.sin(np.float32(np.pi) * t), np.asarray(TOOTH_TONES, dtype=np.float32)[idx]


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
    up = smooth_curve(upper)
    lo = smooth_curve(lower)
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
    lay = Layout(
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
    image[y0:y1, x0:x1] = clamp(blended + 0.5, 0.0, 255.0).astype(np.uint8)


def _throat(palette: MouthPalette, lay: Layout) -> np.ndarray:
    """The cavity: the lips' wet inner surface at the rim, darkening into the back of the
    mouth, which the light from the front reaches more in the middle than at the sides.

    Colours here and below are planes (3, h, w): numpy multiplies a plane by a (h, w) weight
    several times faster than it broadcasts (h, w, 1) over three interleaved channels.
    """
    rim = np.maximum(np.minimum(lay.dist, lay.rise), 0.0)
    depth = clamp(rim / np.maximum(CAVITY_DEPTH * lay.height, 1.0), 0.0, 1.0)
    # depth ** 0.8 within 0.02, without a power per pixel.
    depth = np.sqrt(depth) * (0.6 + 0.4 * depth)
    front = 1.0 - 0.4 * clamp(lay.u, 0.0, 1.0) ** 2
    edge = _planes(palette.lip_colour * CAVITY_EDGE) * front
    deep = _planes(palette.cavity) * front
    return np.asarray(edge + (deep - edge) * depth)


def _tongue(
    colour: np.ndarray,
    palette: MouthPalette,
    lay: Layout,
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
    arch = np.sqrt(clamp(1.0 - (lay.u / spread) ** power, 0.0, 1.0))
    surface = lay.height * share * arch  # pixels above the lower lip
    # Its top edge is soft: it curves away from view rather than ending in a line.
    soft = 1.5 + 0.2 * surface
    # Only the rows it reaches up to are painted.
    r0 = _first_row(lay.rise[0] - surface - soft, lay.rise.shape[0])
    out, colour, lay = colour, colour[:, r0:], _rows(lay, r0, None)
    above = surface - lay.rise
    inside = clamp(above / soft, 0.0, 1.0) * max(show, raised)
    # Lit on its top, in the lower lip's and the cheeks' shadow below and at the sides.
    below = clamp(above / np.maximum(surface, 1e-3), 0.0, 1.0)
    # A soft ridge of light a little below its top: exp(-4 z^2) as a cheap bump.
    z = above / np.maximum(0.25 * surface, 1.0) - 0.35
    ridge = np.maximum(1.0 - 2.0 * z * z, 0.0) ** 2
    sides = (1.0 - 0.45 * clamp(lay.u, 0.0, 1.0) ** 2) * (
        1.0 - 0.1 * np.exp(-((lay.u / 0.06) ** 2))
    )
    shade = (0.8 + 0.2 * ridge - 0.35 * below) * sides
    out[:, r0:] = _mix(colour, _planes(palette.tongue) * shade, inside)
    return out


def _lower_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: Layout, widest: float, face_height: float
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
    inside = clamp((teeth_h - lay.rise) / 0.8, 0.0, 1.0)
    inside = inside * clamp((span - lay.u) / 0.15, 0.0, 1.0)
    # In the upper lip's and the tongue's shadow: darker than the upper teeth, lit at the edge.
    edge = clamp(1.0 - (teeth_h - lay.rise) / np.maximum(teeth_h, 1e-3), 0.0, 1.0)
    shade = (0.72 + 0.1 * round_ + 0.12 * edge) * ((1.0 - 0.3 * gap) * (1.0 - 0.4 * lay.u) * tone)
    out[:, r0:] = _mix(colour, _planes(palette.teeth) * shade, inside)
    return out


def _upper_teeth(
    colour: np.ndarray, palette: MouthPalette, lay: Layout, face_height: float
) -> np.ndarray:
    """Upper teeth hanging from under the upper lip, each shaded on its own, in the lip's
    shadow at the top, turning away into the dark along the dental arch."""
    wide = clamp(lay.height / (TEETH_WIDE_AT * face_height), 0.0, 1.0)
    show = TEETH_SHOW + (TEETH_SHOW_WIDE - TEETH_SHOW) * wide
    reach = np.minimum(show * face_height, TEETH_SHARE * lay.height)
    # The incisors are longest, the teeth behind them shorter (the arch curves up and away);
    # the biting edge is nearly straight, only a little rounded at each tooth's corners.
    gap, round_, tone = _tooth_profile(lay.u)
    arch = clamp(lay.u / TEETH_SPAN, 0.0, 1.0)
    teeth_h = reach * (1.0 - 0.35 * arch**2) * (0.95 + 0.05 * np.sqrt(np.maximum(round_, 0.0)))
    # Only the rows they hang down to; per column (1, w) first, per pixel what varies down.
    r1 = _first_row(-(teeth_h + 1.0 - lay.dist[0]), lay.dist.shape[0], last=True)
    out, colour, lay = colour, colour[:, :r1], _rows(lay, 0, r1)
    across = clamp((TEETH_SPAN - lay.u) / 0.15, 0.0, 1.0) * clamp(
        (lay.height - 1.0) / 2.0, 0.0, 1.0
    )
    inside = clamp((teeth_h - lay.dist) / 0.9, 0.0, 1.0) * across
    lit = clamp(lay.dist / np.maximum(teeth_h, 1e-3), 0.0, 1.0)
    # The upper lip's shadow over their upper half, the light from the front below it.
    shade = LIP_SHADOW + (1.0 - LIP_SHADOW) * _smoothstep(lit / 0.6)
    shade = shade * ((0.88 + 0.12 * round_) * tone * (1.0 - 0.4 * arch**1.5))
    # The gaps between teeth are darkest up at the gum and fade towards the biting edge, and
    # the edge itself is a little translucent (greyer).
    shade = shade * (1.0 - (0.3 - 0.2 * lit) * gap) * (1.0 - 0.8 * np.maximum(lit - 0.85, 0.0))
    if palette.own_teeth is None:
        out[:, :r1] = _mix(colour, _planes(palette.teeth) * shade, inside)
        return out
    own, beyond = own_teeth(palette, lay, face_height)
    own = own * (1.0 - 0.25 * (1.0 - lit))
    # Below what the photo showed, drawn teeth of the own teeth's colour continue them.
    edge = palette.own_teeth[-2:].reshape(-1, 3).mean(axis=0)
    drawn = _planes(edge) * (shade / max(float(shade.max(initial=0.0)), 1e-3))
    out[:, :r1] = _mix(colour, own + (drawn - own) * beyond, inside)
    return out


def _lips_shadow(colour: np.ndarray, palette: MouthPalette, lay: Layout) -> np.ndarray:
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
    t = clamp(x, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t))


def _rows(lay: Layout, r0: int, r1: int | None) -> Layout:
    """The layout of rows r0:r1 of the opening's box."""
    return dataclasses.replace(lay, dist=lay.dist[r0:r1], rise=lay.rise[r0:r1])


def _first_row(offset: np.ndarray, rows: int, last: bool = False) -> int:
    """The first row (of `rows`) that any column reaches, where column c reaches rows
    r > offset[c]; with `last`, one past the last row any reaches, rows r < -offset[c]."""
    if last:
        return int(np.clip(np.ceil(-float(offset.min())) + 1, 0, rows))
    return int(np.clip(np.floor(float(offset.min())), 0, rows))


def _planes(colour: np.ndarray) -> np.ndarray:
    """An RGB colour as (3, 1, 1), to multiply (h, w) weights into colour planes."""
    return np.asarray(colour, dtype=np.float32)[:, None, None]


def _mix(colour: np.ndarray, paint: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """`paint` over `colour` (both planes) by `amount` (h, w) per pixel."""
    return np.asarray(colour + (paint - colour) * amount)


@dataclass(frozen=True)
class LipOutline:
    """The inner and outer edges of both lips, each corner to corner, in photo pixels."""

    upper_inner: np.ndarray
    upper_outer: np.ndarray
    lower_inner: np.ndarray
    lower_outer: np.ndarray
    centre_x: float
    half_width: float

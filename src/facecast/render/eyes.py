"""Blinks for the warp renderer: the lid warp and the closed lid painted over it.

A blink is drawn in two layers. A backward field (`blink_field`) carries the upper lid's
edge down to the closure line and the lower lid a little up, squeezing the eyeball out of
sight. Over it, `LidPainter` lays the closing lid itself: the stretched lashes and crease
lifted to the lid's own skin colour (the lighter skin texture partly kept), a darker rim
where the lid curls under, and a lash line along the moving edge. Everything is sized by
the eye's width as well as its opening, so narrow and smiling eyes shut as fully as wide
ones, and the band of skin that moves is kept short, so glasses' frames stay put.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.face import FaceLandmarks

LID_MEET = 0.85
"""Closed lids meet this share of the way down the open eye (the upper lid travels most)."""
LID_MARGIN = 0.2
"""Below a closed eye the lower lid is sampled this share of the opening under its landmarks."""
UPPER_MARGIN = 0.08
"""Above a closed eye the upper lid is sampled this share of the opening over its landmarks."""
LID_BAND = 0.1
"""Skin above the upper lid that moves with it, as a share of the eye's width..."""
LID_BAND_OPENING = 0.35
"""...plus this share of the eye's opening."""
LOWER_BAND = 0.6
"""Skin below the lower lid that shifts up with it, as a share of the opening."""
CORNER_EASE = 0.3
"""How much the closure eases off towards the corners (0: the lids meet right into them)."""
LASH_SKIP = 0.1
"""The lashes reach this share of the eye's width above the upper lid; past them, a dark
row (a glasses frame, the brow) ends the band that moves with the lid..."""
DARK_SHARE = 0.3
"""...dark meaning below this share of the band's bright skin."""
SMOOTH_SHARE = 0.08
"""Lid curves are smoothed along the eye over this share of its width."""
PAINT_FROM = 0.15
"""Blink amount at which the painted lid starts to show..."""
PAINT_FULL = 0.6
"""...and where it is fully opaque."""
RIM_SHADE = 0.22
"""How much darker the lid is at its rim (where it curls under) than at its top."""
RIM_REACH = 0.09
"""Width of that darker rim, as a share of the eye's width."""
LASH_BAND = 0.15
"""The photo's lashes and lid margin reach this share of the eye's width above the lid line;
the paint covers them, stretched as the warp stretches them..."""
COVER_FADE = 1.5
"""...and fades into the lid's warped skin over this many times that height."""
LID_MIN_LIGHT = 0.7
"""A lid is at least this light, relative to the skin under the eye (it is skin, if shaded)..."""
UNDER_EYE = (0.15, 0.35)
"""...which is sampled this far under the lower lid, in shares of the eye's width."""
TONE_FROM = 40.0
TONE_TO = 90.0
"""The lid's colour is the mean of the skin over the lid between these luma percentiles."""
LIFT_RANGE = 20.0
"""Pixels this many levels darker than the lid's skin are replaced by it entirely."""
FLATTEN = 0.6
"""Share of the lighter skin texture that the lid's colour replaces too (a lid is smooth)."""
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
LASH_OPACITY = 1.0
"""Opacity of the lash line on a shut eye."""
LASH_SIGMA = 0.04
"""Half-thickness of the lash line, as a share of the eye's width (at least LASH_MIN_PX)."""
LASH_MIN_PX = 0.7
LASH_DROP = 0.05
"""The lashes' soft shadow below the line reaches this share of the eye's width."""


@dataclass(frozen=True)
class Lids:
    """One eye's lids sampled at every pixel column it spans (image coordinates)."""

    xs: np.ndarray
    """Pixel columns from corner to corner."""
    upper: np.ndarray
    lower: np.ndarray
    closed: np.ndarray
    """Where the lids meet when the eye is shut."""
    top: np.ndarray
    """Top of the skin that moves down with the upper lid."""
    width: float

    @property
    def opening(self) -> np.ndarray:
        """How far the upper lid travels to shut the eye, per column."""
        return self.closed - self.upper

    def edge(self, amount: float) -> np.ndarray:
        """Where the upper lid's edge sits at blink `amount` (0 open .. 1 shut), per column."""
        return self.upper + amount * (self.closed - self.upper)


def lid_geometry(
    lm: FaceLandmarks,
    upper_ids: tuple[int, ...],
    lower_ids: tuple[int, ...],
    rgb: np.ndarray | None = None,
) -> Lids | None:
    """The lids of one eye, or None when the eye is too small to animate.

    With the photo (`rgb`), the band of skin that moves with the upper lid stops short of
    anything dark above the lashes: a glasses frame or the brow stays where it is.
    """
    up = lm.xy[list(upper_ids)].astype(np.float64)
    lo = lm.xy[list(lower_ids)].astype(np.float64)
    x_left = float(min(up[:, 0].min(), lo[:, 0].min()))
    x_right = float(max(up[:, 0].max(), lo[:, 0].max()))
    width = x_right - x_left
    if width < 4.0:
        return None
    xs = np.arange(np.ceil(x_left), np.floor(x_right) + 1.0)
    sigma = max(SMOOTH_SHARE * width, 0.5)
    yu = _lid_curve(up, xs, sigma)
    yl = _lid_curve(lo, xs, sigma)
    # The lids meet smoothly at the corners rather than ending in a vertical cut.
    along = np.clip((xs - x_left) / width, 0.0, 1.0)
    window = np.sin(np.pi * along) ** 0.5
    opening = np.maximum(yl - yu, 0.0) * window**CORNER_EASE
    if float(opening.max()) < 1.0:
        return None
    band = np.full(len(xs), LID_BAND * width + LID_BAND_OPENING * float(opening.max()) + 1.0)
    if rgb is not None:
        band = np.minimum(band, _clear_above(rgb, xs, yu, width))
    # A shut eye's lash line is one smooth arc, whatever bumps the lower lid has.
    meet = yu + LID_MEET * opening
    arc = np.polyval(np.polyfit(xs - xs.mean(), meet, 2, w=window + 1e-3), xs - xs.mean())
    closed = np.clip(arc, yu, np.maximum(yu, yl - 0.5))
    return Lids(
        xs=xs,
        upper=yu,
        lower=yl,
        closed=closed,
        top=yu - band * window,
        width=width,
    )


def _clear_above(rgb: np.ndarray, xs: np.ndarray, yu: np.ndarray, width: float) -> np.ndarray:
    """Per column, how far above the upper lid the skin is clear of dark things (frames,
    brows) once past the lashes, in pixels."""
    h, w = rgb.shape[:2]
    reach = int(np.ceil(LID_BAND * width + LID_BAND_OPENING * width)) + 2
    skip = LASH_SKIP * width
    rows = np.round(yu[None, :] - skip - np.arange(reach)[:, None]).astype(int)
    cols = np.clip(xs.astype(int), 0, w - 1)
    luma = rgb[np.clip(rows, 0, h - 1), cols[None, :]].astype(np.float32) @ LUMA
    dark = (luma < DARK_SHARE * float(np.percentile(luma, 75))) | (rows < 0)
    first = np.where(dark.any(axis=0), dark.argmax(axis=0), reach).astype(np.float64)
    # The first dark row itself stays put, and so does one more: a margin for the resampling.
    clear = skip + np.maximum(first - 2.0, 0.0)
    # Neighbouring columns agree (a rim crossing the band must not make it jagged)...
    radius = max(int(0.1 * width), 1)
    padded = np.pad(clear, radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    lowest = windows.min(axis=1)
    # ...and the band's top has no steps, which the warp would show as vertical seams. Each
    # column's mean over +-radius of the minima over +-radius stays below its own clearance.
    kernel = np.full(2 * radius + 1, 1.0 / (2 * radius + 1))
    smooth = np.convolve(np.pad(lowest, radius, mode="edge"), kernel, mode="valid")
    return np.asarray(smooth, dtype=np.float64)


def _lid_curve(points: np.ndarray, xs: np.ndarray, sigma: float) -> np.ndarray:
    """A smooth lid line through the landmarks at columns `xs`: no polynomial wiggles."""
    order = np.argsort(points[:, 0])
    line = np.interp(xs, points[order, 0], points[order, 1])
    radius = int(np.ceil(2.5 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(line, radius, mode="edge")
    return np.asarray(np.convolve(padded, kernel / kernel.sum(), mode="valid"))


class LidWarp:
    """Per frame, the BACKWARD offsets (rows only) that move one eye's lids, over a small box.

    The map is exact for every blink amount, not a blend of the open and the shut eye: the
    upper lid's edge comes down to `Lids.edge(amount)` with the band of skin above it
    stretched after it, the eyeball below the edge stays where it is (the lid slides over
    it instead of squeezing it), and the lower lid rises the last part of the way.
    """

    def __init__(self, lids: Lids, region_x0: int, region_y0: int, w: int, h: int) -> None:
        cols = lids.xs.astype(int) - region_x0
        keep = (cols >= 0) & (cols < w)
        opening = lids.opening / LID_MEET
        self._top = lids.top[keep]
        self._upper = lids.upper[keep]
        self._closed = lids.closed[keep]
        self._lower = lids.lower[keep]
        self._up_margin = ((UPPER_MARGIN * opening + 0.7) * (lids.upper > lids.top + 1.0))[keep]
        self._lo_margin = (LID_MARGIN * opening + 0.7)[keep]
        self._bottom = (lids.lower + LOWER_BAND * opening + 1.5)[keep]
        self._lids = lids
        self._keep = keep
        if keep.any():
            r0 = max(int(np.floor(self._top.min())) - region_y0, 0)
            r1 = min(int(np.ceil(self._bottom.max())) + 1 - region_y0, h)
            c0, c1 = int(cols[keep].min()), int(cols[keep].max()) + 1
        else:
            r0 = r1 = c0 = c1 = 0
        self.box = (slice(r0, max(r1, r0)), slice(c0, c1))
        self._ys = (region_y0 + np.arange(r0, max(r1, r0), dtype=np.float64))[:, None]
        self._cols = cols[keep] - c0
        self._width = c1 - c0

    def offsets(self, amount: float) -> np.ndarray:
        """Row offsets over `box`, shape (rows, cols), for blink `amount` in 0..1."""
        out = np.zeros((len(self._ys), self._width), np.float32)
        if not len(self._cols):
            return out
        t = min(max(amount, 0.0), 1.0)
        ys, top, bottom = self._ys, self._top, self._bottom
        edge = self._lids.edge(t)[self._keep]
        # The lower lid waits, then rises to meet the upper one.
        lower = self._lower - t * t * (self._lower - self._closed)
        lid_up = self._upper - t * self._up_margin
        lid_lo = self._lower + t * self._lo_margin
        src_above = top + (ys - top) * (lid_up - top) / np.maximum(edge - top, 1e-3)
        src_below = lid_lo + (ys - lower) * (bottom - lid_lo) / np.maximum(bottom - lower, 1e-3)
        src = np.where(ys < edge, src_above, np.where(ys < lower, ys, src_below))
        inside = (ys >= top) & (ys <= bottom)
        out[:, self._cols] = np.where(inside, src - ys, 0.0)
        return out


def _lid_colour(rgb: np.ndarray, lids: Lids) -> np.ndarray:
    """The lid skin's colour per column (n, 3): mid-tone skin just above the upper lid.

    Lashes, the crease's shadow, glasses' frames and highlights are left out by luma. Where
    a low brow's hair leaves nothing but dark above the lid, the colour turns to the skin
    under the eye, shaded: a shut lid is skin, never a dark hole. Under a deep shadow or
    dark lenses that skin is dark too, and so the lid stays.
    """
    h, w = rgb.shape[:2]
    cols = np.clip(lids.xs.astype(int), 0, w - 1)
    reach = max(lids.width * 0.35, 3.0)
    offsets = np.linspace(1.5, reach, 8)
    rows = np.clip(np.round(lids.upper[None, :] - offsets[:, None]).astype(int), 0, h - 1)
    samples = rgb[rows, cols[None, :]].astype(np.float32)  # (8, n, 3)
    below = np.linspace(UNDER_EYE[0], UNDER_EYE[1], 5) * lids.width
    under_rows = np.clip(np.round(lids.lower[None, :] + below[:, None]).astype(int), 0, h - 1)
    under = rgb[under_rows, cols[None, :]].reshape(-1, 3).astype(np.float32)
    skin = np.median(under, axis=0)
    luma = samples @ LUMA
    lo, hi = np.percentile(luma, [TONE_FROM, TONE_TO])
    ok = (luma >= lo) & (luma <= hi)
    fallback = samples[ok].mean(axis=0) if ok.any() else samples.reshape(-1, 3).mean(axis=0)
    counts = ok.sum(axis=0)[:, None]
    per_col = np.where(
        counts > 0, (samples * ok[..., None]).sum(axis=0) / np.maximum(counts, 1), fallback
    )
    sigma = max(lids.width * 0.15, 1.0)
    smooth = cv2.GaussianBlur(per_col[None].astype(np.float32), (0, 0), sigma)[0]
    floor = LID_MIN_LIGHT * float(skin @ LUMA)
    darker = np.clip((floor - smooth @ LUMA) / (0.3 * max(floor, 1.0)), 0.0, 1.0)[:, None]
    shaded = skin.astype(np.float32) * LID_MIN_LIGHT
    return np.asarray(smooth + (shaded - smooth) * darker, dtype=np.float32)


class LidPainter:
    """Paints one eye's closing lid and lash line onto rendered frames."""

    def __init__(self, rgb: np.ndarray, lids: Lids, lash_colour: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        pad = int(np.ceil(LASH_DROP * lids.width + 3 * LASH_MIN_PX)) + 2
        self._x0 = max(int(lids.xs[0]), 0)
        self._x1 = min(int(lids.xs[-1]) + 1, w)
        self._y0 = max(int(np.floor(lids.top.min())) - 1, 0)
        self._y1 = min(int(np.ceil(lids.closed.max())) + pad, h)
        keep = (lids.xs >= self._x0) & (lids.xs < self._x1)
        self._lids = lids
        self._keep = keep
        self._ys = np.arange(self._y0, self._y1, dtype=np.float32)[:, None]
        self._colour = _lid_colour(rgb, lids)[keep]
        self._lash = lash_colour.astype(np.float32)
        self._lash_sigma = max(LASH_SIGMA * lids.width, LASH_MIN_PX)
        self._drop = max(LASH_DROP * lids.width, 1.0)
        self._rim = max(RIM_REACH * lids.width, 1.0)
        self._luma = self._colour @ LUMA
        along = np.clip((lids.xs[keep] - lids.xs[0]) / max(lids.width, 1.0), 0.0, 1.0)
        self._taper = (np.sin(np.pi * along) ** 0.3).astype(np.float32)
        self._fade = np.maximum(lids.upper - lids.top, 1.0)[keep].astype(np.float32)

    def paint(self, canvas: np.ndarray, amount: float) -> None:
        """Lay the lid over `canvas` (the warped frame) for blink `amount` in 0..1."""
        if amount <= PAINT_FROM or self._x1 <= self._x0 or self._y1 <= self._y0:
            return
        amount = min(amount, 1.0)
        lids = self._lids
        edge = lids.edge(amount)[self._keep].astype(np.float32)
        top = lids.top[self._keep].astype(np.float32)
        ys = self._ys
        above_edge = edge - ys  # > 0 on the lid
        # Above its edge the warp shows the lid's own skin, but the photo's lashes come out
        # stretched into a smear: the paint covers them and fades into the skin above.
        stretch = (edge - top) / self._fade
        zone = (LASH_BAND * self._lids.width * stretch + 1.0)[None, :]
        cover = np.clip(1.0 - (above_edge - zone) / (COVER_FADE * zone), 0.0, 1.0)
        cover = cover * cover * (3.0 - 2.0 * cover)
        cover *= np.clip((ys - top) / (0.6 * self._fade), 0.0, 1.0)
        cover *= np.clip(above_edge + 0.5, 0.0, 1.0)
        cover *= _ramp(amount, PAINT_FROM, PAINT_FULL)
        patch = canvas[self._y0 : self._y1, self._x0 : self._x1].astype(np.float32)
        self._smooth_seam(patch, amount)
        # Lift what is darker than the lid's skin (the smeared lashes, the crease) to the
        # skin's colour and keep the lighter texture, then shade the lid towards its rim.
        luma = patch @ LUMA
        lift = np.clip((self._luma[None] - luma) / LIFT_RANGE, 0.0, 1.0)
        lift = (FLATTEN + (1.0 - FLATTEN) * lift) * cover
        patch += (self._colour[None] - patch) * lift[..., None]
        rim = np.exp(-np.maximum(above_edge, 0.0) / self._rim) * (above_edge > -0.5)
        patch *= (1.0 - RIM_SHADE * rim * cover)[..., None]
        lash = self._lash_alpha(above_edge, amount)
        patch += (self._lash - patch) * lash[..., None]
        canvas[self._y0 : self._y1, self._x0 : self._x1] = np.clip(patch + 0.5, 0, 255).astype(
            np.uint8
        )

    def _smooth_seam(self, patch: np.ndarray, amount: float) -> None:
        """Anti-alias the lower lid's edge, where the warp switches from the eyeball to the
        lower lid at a whole pixel row (a staircase while the eye is half shut)."""
        lids = self._lids
        seam = (lids.lower - amount * amount * (lids.lower - lids.closed))[self._keep] - self._y0
        rows = np.ceil(seam).astype(int)
        ok = (rows >= 1) & (rows < patch.shape[0])
        cols = np.flatnonzero(ok)
        r = rows[ok]
        above, below = patch[r - 1, cols].copy(), patch[r, cols].copy()
        into_above = np.clip(r - 0.5 - seam[ok], 0.0, 1.0)[:, None]
        into_below = np.clip(seam[ok] - (r - 0.5), 0.0, 1.0)[:, None]
        patch[r - 1, cols] = above + (below - above) * into_above
        patch[r, cols] = below + (above - below) * into_below

    def _lash_alpha(self, above_edge: np.ndarray, amount: float) -> np.ndarray:
        """A dark line along the lid's edge with the lashes' softer shadow under it."""
        # The paint lifts the photo's own lashes as the lid comes down: draw them back at once.
        strength = LASH_OPACITY * _ramp(amount, PAINT_FROM, PAINT_FULL)
        if strength <= 0.0:
            return np.zeros_like(above_edge)
        line = np.exp(-0.5 * (above_edge / self._lash_sigma) ** 2)
        below = np.maximum(-above_edge, 0.0)
        shadow = 0.35 * np.exp(-below / self._drop) * (above_edge < 0)
        return np.asarray(np.maximum(line, shadow) * strength * self._taper[None], np.float32)


def _ramp(x: float, lo: float, hi: float) -> float:
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def lash_colour(rgb: np.ndarray, lid_points: np.ndarray) -> np.ndarray:
    """The darkest colour found just around the upper lids: the lashes' own colour."""
    h, w = rgb.shape[:2]
    samples = []
    for x, y in lid_points:
        for dy in (-2, -1, 0, 1):
            xi, yi = round(float(x)), round(float(y)) + dy
            if 0 <= xi < w and 0 <= yi < h:
                samples.append(rgb[yi, xi].astype(np.float32))
    if not samples:
        return np.zeros(3, np.float32)
    stack = np.array(samples)
    luma = stack @ np.array([0.299, 0.587, 0.114], np.float32)
    darkest = stack[luma <= np.percentile(luma, 30)]
    return np.asarray(darkest.mean(axis=0) * 0.85, dtype=np.float32)

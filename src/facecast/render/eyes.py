"""Blinks for the warp renderer: the photo's own upper lid slides down over the eye.

A blink is a backward field (`LidWarp`) over a small box around each eye. The upper lid's
edge comes down to the closure line; the photo's lash line travels down with it unstretched,
so the real lashes close the eye, and the band of lid skin above them (up to the crease, a
glasses frame or the brow, whichever comes first) stretches after it. The lower lid rises
the last part of the way. Stretched skin loses its fine texture, so `LidPainter` gives it
back: the stretched lid keeps its own colour and shading at coarse scale and takes its grain
from the skin under the eye (the photo's own pores, noise and compression, 1:1); deep darks
in it (the crease, a frame's shadow) are lifted towards the lid's tone, its dome catches a
little light, its rim is shaded where the photo has lashes, and those lashes hang a little
below the edge. Nothing is drawn: no lash line, no flat patch. The band of skin that moves
is kept short, so glasses' frames and brows stay put, and the field fades out past the
corners, so a shut lid never ends in a step or a hook.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.face import FaceLandmarks

LID_MEET = 0.85
"""Closed lids meet this share of the way down the open eye (the upper lid travels most)."""
LID_MARGIN = 0.35
"""Below a closed eye the lower lid is sampled this share of the opening under its landmarks."""
UPPER_MARGIN = 0.03
"""Above a closed eye the upper lid is sampled this share of the opening (plus
UPPER_MARGIN_PX) over its landmarks: the lid's dark margin, not the eyeball."""
UPPER_MARGIN_PX = 0.3
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
CORNER_BLEND = 0.06
"""Near the corners the lid's field is blurred along the eye over this share of its width..."""
CORNER_KEEP = 0.6
"""...from this share of the half-width out from the eye's middle (exact inside it)."""
SMOOTH_SHARE = 0.08
"""Lid curves are smoothed along the eye over this share of its width."""
LASH_LINE = (0.03, 0.07, 0.12)
"""Height of the lid margin and lash line that travels down unstretched, as a share of the
eye's width: at least, without a photo to measure it in, and at most..."""
LASH_OF_BAND = 0.7
"""...and at most this share of the band of skin that moves."""
LASH_DARK = 0.8
"""In the photo, the lash line is the run of rows over the upper lid darker than this share
of the band's bright skin..."""
LASH_START = 3
"""...beginning within this many rows of the lid's landmarks."""
GRAIN_SIGMA = 0.025
"""Skin grain is what a blur of this share of the eye's width (at least GRAIN_MIN_PX) takes out."""
GRAIN_MIN_PX = 0.8
COARSE_ALONG = 2.0
"""The stretched lid's coarse layer is blurred this many times wider along the eye."""
GRAIN_CLIP = 3.0
"""Grain is clipped to this many robust standard deviations: an edge under the eye (a frame's
rim, a deep wrinkle) lends no line to the lid."""
GRAIN_GAP = 0.12
"""The grain comes from the skin starting this share of the eye's width under the lower lid
(past the lower lashes), mirrored so that it travels with the lid's edge."""
STRETCH_FULL = 0.6
"""Stretched by 1 + this, a row of lid skin has lost its own grain and takes the borrowed
grain fully; less stretched rows take a share."""
GRAIN_FADE = 0.06
"""The borrowed grain fades in over this share of the eye's width below the still skin."""
RIM_SHADE = 0.35
"""A shut lid is this much darker at its rim, where it curves under, than on its dome..."""
RIM_REACH = 0.08
"""...over this share of the eye's width, where the photo's lash line is dark..."""
LASH_HANG = 0.6
"""Lashes hang this share of the lash line's height below a closing lid's edge..."""
LASH_HANG_OPACITY = 0.7
"""...at this opacity at the edge, fading to none at their tips."""
DOME_LIGHT = 0.06
"""A shut lid is this much lighter over the middle of its dome."""
LASH_CONTRAST = 0.35
"""...which it fully is when its darkest row is this share darker than the lid's skin."""
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
TONE_FROM = 40.0
TONE_TO = 90.0
"""The lid's own skin tone is the mean of the band over the lid between these luma percentiles."""
LID_MIN_LIGHT = 0.95
"""The lid's tone is at least this light, relative to the skin under the eye..."""
UNDER_EYE = (0.15, 0.35)
"""...which is sampled this far under the lower lid, in shares of the eye's width."""
LIFT_SLACK = 8.0
"""Stretched skin down to this many levels darker (at coarse scale) than the lid's tone keeps
its shading; darker skin is lifted towards the tone, fully LIFT_RANGE levels further down:
the crease unfolds, and a frame's shadow or the lashes' tips do not smear down the lid."""
LIFT_RANGE = 20.0
LIFT_MAX = 50.0


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
    lash: np.ndarray
    """Height of the lid margin with its lashes, which travels down unstretched."""

    @property
    def margin(self) -> np.ndarray:
        """How far above its landmarks a shut upper lid is sampled (no eyeball shows)."""
        return _margin(self.opening, self.upper, self.top)

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
    top = yu - band * window
    room = np.maximum(yu - top - _margin(closed - yu, yu, top), 0.0)
    lash = np.full(len(xs), LASH_LINE[1] * width) if rgb is None else _lash_line(rgb, xs, yu, top)
    lash = np.minimum(
        np.clip(lash, LASH_LINE[0] * width, LASH_LINE[2] * width), LASH_OF_BAND * room
    )
    return Lids(xs=xs, upper=yu, lower=yl, closed=closed, top=top, width=width, lash=lash)


def _margin(opening: np.ndarray, upper: np.ndarray, top: np.ndarray) -> np.ndarray:
    """How far above its landmarks a shut upper lid is sampled, per column."""
    return (UPPER_MARGIN * opening / LID_MEET + UPPER_MARGIN_PX) * (upper > top + 1.0)


def _lash_line(rgb: np.ndarray, xs: np.ndarray, yu: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Per column, how many rows over the upper lid's landmarks the dark lash line takes."""
    h, w = rgb.shape[:2]
    reach = max(int(np.ceil(float((yu - top).max()))), 1)
    rows = np.round(yu)[None, :] - np.arange(reach)[:, None]
    cols = np.clip(xs.astype(int), 0, w - 1)
    luma = rgb[np.clip(rows, 0, h - 1).astype(int), cols[None, :]].astype(np.float32) @ LUMA
    inside = rows >= np.floor(top)[None, :]
    bright = float(np.percentile(luma[inside], 75)) if inside.any() else float(luma.max())
    dark = (luma < LASH_DARK * bright) & inside
    heights = np.zeros(len(xs))
    for j in range(len(xs)):
        found = np.flatnonzero(dark[:, j])
        if not len(found) or found[0] >= LASH_START:
            continue
        # The run of dark rows from the lid up, a one-row gap allowed (a lash's highlight).
        gaps = np.flatnonzero(np.diff(found) > 2)
        heights[j] = found[gaps[0] if len(gaps) else -1] + 1.0
    # Neighbouring columns agree: a median, then a blur, along the eye.
    radius = max(int(0.08 * (xs[-1] - xs[0])), 1)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(heights, radius, mode="edge"), 2 * radius + 1
    )
    median = np.median(windows, axis=1)
    kernel = np.full(2 * radius + 1, 1.0 / (2 * radius + 1))
    return np.asarray(np.convolve(np.pad(median, radius, mode="edge"), kernel, mode="valid"))


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
    # Mirrored through the end points, so the upper and lower lid still meet in the corners
    # (padding with the end value would pull them apart there, and the shut lid would end in
    # a step beside the corner).
    radius = min(radius, len(line) - 1)
    kernel = kernel[len(kernel) // 2 - radius : len(kernel) // 2 + radius + 1]
    padded = np.pad(line, radius, mode="reflect", reflect_type="odd")
    return np.asarray(np.convolve(padded, kernel / kernel.sum(), mode="valid"))


class LidWarp:
    """Per frame, the BACKWARD offsets (rows only) that move one eye's lids, over a small box.

    The map is exact for every blink amount, not a blend of the open and the shut eye: the
    upper lid's edge comes down to `Lids.edge(amount)` carrying its lash line unstretched,
    the band of skin above it stretches after it, the eyeball below the edge stays where it
    is (the lid slides over it instead of squeezing it), and the lower lid rises the last
    part of the way.
    """

    def __init__(self, lids: Lids, region_x0: int, region_y0: int, w: int, h: int) -> None:
        cols = lids.xs.astype(int) - region_x0
        keep = (cols >= 0) & (cols < w)
        opening = lids.opening / LID_MEET
        self._top = lids.top[keep]
        self._upper = lids.upper[keep]
        self._closed = lids.closed[keep]
        self._lower = lids.lower[keep]
        self._up_margin = lids.margin[keep]
        self._lash = lids.lash[keep]
        self._lo_margin = (LID_MARGIN * opening + 0.7)[keep]
        self._bottom = (lids.lower + LOWER_BAND * opening + 1.5)[keep]
        self._lids = lids
        self._keep = keep
        if keep.any():
            r0 = max(int(np.floor(self._top.min())) - region_y0, 0)
            r1 = min(int(np.ceil(self._bottom.max())) + 1 - region_y0, h)
            # Room beside the corners for the blended field to fade out in.
            spill = int(np.ceil(3.0 * CORNER_BLEND * lids.width)) + 1
            c0 = max(int(cols[keep].min()) - spill, 0)
            c1 = min(int(cols[keep].max()) + 1 + spill, w)
        else:
            r0 = r1 = c0 = c1 = 0
        self.box = (slice(r0, max(r1, r0)), slice(c0, c1))
        self._ys = (region_y0 + np.arange(r0, max(r1, r0), dtype=np.float64))[:, None]
        self._cols = cols[keep] - c0
        self._width = c1 - c0
        self._blend_sigma = max(CORNER_BLEND * lids.width, 0.5)
        # Share of the blurred field per column: all of it at and past the corners, none
        # over the middle of the eye (where the lid must cover the eyeball exactly).
        x = region_x0 + c0 + np.arange(self._width, dtype=np.float64)
        along = np.abs(x - (lids.xs[0] + lids.xs[-1]) / 2.0) / max(lids.width / 2.0, 1.0)
        self._blend = np.clip((along - CORNER_KEEP) / (1.0 - CORNER_KEEP), 0.0, 1.0)[None, :]

    def offsets(self, amount: float) -> np.ndarray:
        """Row offsets over `box`, shape (rows, cols), for blink `amount` in 0..1."""
        out = np.zeros((len(self._ys), self._width), np.float32)
        if not len(self._cols):
            return out
        t = min(max(amount, 0.0), 1.0)
        ys, top, bottom, lash = self._ys, self._top, self._bottom, self._lash
        edge = self._lids.edge(t)[self._keep]
        # The lower lid waits, then rises to meet the upper one.
        lower = self._lower - t * t * (self._lower - self._closed)
        lid_up = self._upper - t * self._up_margin
        lid_lo = self._lower + t * self._lo_margin
        # The lash line moves as one piece; the skin between it and the still band's top
        # stretches.
        skin_end = edge - lash
        src_skin = top + (ys - top) * (lid_up - lash - top) / np.maximum(skin_end - top, 1e-3)
        src_lash = ys - (edge - lid_up)
        src_below = lid_lo + (ys - lower) * (bottom - lid_lo) / np.maximum(bottom - lower, 1e-3)
        src = np.where(
            ys < skin_end,
            src_skin,
            np.where(ys < edge, src_lash, np.where(ys < lower, ys, src_below)),
        )
        inside = (ys >= top) & (ys <= bottom)
        out[:, self._cols] = np.where(inside, src - ys, 0.0)
        # Near the corners the moving lid must not end in a step beside the still skin:
        # the field is blurred along the eye there and fades out past the corners.
        soft = cv2.GaussianBlur(out, (0, 0), sigmaX=self._blend_sigma, sigmaY=1e-3)
        return np.asarray(out + (soft - out) * self._blend, np.float32)


def _grain(rgb: np.ndarray, sigma: float, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """The photo's fine texture (photo minus its blur) over rows y0:y1, columns x0:x1,
    clipped so that no edge stands out of it."""
    h = rgb.shape[0]
    pad = int(np.ceil(3 * sigma)) + 1
    r0, r1 = max(y0 - pad, 0), min(y1 + pad, h)
    area = rgb[r0:r1, x0:x1].astype(np.float32)
    grain = area - cv2.GaussianBlur(area, (0, 0), sigma)
    grain = grain[y0 - r0 : y0 - r0 + (y1 - y0)]
    spread = 1.4826 * np.median(np.abs(grain), axis=(0, 1)) + 0.5
    return np.asarray(np.clip(grain, -GRAIN_CLIP * spread, GRAIN_CLIP * spread), np.float32)


def _lid_tone(rgb: np.ndarray, lids: Lids) -> np.ndarray:
    """The lid skin's own colour per column (n, 3), from the band of skin over the lashes.

    Lashes, the crease's shadow, frames and highlights are left out by luma; the colour is
    smoothed along the eye.
    """
    h, w = rgb.shape[:2]
    cols = np.clip(lids.xs.astype(int), 0, w - 1)
    band = np.maximum(lids.upper - lids.lash - lids.top, 1.0)
    share = np.linspace(0.0, 1.0, 8)[:, None]
    rows = np.round(lids.upper - lids.lash - 0.5 - share * band).astype(int)
    samples = rgb[np.clip(rows, 0, h - 1), cols[None, :]].astype(np.float32)  # (8, n, 3)
    luma = samples @ LUMA
    lo, hi = np.percentile(luma, [TONE_FROM, TONE_TO])
    ok = (luma >= lo) & (luma <= hi)
    fallback = samples[ok].mean(axis=0) if ok.any() else samples.reshape(-1, 3).mean(axis=0)
    counts = ok.sum(axis=0)[:, None]
    per_col = np.where(
        counts > 0, (samples * ok[..., None]).sum(axis=0) / np.maximum(counts, 1), fallback
    )
    sigma = max(lids.width * 0.15, 1.0)
    tone = cv2.GaussianBlur(per_col[None].astype(np.float32), (0, 0), sigma)[0]
    # A lid in the shadow of a brow or a frame opens into skin that was hidden in the fold:
    # it is at least nearly as light as the skin under the eye.
    below = np.linspace(UNDER_EYE[0], UNDER_EYE[1], 5)[:, None] * lids.width
    under_rows = np.clip(np.round(lids.lower[None, :] + below).astype(int), 0, h - 1)
    under = np.median(rgb[under_rows, cols[None, :]].reshape(-1, 3).astype(np.float32), axis=0)
    floor = LID_MIN_LIGHT * float(under @ LUMA)
    darker = np.clip((floor - tone @ LUMA) / (0.3 * max(floor, 1.0)), 0.0, 1.0)[:, None]
    return np.asarray(tone + (LID_MIN_LIGHT * under - tone) * darker, np.float32)


def _lash_depth(rgb: np.ndarray, lids: Lids) -> np.ndarray:
    """Per column, how dark the photo's lash line is against the lid's skin: 0 (none) to 1."""
    h, w = rgb.shape[:2]
    cols = np.clip(lids.xs.astype(int), 0, w - 1)
    rows = np.round(lids.upper[None, :] - np.linspace(0.0, 1.0, 4)[:, None] * lids.lash)
    luma = rgb[np.clip(rows, 0, h - 1).astype(int), cols[None, :]].astype(np.float32) @ LUMA
    skin = _lid_tone(rgb, lids) @ LUMA
    depth = (skin - luma.min(axis=0)) / (LASH_CONTRAST * np.maximum(skin, 1.0))
    return np.asarray(np.clip(depth, 0.0, 1.0))


class LidPainter:
    """Finishes a closing lid on the warped frame: the stretched skin gets the photo's grain
    back, deep darks lifted, a dome and a rim; the photo's lashes hang below its edge."""

    def __init__(self, rgb: np.ndarray, lids: Lids) -> None:
        h, w = rgb.shape[:2]
        self._x0 = max(int(lids.xs[0]), 0)
        self._x1 = min(int(lids.xs[-1]) + 1, w)
        self._y0 = max(int(np.floor(lids.top.min())) - 1, 0)
        self._y1 = min(int(np.ceil(lids.lower.max())) + 2, h)
        keep = (lids.xs >= self._x0) & (lids.xs < self._x1)
        self._lids = lids
        self._keep = keep
        self._ys = np.arange(self._y0, self._y1, dtype=np.float32)[:, None]
        self._sigma = max(GRAIN_SIGMA * lids.width, GRAIN_MIN_PX)
        # Under the eye, mirrored: the lid's edge takes the skin just past the lower lashes,
        # its top the skin further down.
        self._grain_from = (lids.lower + GRAIN_GAP * lids.width)[keep].astype(np.float32)
        reach = float((lids.closed - lids.top).max()) + 2.0
        g0 = max(int(np.floor(self._grain_from.min())), 0)
        g1 = min(int(np.ceil(self._grain_from.max() + reach)) + 1, h)
        self._g0 = g0
        self._grain = _grain(rgb, self._sigma, g0, max(g1, g0 + 1), self._x0, self._x1)
        self._cols = np.arange(self._x1 - self._x0)[None, :]
        self._fade = max(GRAIN_FADE * lids.width, 1.0)
        self._rim = max(RIM_REACH * lids.width, 1.0)
        self._tone = _lid_tone(rgb, lids)[keep]
        self._tone_luma = self._tone @ LUMA
        # The lid is finished less towards the corners, where it hardly moves: no step
        # between the finished lid and the photo's skin beside it.
        along = np.clip((lids.xs[keep] - lids.xs[0]) / max(lids.width, 1.0), 0.0, 1.0)
        self._ends = np.sin(np.pi * along).astype(np.float32)
        # The rim's shade deepens the photo's own lash line, and only where there is one: on
        # bare skin (a far eye on a turned face) it would read as a drawn line.
        self._photo = rgb[self._y0 : self._y1, self._x0 : self._x1].astype(np.float32)
        self._rim_shade = (RIM_SHADE * _lash_depth(rgb, lids)[keep] * self._ends**0.5).astype(
            np.float32
        )

    def paint(self, canvas: np.ndarray, amount: float) -> None:
        """Finish the lid on `canvas` (the warped frame) for blink `amount` in 0..1."""
        if amount <= 0.0 or self._x1 <= self._x0 or self._y1 <= self._y0:
            return
        t = min(amount, 1.0)
        lids, k = self._lids, self._keep
        edge = lids.edge(t)[k].astype(np.float32)
        top = lids.top[k].astype(np.float32)
        lash = lids.lash[k].astype(np.float32)
        lid_up = (lids.upper - t * lids.margin)[k].astype(np.float32)
        skin_end = edge - lash
        ys = self._ys
        stretch = (skin_end - top) / np.maximum(lid_up - lash - top, 2.0)
        share = np.clip((stretch - 1.0) / STRETCH_FULL, 0.0, 1.0) * self._ends
        weight = share[None, :] * np.clip((ys - top) / self._fade, 0.0, 1.0)
        weight *= np.clip(skin_end - ys + 0.5, 0.0, 1.0)
        patch = canvas[self._y0 : self._y1, self._x0 : self._x1].astype(np.float32)
        if weight.max() > 0.0:
            # Coarse colour and shading from the stretched lid; grain from under the eye.
            # Wider along the eye: a stray lash or hair in the band, stretched down the lid,
            # would otherwise stand as a vertical streak.
            coarse = cv2.GaussianBlur(
                patch, (0, 0), sigmaX=COARSE_ALONG * self._sigma, sigmaY=self._sigma
            )
            lighter = self._tone[None] - coarse
            gap = lighter @ LUMA
            lift = np.clip((gap - LIFT_SLACK) / LIFT_RANGE, 0.0, 1.0)
            # A lid in deep shadow stays shadowed: never lifted by more than LIFT_MAX levels.
            lift *= np.minimum(LIFT_MAX / np.maximum(gap, 1.0), 1.0)
            coarse += lighter * lift[..., None]
            rows = np.round(self._grain_from[None, :] + (skin_end[None, :] - ys)).astype(int)
            rows = np.clip(rows - self._g0, 0, self._grain.shape[0] - 1)
            grain = self._grain[rows, self._cols]
            patch += (coarse + grain - patch) * weight[..., None]
        # The shut lid is a dome over the eyeball: it catches a little more light over the
        # middle and curves under at its rim, shaded just above the lash line.
        above = edge[None, :] - ys
        rim = np.exp(-np.maximum(above, 0.0) / self._rim) * (above > -0.5) * (ys > top)
        across = np.clip((ys - top) / np.maximum(edge - top, 1.0), 0.0, 1.0)
        dome = np.sin(np.pi * across) * (DOME_LIGHT * t) * self._ends[None]
        patch *= (1.0 + dome - t * self._rim_shade[None] * rim)[..., None]
        self._smooth_seam(patch, t)
        self._hang_lashes(patch, t, edge, lid_up, lash)
        canvas[self._y0 : self._y1, self._x0 : self._x1] = np.clip(patch + 0.5, 0, 255).astype(
            np.uint8
        )

    def _hang_lashes(
        self, patch: np.ndarray, t: float, edge: np.ndarray, lid_up: np.ndarray, lash: np.ndarray
    ) -> None:
        """The photo's own lashes, mirrored, hanging below the lid's edge over what lies under
        it: they darken it where they are dark and leave bare skin alone."""
        hang = np.maximum(LASH_HANG * lash, 0.5)
        below = self._ys - edge[None, :]  # > 0 under the lid's edge
        # Row i under the edge shows the lash line i / hang of the way up from the lid's rim.
        rows = np.round(lid_up[None, :] - below * lash / hang).astype(int) - self._y0
        rows = np.clip(rows, 0, self._photo.shape[0] - 1)
        lashes = self._photo[rows, self._cols]
        alpha = np.clip(1.0 - below / hang, 0.0, 1.0) * (below > 0.0)
        alpha *= LASH_HANG_OPACITY * t * self._ends[None]
        darker = np.minimum(lashes, patch)
        patch += (darker - patch) * alpha[..., None]

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

"""Displacement fields of the warp renderer, built once per photo.

Every motion channel gets a field of forward displacements (pixels per unit of the channel),
turned into backward sample offsets by solving the inverse once per photo (`backward`), so
each frame is a weighted sum of fixed offset fields and one remap.
Fields that must part the lips are built twice, for the upper and the lower face, and joined
along the lip seam with a sharp edge between the mouth corners and a soft one beyond them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator, griddata

from facecast.face import (
    BROW_A,
    BROW_B,
    CHIN,
    CHIN_MIDLINE,
    EAR_LEVEL,
    EYE_A_LOWER,
    EYE_A_UPPER,
    EYE_B_LOWER,
    EYE_B_UPPER,
    FACE_OVAL,
    INNER_CORNERS,
    IRIS_A,
    IRIS_B,
    JAW_PAIRS,
    LOWER_CHEEKS,
    LOWER_INNER_LIP,
    LOWER_OUTER_LIP,
    MALAR,
    MOUTH_CORNERS,
    NASOLABIAL,
    NOSE_AND_CHEEKS,
    UPPER_FOREHEAD,
    UPPER_INNER_LIP,
    UPPER_OUTER_LIP,
    FaceLandmarks,
)

JAW_GAP = 0.48
"""Lip gap at jaw = 1 (an open "a"), as a fraction of the mouth's width: wide mouths open
wider, so the opening reads the same on every face..."""
JAW_GAP_FACE_SHARE = 0.5
"""...but the jaw drops with the face, not with the smile: this share of the gap follows a
mouth of MOUTH_WIDTH_TYPICAL instead of the photo's own (a broad smile is wide, its jaw is
not longer)..."""
MOUTH_WIDTH_TYPICAL = 0.37
"""A relaxed mouth's width over the face height (the gallery's closed mouths: 0.32-0.41)."""
JAW_GAP_MAX = 0.22
"""...and never more than this fraction of the face height (brow to chin)."""
OPEN_CORNER_FLOOR = 0.1
"""The lower lip's travel at the inner corners, as a share of its travel in the middle; in
between it follows a parabola (OPEN_ROUNDNESS), so a wide opening is an oval that narrows
into the corners, not a box with upright sides..."""
OPEN_ROUNDNESS = 1.0
"""...(1 - u^2) to this power across the half-width u."""
CORNER_IN = 0.14
"""The mouth's corners draw in by this share of the gap as the jaw opens (the lips stretch
over the opening), so the widest opening is narrower than a smile."""
UPPER_LIP_RISE = 0.05
"""The upper lip's share of the opening: it lifts a little as the jaw drops."""
JAW_NEIGHBOURS = 0.03
"""Jaw-line points closer than about this fraction of the face height travel alike."""
JAW_LATERAL_FALLOFF = 0.85
"""How much less than the chin the jaw's corners travel (the jaw turns about the ears)."""
CHEEK_FOLLOW = 0.35
"""Share of the local jaw travel that the cheeks beside the mouth follow."""
CLOSED_GAP = 0.012
"""A resting gap wider than this (fraction of face height) is closed by the warp."""
CLOSE_UPPER_SHARE = 0.3
"""When the warp closes an open photo's mouth the upper lip comes down this share of the gap;
the jaw rises the rest, lower lip, chin and jaw line together, as a mouth really closes (the
lips themselves keep their thickness instead of being stretched over the gap)."""
CLOSE_UPPER_MAX = 0.03
"""...but at most this fraction of the face height: a wide-open mouth (a tongue out) closes
by its jaw, not by stretching the skin under the nose."""
CLOSE_OVERSHOOT = 0.12
"""Each lip's inner edge is carried this share of the gap past the seam..."""
CLOSE_MARGIN_PX = 0.8
"""...plus this many pixels, so no tooth or tongue between the lips survives on the seam.
Each lip moves as a whole, column by column, and the chin as far as the lower lip: the lips
keep their thickness, and the jaw's own field, added on top, finds the lower lip where it
expects it and never shows what lay behind it."""
CLOSE_CHIN_FOLLOW = 1.0
"""Closing, the chin's midline rises with the lower lip right under it and this share of the
lip's way at the chin: all of it, so the jaw's field added on top finds the lower lip and
the chin where it expects them (compose_jaw leaves the mouth's neighbourhood out)."""
CLOSE_JAW_SIDES = 3.0
"""Closing, the jaw line's sides travel their jaw share to this power: a wide-open photo's
jaw rises far, and the full share folded the skin in front of the ears when the jaw opened
again (a turned face's far side)."""
CLOSE_CHEEK_GAIN = 2.0
"""The cheeks follow a closing mouth this many times as far as they follow the jaw."""
WIDTH_GAIN = 0.2
"""Corner travel at width = +-1, as a fraction of the mouth's width."""
POUT = 0.05
"""Outer lip edges move this fraction of the mouth's width away from the seam at width = -1
(rounded lips pushed forward look fuller) and towards it at +1 (spread lips thin out)."""
SMILE_BASE = 0.02
"""Corner travel at smile = 1 for a face that does not smile, fraction of the mouth width..."""
SMILE_GAIN = 0.7
"""...plus this share of how far the photo's corners already sit above the lips' middle."""
GAZE_SHIFT = (0.25, 0.1)
"""Iris travel at gaze_x / gaze_y = 1, as a share of the iris radius."""
HEAD_MATTE_SCALE = 1.9
"""The head field reaches this many face half-extents out, within the person's matte."""
BROW_LIFT = 0.035
"""Brow travel at brows = 1, fraction of face height."""
ANCHOR_RING = 1.45
"""Fixed anchors sit this many half-extents of the face away from its centre."""
NECK_ANCHOR = 0.55
"""The neck is held still this many face heights below the chin."""
INVERSE_ITERATIONS = 8
UNFOLD_STRETCH = 0.5
"""A forward field is smoothed where it squeezes the skin to less than this share of its
size in some direction (a fold, or the shear beside a mouth corner)..."""
UNFOLD_SIGMA = 3.0
"""...with a Gaussian of this many pixels,"""
UNFOLD_ITERATIONS = 12
"""...at most this many times."""
SEAM_SOFTENING = 1.5
"""Beyond the mouth's corners the lip seam blends the upper and the lower face over this many
pixels per pixel of distance from the corner: the jaw pulls the skin below the corner down
and the upper field holds it above, and a narrow blend there tore the skin along the
crease running on from the corner (a smiling or turned face, at wide openings)."""
SEAM_REACH_PX = 4.0
"""Each side's lip motion is carried this far (plus the opening) past the seam."""
FIELD_STEP = 4
"""Interpolated fields are evaluated every FIELD_STEP pixels and smoothly upsampled."""
HEAD_SCALE = 4
"""Head-motion fields are kept at 1/HEAD_SCALE resolution (they are smooth)."""
HEAD_AXIS_DEPTH = 0.55
"""The head turns about an axis this many face widths behind the face."""

JAW_STILL = ((132, 361), (93, 323), EAR_LEVEL)
"""Outline points in front of the ears: the jaw turns about them."""


@dataclass(frozen=True)
class Region:
    """A rectangle of the output: x0, y0 and its width and height."""

    x0: int
    y0: int
    w: int
    h: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.h), slice(self.x0, self.x0 + self.w)


@dataclass(frozen=True)
class MouthGeometry:
    """The lips at rest (closed by the warp if the photo's mouth was open)."""

    upper_inner: np.ndarray  # (11, 2) closed positions
    lower_inner: np.ndarray  # (11, 2) closed positions
    rest_gap: np.ndarray  # (11,) gap in the photo, y lower - y upper
    centre_x: float
    half_width: float


def mouth_geometry(lm: FaceLandmarks) -> MouthGeometry:
    """Where the lips meet at rest; an open mouth is closed where its upper lip comes down to
    (CLOSE_UPPER_SHARE of the gap below the photo's upper lip)."""
    up = lm.xy[list(UPPER_INNER_LIP)].astype(np.float64)
    lo = lm.xy[list(LOWER_INNER_LIP)].astype(np.float64)
    gap = np.maximum(lo[:, 1] - up[:, 1], 0.0)
    if float(np.median(gap[2:-2])) < CLOSED_GAP * lm.face_height:
        gap = np.zeros_like(gap)
        # Closed lips meet on one line: the mesh's few pixels between them (at a turned
        # face's corners) would otherwise open onto the painted interior at rest.
        up = lo = 0.5 * (up + lo)
    down = np.minimum(CLOSE_UPPER_SHARE * gap, CLOSE_UPPER_MAX * lm.face_height)
    seam = up + np.stack([np.zeros_like(gap), down], axis=1)
    closed_up = np.where(gap[:, None] > 0, seam, up)
    closed_lo = np.where(gap[:, None] > 0, seam, lo)
    left, right = lm.xy[61], lm.xy[291]
    return MouthGeometry(
        upper_inner=closed_up,
        lower_inner=closed_lo,
        rest_gap=gap,
        centre_x=float((left[0] + right[0]) / 2.0),
        half_width=float(abs(right[0] - left[0]) / 2.0),
    )


def parted_geometry(lm: FaceLandmarks, share: np.ndarray) -> MouthGeometry:
    """The rest pose of a kept smile: the photo as it is, parted between the jaws where the
    upper teeth end (`share` of the gap below each upper inner-lip point). What lies above
    moves with the upper lip, what lies below with the jaw; nothing is closed."""
    up = lm.xy[list(UPPER_INNER_LIP)].astype(np.float64)
    lo = lm.xy[list(LOWER_INNER_LIP)].astype(np.float64)
    gap = np.maximum(lo[:, 1] - up[:, 1], 0.0)
    seam = up + np.stack([np.zeros_like(gap), share * gap], axis=1)
    left, right = lm.xy[61], lm.xy[291]
    return MouthGeometry(
        upper_inner=seam,
        lower_inner=seam.copy(),
        rest_gap=np.zeros_like(gap),
        centre_x=float((left[0] + right[0]) / 2.0),
        half_width=float(abs(right[0] - left[0]) / 2.0),
    )


def expression_region(lm: FaceLandmarks, width: int, height: int) -> Region:
    """The part of the frame that expressions move: everything inside the fixed anchors."""
    x0, y0, x1, y1 = lm.oval_box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    ax, ay = (x1 - x0) / 2.0 * ANCHOR_RING, (y1 - y0) / 2.0 * ANCHOR_RING
    bottom = max(cy + ay, float(lm.xy[CHIN][1]) + NECK_ANCHOR * lm.face_height)
    rx0, ry0 = max(int(cx - ax), 0), max(int(cy - ay), 0)
    rx1, ry1 = min(int(cx + ax) + 2, width), min(int(bottom) + 2, height)
    return Region(rx0, ry0, rx1 - rx0, ry1 - ry0)


def _taper(region: Region) -> np.ndarray:
    """1 inside the region, falling to 0 at its border, so moved pixels meet still ones."""
    margin = max(min(region.w, region.h) * 0.08, 2.0)
    tx = _smoothstep(np.minimum(np.arange(region.w), region.w - 1 - np.arange(region.w)) / margin)
    ty = _smoothstep(np.minimum(np.arange(region.h), region.h - 1 - np.arange(region.h)) / margin)
    return (ty[:, None] * tx[None, :]).astype(np.float32)


def backward(forward: np.ndarray) -> np.ndarray:
    """Sample offsets that undo a forward field: B(x) = -F(y) where y + F(y) = x.

    Solved by fixed-point iteration; across the lip seam no solution exists (that gap is
    painted over by the mouth interior), and the iteration settles on either side.
    """
    h, w = forward.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    offsets = -forward
    for _ in range(INVERSE_ITERATIONS):
        at = cv2.remap(
            forward,
            gx + offsets[..., 0],
            gy + offsets[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        offsets = 0.5 * offsets - 0.5 * at
    return np.ascontiguousarray(offsets)


def anchors_for(lm: FaceLandmarks, width: int, height: int) -> np.ndarray:
    """Fixed points of every interpolated field: a ring well outside the face, the neck, the
    frame's border."""
    x0, y0, x1, y1 = lm.oval_box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    ax, ay = (x1 - x0) / 2.0 * ANCHOR_RING, (y1 - y0) / 2.0 * ANCHOR_RING
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = np.stack([cx + ax * np.cos(angles), cy + ay * np.sin(angles)], axis=1)
    # The neck below the chin stays too: anchors under the jaw line.
    chin = lm.xy[CHIN]
    fh = lm.face_height
    neck = np.array(
        [[chin[0] + dx * fh, chin[1] + NECK_ANCHOR * fh] for dx in (-0.6, -0.3, 0.0, 0.3, 0.6)]
    )
    border = []
    for t in np.linspace(0, 1, 9):
        border += [[t * width, 0], [t * width, height], [0, t * height], [width, t * height]]
    return np.concatenate([ring, neck, np.array(border, dtype=np.float64)])


def _interpolate(
    points: np.ndarray, values: np.ndarray, region: Region, smoothing: float = 0.5
) -> np.ndarray:
    """Thin-plate-spline field through `values` at `points`, over `region`, shape (h, w, 2)."""
    pts, idx = np.unique(np.round(points, 2), axis=0, return_index=True)
    rbf = RBFInterpolator(pts, values[idx], kernel="thin_plate_spline", smoothing=smoothing)
    gw = -(-region.w // FIELD_STEP)
    gh = -(-region.h // FIELD_STEP)
    # Nodes sit at the centres of FIELD_STEP blocks, which is where cv2.resize expects them.
    gx = region.x0 + (np.arange(gw) + 0.5) * FIELD_STEP - 0.5
    gy = region.y0 + (np.arange(gh) + 0.5) * FIELD_STEP - 0.5
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2).astype(np.float64)
    coarse = rbf(grid).reshape(gh, gw, 2).astype(np.float32)
    full = cv2.resize(coarse, (gw * FIELD_STEP, gh * FIELD_STEP), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(full[: region.h, : region.w] * _taper(region)[..., None])


def _bump(x: np.ndarray, mouth: MouthGeometry, floor: float) -> np.ndarray:
    """1 at the mouth's centre falling to `floor` at its corners.

    An elliptic profile: an open mouth is rounded at the bottom (a U), not a V.
    """
    u = np.clip(np.abs(x - mouth.centre_x) / max(mouth.half_width, 1.0), 0.0, 1.0)
    return floor + (1.0 - floor) * np.sqrt(1.0 - u**2)


def _opening_profile(x: np.ndarray, mouth: MouthGeometry, floor: float) -> np.ndarray:
    """1 at the mouth's centre falling to `floor` at its corners along a rounded arch:
    a dropped lower lip is a U that narrows into the corners (OPEN_ROUNDNESS)."""
    u = np.clip(np.abs(x - mouth.centre_x) / max(mouth.half_width, 1.0), 0.0, 1.0)
    return floor + (1.0 - floor) * (1.0 - u**2) ** OPEN_ROUNDNESS


def seam_weight(mouth: MouthGeometry, region: Region) -> np.ndarray:
    """0 above the lip seam, 1 below; sharp between the corners, soft beyond them. (h, w)."""
    xs = region.x0 + np.arange(region.w, dtype=np.float64)
    ys = region.y0 + np.arange(region.h, dtype=np.float64)
    # Average upper and lower curves: after closing they coincide.
    upper = np.interp(xs, mouth.upper_inner[:, 0], mouth.upper_inner[:, 1])
    lower = np.interp(xs, mouth.lower_inner[:, 0], mouth.lower_inner[:, 1])
    seam_y = (upper + lower) / 2.0
    outside = np.maximum(np.abs(xs - mouth.centre_x) - mouth.half_width * 0.85, 0.0)
    # Blending offsets across the seam would sample whatever lies between the lips (teeth):
    # keep it a step between the corners, and soften only out on the cheeks.
    softness = 0.3 + SEAM_SOFTENING * outside
    below = ys[:, None] - seam_y[None, :]
    soft = 1.0 / (1.0 + np.exp(-np.clip(below / softness[None, :], -30, 30)))
    return np.where(outside[None, :] > 0, soft, below > 0).astype(np.float32)


def _across_seam(
    side: tuple[np.ndarray, np.ndarray], reach: np.ndarray, direction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of a side's first 11 points (its inner lip) moved `reach` (each its own) across
    the seam.

    Each side's field then carries its lip's motion a little past the seam, so it stays
    invertible where the other side's pixels used to be.
    """
    pts, vals = side
    lip = pts[:11] + np.stack([np.zeros(11), direction * reach], axis=1)
    return np.concatenate([pts, lip]), np.concatenate([vals, vals[:11]])


def _split_field(
    upper: tuple[np.ndarray, np.ndarray],
    lower: tuple[np.ndarray, np.ndarray],
    anchors: np.ndarray,
    region: Region,
    seam: np.ndarray,
    reach: np.ndarray,
) -> np.ndarray:
    """Backward offsets from an upper and a lower forward field joined at the lip seam.

    Both sides list their 11 inner-lip points first."""
    f_up, f_lo = _split_forward(upper, lower, anchors, region, reach)
    f_up, f_lo = unfold(f_up), unfold(f_lo)
    # Each side is smooth and invertible on its own; the seam picks a side per output pixel.
    return backward(f_up) * (1.0 - seam[..., None]) + backward(f_lo) * seam[..., None]


def _split_forward(
    upper: tuple[np.ndarray, np.ndarray],
    lower: tuple[np.ndarray, np.ndarray],
    anchors: np.ndarray,
    region: Region,
    reach: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The forward fields of the upper and the lower face, each over the whole region."""
    zeros = np.zeros_like(anchors)
    upper = _across_seam(upper, reach, +1.0)
    lower = _across_seam(lower, reach, -1.0)
    f_up = _interpolate(
        np.concatenate([upper[0], anchors]), np.concatenate([upper[1], zeros]), region
    )
    f_lo = _interpolate(
        np.concatenate([lower[0], anchors]), np.concatenate([lower[1], zeros]), region
    )
    return f_up, f_lo


def _least_stretch(forward: np.ndarray) -> np.ndarray:
    """The smallest singular value of I + grad F per pixel: how far the field squeezes the
    skin in its most squeezed direction (0: a fold; a strong shear squeezes too)."""
    dxy, dxx = np.gradient(forward[..., 0])
    dyy, dyx = np.gradient(forward[..., 1])
    a, b, c, d = 1.0 + dxx, dxy, dyx, 1.0 + dyy
    squares = a * a + b * b + c * c + d * d
    det = a * d - b * c
    root = np.sqrt(np.maximum(squares * squares - 4.0 * det * det, 0.0))
    return np.asarray(np.sign(det) * np.sqrt(np.maximum((squares - root) / 2.0, 0.0)))


def unfold(forward: np.ndarray) -> np.ndarray:
    """`forward` smoothed where it squeezes the skin (_least_stretch under UNFOLD_STRETCH).

    Squeezed skin is stretched again by the backward offsets, and a fold has two sources for
    one output pixel that the offsets jump between: either draws a line, typically beside a
    mouth corner on a smiling or turned face, where the lower lip travels far and the corner
    and the cheek a few pixels away little. Smoothing the field there spreads the shear out.
    """
    field = forward
    for _ in range(UNFOLD_ITERATIONS):
        stretch = _least_stretch(field)
        if float(stretch.min()) >= UNFOLD_STRETCH:
            break
        weight = _smoothstep((UNFOLD_STRETCH - stretch) / UNFOLD_STRETCH)
        weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), UNFOLD_SIGMA)
        weight = np.clip(weight * 3.0, 0.0, 1.0)[..., None]
        blurred = cv2.GaussianBlur(field, (0, 0), UNFOLD_SIGMA)
        field = field * (1.0 - weight) + blurred * weight
    return np.ascontiguousarray(field, dtype=np.float32)


def _points(lm: FaceLandmarks, ids: tuple[int, ...] | list[int]) -> np.ndarray:
    return lm.xy[list(ids)].astype(np.float64)


def jaw_gap(lm: FaceLandmarks, mouth: MouthGeometry) -> float:
    """The lips' gap in pixels at jaw = 1."""
    width = 2.0 * mouth.half_width
    typical = MOUTH_WIDTH_TYPICAL * lm.face_height
    width = (1.0 - JAW_GAP_FACE_SHARE) * width + JAW_GAP_FACE_SHARE * typical
    return min(JAW_GAP * width, JAW_GAP_MAX * lm.face_height)


def jaw_share(lm: FaceLandmarks, pts: np.ndarray) -> np.ndarray:
    """Share of the chin's travel that points of the lower face get when the jaw drops.

    The jaw turns about the joints in front of the ears: points travel with their distance
    below that axis and less the further out to the side they sit (closer to the joint in
    depth), so the chin travels most and the jaw's corners little.
    """
    ears = _points(lm, EAR_LEVEL)
    pivot_y = float(ears[:, 1].mean())
    chin = lm.xy[CHIN].astype(np.float64)
    cx = float(ears[:, 0].mean())
    half_w = max(float(abs(ears[1, 0] - ears[0, 0])) / 2.0, 1.0)
    down = np.clip((pts[:, 1] - pivot_y) / max(float(chin[1]) - pivot_y, 1.0), 0.0, 1.2)
    side = np.clip(np.abs(pts[:, 0] - cx) / half_w, 0.0, 1.0)
    return np.sqrt(down) * (1.0 - JAW_LATERAL_FALLOFF * side**2)


def _jaw_line(
    lm: FaceLandmarks,
    travel: float,
    *,
    with_lip: bool = False,
    chin_follow: float = 1.0,
    side_power: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The chin's midline, the jaw line and the skin between them, with their travel down.

    `with_lip`: `travel` is the lower lip's; the chin's midline goes as far as the lip right
    under it (the skin there neither folds nor stretches) and `chin_follow` of it at the
    chin. The jaw line's sides travel their share to `side_power`.
    """
    ids = list(CHIN_MIDLINE) + [i for pair in JAW_PAIRS for i in pair]
    pts = _points(lm, ids)
    share = jaw_share(lm, pts)
    if with_lip:
        midline = slice(0, len(CHIN_MIDLINE))
        below = (pts[midline, 1] - pts[0, 1]) / max(
            float(pts[len(CHIN_MIDLINE) - 1, 1] - pts[0, 1]), 1.0
        )
        share[midline] = 1.0 - (1.0 - chin_follow) * np.clip(below, 0.0, 1.0)
    sides = slice(len(CHIN_MIDLINE), None)
    share[sides] = share[sides] ** side_power
    # Seen from the side, the far half of the jaw line lies over the chin's midline: points
    # that close together must travel alike, or the field between them tears.
    share = _neighbourhood_mean(pts, share, JAW_NEIGHBOURS * lm.face_height)
    still = _points(lm, [i for pair in JAW_STILL for i in pair])
    vals = np.stack([np.zeros(len(pts)), share * travel], axis=1)
    return np.concatenate([pts, still]), np.concatenate([vals, np.zeros_like(still)])


def _neighbourhood_mean(pts: np.ndarray, values: np.ndarray, radius: float) -> np.ndarray:
    """`values` averaged over the points within about `radius` of each point (Gaussian)."""
    dist2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=-1)
    weights = np.exp(-dist2 / (2.0 * max(radius, 1e-3) ** 2))
    return np.asarray(weights @ values / weights.sum(axis=1), dtype=np.float64)


def _cheeks(
    lm: FaceLandmarks, mouth: MouthGeometry, travel: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cheeks beside and below the mouth follow the jaw part of the way, a little inwards."""
    pts = _points(lm, LOWER_CHEEKS + NASOLABIAL)
    # Squared: the cheeks high up beside the nose barely move.
    share = jaw_share(lm, pts) ** 2 * CHEEK_FOLLOW
    inward = -np.sign(pts[:, 0] - mouth.centre_x) * 0.1 * share * travel
    return pts, np.stack([inward, share * travel], axis=1)


def jaw_field(
    lm: FaceLandmarks, mouth: MouthGeometry, region: Region, anchors: np.ndarray, seam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample offsets for jaw = 1 and the travel of the inner lip points (upper, lower)."""
    gap = jaw_gap(lm, mouth)
    corners = _points(lm, MOUTH_CORNERS + INNER_CORNERS)
    corner_vals = np.stack(
        [-np.sign(corners[:, 0] - mouth.centre_x) * CORNER_IN * gap, np.full(4, 0.2 * gap)],
        axis=1,
    )

    def drawn_in(pts: np.ndarray, down: np.ndarray) -> np.ndarray:
        # The lips follow their corners in, more the nearer they lie to them: no lip point
        # overtakes its corner (a fold in the outline the interior is drawn from).
        rel = np.clip((pts[:, 0] - mouth.centre_x) / max(mouth.half_width, 1.0), -1.0, 1.0)
        return np.stack([-rel * np.abs(rel) * CORNER_IN * gap, down], axis=1)

    lo_in = mouth.lower_inner[1:-1]
    lo_in_v = drawn_in(lo_in, gap * _opening_profile(lo_in[:, 0], mouth, OPEN_CORNER_FLOOR))
    lo_out = _points(lm, LOWER_OUTER_LIP[1:-1])
    lo_out_v = drawn_in(lo_out, gap * 0.97 * _opening_profile(lo_out[:, 0], mouth, 0.3))
    # The chin goes down with the lower lip (the mandible carries both): no fold under the lip.
    jaw_pts, jaw_v = _jaw_line(lm, 0.97 * gap, with_lip=True)
    cheek_pts, cheek_v = _cheeks(lm, mouth, gap)
    rise = UPPER_LIP_RISE * gap
    up_in = mouth.upper_inner[1:-1]
    up_in_v = drawn_in(up_in, -rise * _bump(up_in[:, 0], mouth, 0.0))
    up_out = _points(lm, UPPER_OUTER_LIP[1:-1])
    up_out_v = drawn_in(up_out, -0.6 * rise * _bump(up_out[:, 0], mouth, 0.0))
    still = _points(lm, NOSE_AND_CHEEKS)
    up_travel = np.concatenate([corner_vals[2:3], up_in_v, corner_vals[3:4]])
    lo_travel = np.concatenate([corner_vals[2:3], lo_in_v, corner_vals[3:4]])
    lower = (
        np.concatenate([mouth.lower_inner, corners[:2], lo_out, jaw_pts, cheek_pts]),
        np.concatenate([lo_travel, corner_vals[:2], lo_out_v, jaw_v, cheek_v]),
    )
    # The cheeks belong to both sides: beyond the corners the seam blends the two.
    upper = (
        np.concatenate([mouth.upper_inner, corners[:2], up_out, still, cheek_pts]),
        np.concatenate([up_travel, corner_vals[:2], up_out_v, np.zeros_like(still), cheek_v]),
    )
    opening = lo_travel[:, 1] - up_travel[:, 1]
    field = _split_field(upper, lower, anchors, region, seam, reach=opening + SEAM_REACH_PX)
    return field, up_travel, lo_travel


@dataclass(frozen=True)
class Closing:
    """How an open-mouthed photo is brought to its closed rest pose."""

    offsets: np.ndarray
    """Static backward sample offsets over the expression region, (h, w, 2)."""
    landmarks: FaceLandmarks
    """The photo's landmarks where the closed face shows them: every other field is built on
    these, so the lower lip, chin and jaw line are moved from where they rest, not from where
    the photo had them."""


def close_field(
    lm: FaceLandmarks, mouth: MouthGeometry, region: Region, anchors: np.ndarray
) -> Closing | None:
    """The closed rest pose of an open-mouthed photo (None for a closed mouth).

    The upper lip comes down a little and the jaw rises the rest of the way, the lower lip,
    chin, jaw line and cheeks with it: a mouth closing, not two lips stretched over the gap.
    Each lip's inner edge is carried a little past the seam, so what lay between the lips
    (teeth, the tongue) is covered, and a photo's lower teeth or tongue do not come back when
    the jaw opens again.
    """
    if not mouth.rest_gap.any():
        return None
    gap = mouth.rest_gap
    over = np.where(gap > 0, gap * CLOSE_OVERSHOOT + CLOSE_MARGIN_PX, 0.0)
    down = np.minimum(CLOSE_UPPER_SHARE * gap, CLOSE_UPPER_MAX * lm.face_height)
    rise = gap - down
    up_in = _points(lm, UPPER_INNER_LIP)
    lo_in = _points(lm, LOWER_INNER_LIP)
    up_out = _points(lm, UPPER_OUTER_LIP)
    lo_out = _points(lm, LOWER_OUTER_LIP)
    middle = float(rise[len(rise) // 2] + over[len(over) // 2])
    jaw_pts, jaw_v = _jaw_line(
        lm, -middle, with_lip=True, chin_follow=CLOSE_CHIN_FOLLOW, side_power=CLOSE_JAW_SIDES
    )
    # The cheeks beside a closing mouth follow it twice as far as they follow a speaking jaw:
    # the chin rises far, and skin left behind beside it would fold along the jaw line.
    cheek_pts, cheek_v = _cheeks(lm, mouth, -CLOSE_CHEEK_GAIN * middle)
    still = _points(lm, NOSE_AND_CHEEKS)

    def vertical(values: np.ndarray) -> np.ndarray:
        return np.stack([np.zeros(len(values)), values], axis=1)

    # The cheeks belong to both sides: beyond the corners the seam blends the two.
    upper = (
        np.concatenate([up_in, up_out, still, cheek_pts]),
        np.concatenate(
            [
                vertical(down + over),
                # Inner and outer lip points pair up by index, corner to corner (by x they
                # need not be in order on a face seen from the side).
                vertical(down + over),
                np.zeros_like(still),
                cheek_v,
            ]
        ),
    )
    # Below the inner lip, points that lie close together travel alike: on a face seen from
    # the side the lip's outer edge, the chin and the far jaw line crowd together, and
    # different travels between them tear the skin.
    around = np.concatenate([lo_out, jaw_pts, cheek_pts])
    travel = np.concatenate([vertical(-(rise + over)), jaw_v, cheek_v])
    travel[:, 1] = _neighbourhood_mean(around, travel[:, 1], JAW_NEIGHBOURS * lm.face_height)
    lower = (
        np.concatenate([lo_in, around]),
        np.concatenate([vertical(-(rise + over)), travel]),
    )
    seam = seam_weight(mouth, region)
    reach = gap + SEAM_REACH_PX
    f_up, f_lo = _split_forward(upper, lower, anchors, region, reach)
    offsets = backward(f_up) * (1.0 - seam[..., None]) + backward(f_lo) * seam[..., None]
    return Closing(offsets, _closed_landmarks(lm, mouth, region, seam, (f_up, f_lo)))


def _closed_landmarks(
    lm: FaceLandmarks,
    mouth: MouthGeometry,
    region: Region,
    seam: np.ndarray,
    forward: tuple[np.ndarray, np.ndarray],
) -> FaceLandmarks:
    """Every landmark moved by its side's forward field; the inner lips onto the seam."""
    pts = lm.points.astype(np.float64).copy()
    local = pts[:, :2] - np.array([region.x0, region.y0])
    col = np.clip(np.round(local[:, 0]).astype(int), 0, region.w - 1)
    row = np.clip(np.round(local[:, 1]).astype(int), 0, region.h - 1)
    below = seam[row, col] > 0.5
    for field, side in ((forward[0], ~below), (forward[1], below)):
        moved = cv2.remap(
            field,
            local[:, 0:1].astype(np.float32),
            local[:, 1:2].astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )[:, 0, :]
        pts[side, :2] += moved[side]
    pts[list(UPPER_INNER_LIP), :2] = mouth.upper_inner
    pts[list(LOWER_INNER_LIP), :2] = mouth.lower_inner
    return FaceLandmarks(pts.astype(np.float32))


def compose_jaw(
    jaw: np.ndarray, closing: Closing, lm: FaceLandmarks, mouth: MouthGeometry, region: Region
) -> np.ndarray:
    """The jaw's offsets on a closed photo, corrected for the closing away from the mouth.

    A frame samples x + B_close(x) + jaw * B_jaw(x); the exact pose samples the closing where
    the jaw moved x to, B_close(x + B_jaw(x)). Around the lips the two agree (the lower lip
    and the chin under it rise as one when the photo is closed), but along the jaw line and
    under the chin, where the closing fades out, the plain sum would tear the skin: there the
    difference is added to the jaw's field (exact at jaw = 1, linear between). Over the mouth
    and the lower lip's way down it is left out: there the jaw's offsets cross the seam.
    """
    h, w = jaw.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    moved = cv2.remap(
        closing.offsets,
        gx + jaw[..., 0],
        gy + jaw[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    seam_y = float(mouth.upper_inner[:, 1].mean()) - region.y0
    lip_bottom = float(lm.xy[LOWER_OUTER_LIP[5]][1]) - region.y0
    reach = lip_bottom - seam_y + jaw_gap(lm, mouth)
    rx = (gx - (mouth.centre_x - region.x0)) / (mouth.half_width * 1.3)
    ry = np.where(gy < seam_y, (gy - seam_y) / max(0.3 * reach, 1.0), (gy - seam_y) / reach)
    weight = _smoothstep((np.sqrt(rx**2 + ry**2) - 1.0) / 0.6)[..., None]
    return np.ascontiguousarray(jaw + weight * (moved - closing.offsets), dtype=np.float32)


def width_field(
    lm: FaceLandmarks, mouth: MouthGeometry, region: Region, anchors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Forward field for width = +1 (spread; -1 rounds) and the travel of the inner lips.

    Spreading pulls the corners out and thins the lips; rounding (-1) draws the corners in
    and pushes the lips out, so they look fuller.
    """
    mouth_w = 2.0 * mouth.half_width
    span = mouth_w * WIDTH_GAIN
    inner = mouth.upper_inner
    up_out = _points(lm, UPPER_OUTER_LIP)
    lo_out = _points(lm, LOWER_OUTER_LIP)[1:-1]

    def along(pts: np.ndarray, towards_seam: float) -> np.ndarray:
        rel = (pts[:, 0] - mouth.centre_x) / max(mouth.half_width, 1.0)
        thin = towards_seam * POUT * mouth_w * np.clip(1.0 - rel**2, 0.0, 1.0)
        return np.stack([rel * span / 2.0, -(rel**2) * span * 0.12 + thin], axis=1)

    cheeks = _points(lm, (206, 426, 216, 436, *MOUTH_CORNERS))
    crel = (cheeks[:, 0] - mouth.centre_x) / max(mouth.half_width, 1.0)
    cvals = np.stack([np.sign(crel) * span * 0.3, np.zeros(len(cheeks))], axis=1)
    still = _points(lm, (1, 2, 98, 327, *CHIN_MIDLINE[2:]))
    pts = np.concatenate([inner, up_out, lo_out, cheeks, still, anchors])
    values = np.concatenate(
        [
            along(inner, 0.0),
            along(up_out, 1.0),
            along(lo_out, -1.0),
            cvals,
            np.zeros_like(still),
            np.zeros_like(anchors),
        ]
    )
    field = _interpolate(pts, values, region)
    return field, along(inner, 0.0)


def smile_degree(lm: FaceLandmarks) -> float:
    """How far the photo's mouth corners sit above the lips' middle, over the mouth's width."""
    corners = _points(lm, MOUTH_CORNERS)
    middle = _points(lm, (13, 14)).mean(axis=0)
    width = max(float(abs(corners[1, 0] - corners[0, 0])), 1.0)
    return max(float(middle[1] - corners[:, 1].mean()) / width, 0.0)


def smile_field(
    lm: FaceLandmarks,
    mouth: MouthGeometry,
    region: Region,
    anchors: np.ndarray,
    degree: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward field for smile = +1 (corners up and out, cheeks up) and the inner lips' travel.

    Motion drives it negative while the person talks: the photo's smile relaxes (more so the
    broader it is) and returns in pauses. `degree` is the photo's smile_degree where `lm`
    are the landmarks of its closed rest pose (the lips' middle moved).
    """
    mouth_w = 2.0 * mouth.half_width
    degree = smile_degree(lm) if degree is None else degree
    lift = mouth_w * (SMILE_BASE + SMILE_GAIN * degree)

    def corner_pull(pts: np.ndarray) -> np.ndarray:
        rel = np.clip((pts[:, 0] - mouth.centre_x) / max(mouth.half_width, 1.0), -1.2, 1.2)
        weight = np.abs(rel) ** 2
        return np.stack([np.sign(rel) * 0.35 * lift * weight, -lift * weight], axis=1)

    lips = np.concatenate(
        [mouth.upper_inner, mouth.lower_inner[1:-1], _points(lm, UPPER_OUTER_LIP)]
    )
    lips = np.concatenate([lips, _points(lm, LOWER_OUTER_LIP)[1:-1]])
    folds = _points(lm, NASOLABIAL + LOWER_CHEEKS[:4])
    malar = _points(lm, MALAR)
    still = _points(lm, (1, 2, 4, 98, 327, *CHIN_MIDLINE[2:], *EYE_A_LOWER, *EYE_B_LOWER))
    fold_v = corner_pull(folds) * 0.45
    malar_v = np.stack([np.zeros(len(malar)), np.full(len(malar), -0.25 * lift)], axis=1)
    pts = np.concatenate([lips, folds, malar, still, anchors])
    values = np.concatenate(
        [corner_pull(lips), fold_v, malar_v, np.zeros_like(still), np.zeros_like(anchors)]
    )
    field = _interpolate(pts, values, region)
    return field, corner_pull(mouth.upper_inner)


def gaze_field(lm: FaceLandmarks, region: Region, anchors: np.ndarray, axis: int) -> np.ndarray:
    """Forward field that moves both irises by gaze = 1 along `axis` (0: x, 1: y); lids stay.

    The field is cut off smoothly just outside each eye, so nothing else on the face moves.
    """
    eyes = ((IRIS_A, EYE_A_UPPER, EYE_A_LOWER), (IRIS_B, EYE_B_UPPER, EYE_B_LOWER))
    pts, vals = [anchors], [np.zeros_like(anchors)]
    window = np.zeros((region.h, region.w), np.float64)
    ys = region.y0 + np.arange(region.h, dtype=np.float64)[:, None]
    xs = region.x0 + np.arange(region.w, dtype=np.float64)[None, :]
    for iris, upper, lower in eyes:
        ring = _points(lm, iris)
        radius = float(np.linalg.norm(ring[1:] - ring[0], axis=1).mean())
        shift = np.zeros(2)
        shift[axis] = GAZE_SHIFT[axis] * radius
        lids = _points(lm, upper + lower)
        centre = lids.mean(axis=0)
        # A second ring just outside the lids keeps the skin around the eye still.
        outside = centre + (lids - centre) * 1.35
        pts += [ring, lids, outside]
        vals += [np.tile(shift, (len(ring), 1)), np.zeros_like(lids), np.zeros_like(outside)]
        half = np.maximum(np.ptp(lids, axis=0) / 2.0, 1.0)
        r = np.sqrt(((xs - centre[0]) / half[0]) ** 2 + ((ys - centre[1]) / (half[1] + 2.0)) ** 2)
        window = np.maximum(window, 1.0 - _smoothstep((r - 1.0) / 0.35))
    field = _interpolate(np.concatenate(pts), np.concatenate(vals), region, smoothing=0.0)
    return np.ascontiguousarray(field * window[..., None].astype(np.float32))


def brow_field(lm: FaceLandmarks, region: Region, anchors: np.ndarray) -> np.ndarray:
    """Forward field for brows = 1: brows and forehead lift, eyes stay."""
    lift = BROW_LIFT * lm.face_height
    brows = _points(lm, BROW_A + BROW_B)
    forehead = _points(lm, UPPER_FOREHEAD)
    lids = _points(lm, EYE_A_UPPER[1:-1] + EYE_B_UPPER[1:-1])
    eyes = _points(lm, EYE_A_LOWER + EYE_B_LOWER + (468, 473))
    still = _points(lm, (1, 2, 4, 6, 13, 14, 61, 291, CHIN))
    pts = np.concatenate([brows, forehead, lids, eyes, still, anchors])
    values = np.concatenate(
        [
            np.tile([0.0, -lift], (len(brows), 1)),
            np.tile([0.0, -0.55 * lift], (len(forehead), 1)),
            np.tile([0.0, -0.2 * lift], (len(lids), 1)),
            np.zeros((len(eyes) + len(still) + len(anchors), 2)),
        ]
    )
    return _interpolate(pts, values, region)


def head_fields(
    lm: FaceLandmarks, width: int, height: int, matte: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], Region]:
    """Forward fields per radian of yaw, pitch and roll at 1/HEAD_SCALE resolution.

    With a person `matte` (0..1 per pixel) the hair and ears move with the head as far as
    they reach while the background behind them stays; without, an ellipse around the face.

    Fields are cropped to the blocks where the head moves at all; the Region says where
    those blocks lie in the full frame (it may overhang the frame's right or bottom edge).
    """
    sw, sh = (width + HEAD_SCALE - 1) // HEAD_SCALE, (height + HEAD_SCALE - 1) // HEAD_SCALE
    xs = (np.arange(sw) + 0.5) * HEAD_SCALE - 0.5
    ys = (np.arange(sh) + 0.5) * HEAD_SCALE - 0.5
    gx, gy = np.meshgrid(xs, ys)
    x0, y0, x1, y1 = lm.oval_box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 - 0.08 * (y1 - y0)
    ax, ay = (x1 - x0) / 2.0, (y1 - y0) / 2.0
    r = np.sqrt(((gx - cx) / ax) ** 2 + ((gy - cy) / (ay * 1.1)) ** 2)
    if matte is None:
        weight = 1.0 - _smoothstep((r - 1.1) / 0.55)
    else:
        small = cv2.resize(matte.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
        # A soft matte edge: the background next to the hair stretches a little, never tears.
        small = cv2.GaussianBlur(small, (0, 0), 1.0).astype(np.float64)
        reach = 1.0 - _smoothstep((r - 1.2) / (HEAD_MATTE_SCALE - 1.2))
        core = 1.0 - _smoothstep((r - 0.9) / 0.3)
        weight = np.maximum(core, reach * small)
    chin_y = float(lm.xy[CHIN][1])
    fh = lm.face_height
    weight *= 1.0 - _smoothstep((gy - chin_y) / (0.35 * fh))
    oval = _points(lm, FACE_OVAL)
    depth = _depth_map(lm, gx, gy, oval)
    radius = HEAD_AXIS_DEPTH * (x1 - x0)
    pivot = np.array([cx, chin_y + 0.3 * fh])
    yaw = np.stack([(radius + depth) * weight, np.zeros_like(weight)], axis=-1)
    pitch = np.stack([np.zeros_like(weight), (0.5 * radius + depth) * weight], axis=-1)
    roll = np.stack([-(gy - pivot[1]) * weight, (gx - pivot[0]) * weight], axis=-1)
    moving = np.argwhere(weight > 1e-4)
    if len(moving) == 0:
        moving = np.array([[0, 0]])
    (by0, bx0), (by1, bx1) = moving.min(axis=0), moving.max(axis=0) + 1
    crop = (slice(by0, by1), slice(bx0, bx1))
    support = Region(
        int(bx0) * HEAD_SCALE,
        int(by0) * HEAD_SCALE,
        int(bx1 - bx0) * HEAD_SCALE,
        int(by1 - by0) * HEAD_SCALE,
    )
    named = {"yaw": yaw, "pitch": pitch, "roll": roll}
    return {k: np.ascontiguousarray(v[crop]).astype(np.float32) for k, v in named.items()}, support


def _depth_map(lm: FaceLandmarks, gx: np.ndarray, gy: np.ndarray, oval: np.ndarray) -> np.ndarray:
    """How far each point stands out of the face's outline towards the camera (pixels)."""
    z = lm.points[:, 2].astype(np.float64)
    edge_z = float(z[list(FACE_OVAL)].mean())
    rel = np.maximum(edge_z - z, 0.0)
    pts = np.concatenate([lm.xy.astype(np.float64), oval])
    vals = np.concatenate([rel, np.zeros(len(oval))])
    depth = griddata(pts, vals, (gx, gy), method="linear", fill_value=0.0)
    return cv2.GaussianBlur(np.nan_to_num(depth).astype(np.float32), (0, 0), 1.5).astype(np.float64)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)

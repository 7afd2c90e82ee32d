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
from scipy.interpolate import RBFInterpolator

from facecast.face import (
    CHIN,
    CHIN_MIDLINE,
    EAR_LEVEL,
    INNER_CORNERS,
    JAW_PAIRS,
    LOWER_CHEEKS,
    LOWER_INNER_LIP,
    LOWER_OUTER_LIP,
    MOUTH_CORNERS,
    NASOLABIAL,
    NOSE_AND_CHEEKS,
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
    tx = smoothstep(np.minimum(np.arange(region.w), region.w - 1 - np.arange(region.w)) / margin)
    ty = smoothstep(np.minimum(np.arange(region.h), region.h - 1 - np.arange(region.h)) / margin)
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


def interpolate(
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
    f_up, f_lo = split_forward(upper, lower, anchors, region, reach)
    f_up, f_lo = unfold(f_up), unfold(f_lo)
    # Each side is smooth and invertible on its own; the seam picks a side per output pixel.
    return backward(f_up) * (1.0 - seam[..., None]) + backward(f_lo) * seam[..., None]


def split_forward(
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
    f_up = interpolate(
        np.concatenate([upper[0], anchors]), np.concatenate([upper[1], zeros]), region
    )
    f_lo = interpolate(
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
        weight = smoothstep((UNFOLD_STRETCH - stretch) / UNFOLD_STRETCH)
        weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), UNFOLD_SIGMA)
        weight = np.clip(weight * 3.0, 0.0, 1.0)[..., None]
        blurred = cv2.GaussianBlur(field, (0, 0), UNFOLD_SIGMA)
        field = field * (1.0 - weight) + blurred * weight
    return np.ascontiguousarray(field, dtype=np.float32)


def points(lm: FaceLandmarks, ids: tuple[int, ...] | list[int]) -> np.ndarray:
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
    ears = points(lm, EAR_LEVEL)
    pivot_y = float(ears[:, 1].mean())
    chin = lm.xy[CHIN].astype(np.float64)
    cx = float(ears[:, 0].mean())
    half_w = max(float(abs(ears[1, 0] - ears[0, 0])) / 2.0, 1.0)
    down = np.clip((pts[:, 1] - pivot_y) / max(float(chin[1]) - pivot_y, 1.0), 0.0, 1.2)
    side = np.clip(np.abs(pts[:, 0] - cx) / half_w, 0.0, 1.0)
    return np.sqrt(down) * (1.0 - JAW_LATERAL_FALLOFF * side**2)


def jaw_line(
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
    pts = points(lm, ids)
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
    share = neighbourhood_mean(pts, share, JAW_NEIGHBOURS * lm.face_height)
    still = points(lm, [i for pair in JAW_STILL for i in pair])
    vals = np.stack([np.zeros(len(pts)), share * travel], axis=1)
    return np.concatenate([pts, still]), np.concatenate([vals, np.zeros_like(still)])


def neighbourhood_mean(pts: np.ndarray, values: np.ndarray, radius: float) -> np.ndarray:
    """`values` averaged over the points within about `radius` of each point (Gaussian)."""
    dist2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=-1)
    weights = np.exp(-dist2 / (2.0 * max(radius, 1e-3) ** 2))
    return np.asarray(weights @ values / weights.sum(axis=1), dtype=np.float64)


def cheeks(lm: FaceLandmarks, mouth: MouthGeometry, travel: float) -> tuple[np.ndarray, np.ndarray]:
    """Cheeks beside and below the mouth follow the jaw part of the way, a little inwards."""
    pts = points(lm, LOWER_CHEEKS + NASOLABIAL)
    # Squared: the cheeks high up beside the nose barely move.
    share = jaw_share(lm, pts) ** 2 * CHEEK_FOLLOW
    inward = -np.sign(pts[:, 0] - mouth.centre_x) * 0.1 * share * travel
    return pts, np.stack([inward, share * travel], axis=1)


def jaw_field(
    lm: FaceLandmarks, mouth: MouthGeometry, region: Region, anchors: np.ndarray, seam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample offsets for jaw = 1 and the travel of the inner lip points (upper, lower)."""
    gap = jaw_gap(lm, mouth)
    corners = points(lm, MOUTH_CORNERS + INNER_CORNERS)
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
    lo_out = points(lm, LOWER_OUTER_LIP[1:-1])
    lo_out_v = drawn_in(lo_out, gap * 0.97 * _opening_profile(lo_out[:, 0], mouth, 0.3))
    # The chin goes down with the lower lip (the mandible carries both): no fold under the lip.
    jaw_pts, jaw_v = jaw_line(lm, 0.97 * gap, with_lip=True)
    cheek_pts, cheek_v = cheeks(lm, mouth, gap)
    rise = UPPER_LIP_RISE * gap
    up_in = mouth.upper_inner[1:-1]
    up_in_v = drawn_in(up_in, -rise * _bump(up_in[:, 0], mouth, 0.0))
    up_out = points(lm, UPPER_OUTER_LIP[1:-1])
    up_out_v = drawn_in(up_out, -0.6 * rise * _bump(up_out[:, 0], mouth, 0.0))
    still = points(lm, NOSE_AND_CHEEKS)
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


def smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)

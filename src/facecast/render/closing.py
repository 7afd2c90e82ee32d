"""The field that closes a photo's open mouth (a tongue, a laugh, a word caught midway) onto
its lips' meeting line, and how it composes with the jaw's opening."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.face import (
    LOWER_INNER_LIP,
    LOWER_OUTER_LIP,
    NOSE_AND_CHEEKS,
    UPPER_INNER_LIP,
    UPPER_OUTER_LIP,
    FaceLandmarks,
)
from facecast.render.fields import (
    CLOSE_UPPER_MAX,
    CLOSE_UPPER_SHARE,
    JAW_NEIGHBOURS,
    SEAM_REACH_PX,
    MouthGeometry,
    Region,
    backward,
    cheeks,
    jaw_gap,
    jaw_line,
    neighbourhood_mean,
    points,
    seam_weight,
    smoothstep,
    split_forward,
)

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
    up_in = points(lm, UPPER_INNER_LIP)
    lo_in = points(lm, LOWER_INNER_LIP)
    up_out = points(lm, UPPER_OUTER_LIP)
    lo_out = points(lm, LOWER_OUTER_LIP)
    middle = float(rise[len(rise) // 2] + over[len(over) // 2])
    jaw_pts, jaw_v = jaw_line(
        lm, -middle, with_lip=True, chin_follow=CLOSE_CHIN_FOLLOW, side_power=CLOSE_JAW_SIDES
    )
    # The cheeks beside a closing mouth follow it twice as far as they follow a speaking jaw:
    # the chin rises far, and skin left behind beside it would fold along the jaw line.
    cheek_pts, cheek_v = cheeks(lm, mouth, -CLOSE_CHEEK_GAIN * middle)
    still = points(lm, NOSE_AND_CHEEKS)

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
    travel[:, 1] = neighbourhood_mean(around, travel[:, 1], JAW_NEIGHBOURS * lm.face_height)
    lower = (
        np.concatenate([lo_in, around]),
        np.concatenate([vertical(-(rise + over)), travel]),
    )
    seam = seam_weight(mouth, region)
    reach = gap + SEAM_REACH_PX
    f_up, f_lo = split_forward(upper, lower, anchors, region, reach)
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
    weight = smoothstep((np.sqrt(rx**2 + ry**2) - 1.0) / 0.6)[..., None]
    return np.ascontiguousarray(jaw + weight * (moved - closing.offsets), dtype=np.float32)

"""The lips' own displacement fields: rounding and spreading the mouth (width) and a photo's
smile relaxing or returning, with how strongly the photo smiles."""

from __future__ import annotations

import numpy as np

from facecast.face import (
    CHIN_MIDLINE,
    EYE_A_LOWER,
    EYE_B_LOWER,
    LOWER_CHEEKS,
    LOWER_OUTER_LIP,
    MALAR,
    MOUTH_CORNERS,
    NASOLABIAL,
    UPPER_OUTER_LIP,
    FaceLandmarks,
)
from facecast.render.fields import MouthGeometry, Region, interpolate, points

WIDTH_GAIN = 0.2
"""Corner travel at width = +-1, as a fraction of the mouth's width."""


POUT = 0.05
"""Outer lip edges move this fraction of the mouth's width away from the seam at width = -1
(rounded lips pushed forward look fuller) and towards it at +1 (spread lips thin out)."""


SMILE_BASE = 0.02
"""Corner travel at smile = 1 for a face that does not smile, fraction of the mouth width..."""


SMILE_GAIN = 0.7
"""...plus this share of how far the photo's corners already sit above the lips' middle."""


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
    up_out = points(lm, UPPER_OUTER_LIP)
    lo_out = points(lm, LOWER_OUTER_LIP)[1:-1]

    def along(pts: np.ndarray, towards_seam: float) -> np.ndarray:
        rel = (pts[:, 0] - mouth.centre_x) / max(mouth.half_width, 1.0)
        thin = towards_seam * POUT * mouth_w * np.clip(1.0 - rel**2, 0.0, 1.0)
        return np.stack([rel * span / 2.0, -(rel**2) * span * 0.12 + thin], axis=1)

    cheeks = points(lm, (206, 426, 216, 436, *MOUTH_CORNERS))
    crel = (cheeks[:, 0] - mouth.centre_x) / max(mouth.half_width, 1.0)
    cvals = np.stack([np.sign(crel) * span * 0.3, np.zeros(len(cheeks))], axis=1)
    still = points(lm, (1, 2, 98, 327, *CHIN_MIDLINE[2:]))
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
    field = interpolate(pts, values, region)
    return field, along(inner, 0.0)


def smile_degree(lm: FaceLandmarks) -> float:
    """How far the photo's mouth corners sit above the lips' middle, over the mouth's width."""
    corners = points(lm, MOUTH_CORNERS)
    middle = points(lm, (13, 14)).mean(axis=0)
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

    lips = np.concatenate([mouth.upper_inner, mouth.lower_inner[1:-1], points(lm, UPPER_OUTER_LIP)])
    lips = np.concatenate([lips, points(lm, LOWER_OUTER_LIP)[1:-1]])
    folds = points(lm, NASOLABIAL + LOWER_CHEEKS[:4])
    malar = points(lm, MALAR)
    still = points(lm, (1, 2, 4, 98, 327, *CHIN_MIDLINE[2:], *EYE_A_LOWER, *EYE_B_LOWER))
    fold_v = corner_pull(folds) * 0.45
    malar_v = np.stack([np.zeros(len(malar)), np.full(len(malar), -0.25 * lift)], axis=1)
    pts = np.concatenate([lips, folds, malar, still, anchors])
    values = np.concatenate(
        [corner_pull(lips), fold_v, malar_v, np.zeros_like(still), np.zeros_like(anchors)]
    )
    field = interpolate(pts, values, region)
    return field, corner_pull(mouth.upper_inner)

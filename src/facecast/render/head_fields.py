"""Displacement fields beyond the mouth: the gaze (irises), the brows, and the head's turn
and nod with the neck and hair that follow (a depth map from the landmarks)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import griddata

from facecast.face import (
    BROW_A,
    BROW_B,
    CHIN,
    EYE_A_LOWER,
    EYE_A_UPPER,
    EYE_B_LOWER,
    EYE_B_UPPER,
    FACE_OVAL,
    IRIS_A,
    IRIS_B,
    UPPER_FOREHEAD,
    FaceLandmarks,
)
from facecast.render.fields import Region, interpolate, points, smoothstep

GAZE_SHIFT = (0.25, 0.1)
"""Iris travel at gaze_x / gaze_y = 1, as a share of the iris radius."""


HEAD_MATTE_SCALE = 1.9
"""The head field reaches this many face half-extents out, within the person's matte."""


BROW_LIFT = 0.035
"""Brow travel at brows = 1, fraction of face height."""


HEAD_SCALE = 4
"""Head-motion fields are kept at 1/HEAD_SCALE resolution (they are smooth)."""


HEAD_AXIS_DEPTH = 0.55
"""The head turns about an axis this many face widths behind the face."""


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
        ring = points(lm, iris)
        radius = float(np.linalg.norm(ring[1:] - ring[0], axis=1).mean())
        shift = np.zeros(2)
        shift[axis] = GAZE_SHIFT[axis] * radius
        lids = points(lm, upper + lower)
        centre = lids.mean(axis=0)
        # A second ring just outside the lids keeps the skin around the eye still.
        outside = centre + (lids - centre) * 1.35
        pts += [ring, lids, outside]
        vals += [np.tile(shift, (len(ring), 1)), np.zeros_like(lids), np.zeros_like(outside)]
        half = np.maximum(np.ptp(lids, axis=0) / 2.0, 1.0)
        r = np.sqrt(((xs - centre[0]) / half[0]) ** 2 + ((ys - centre[1]) / (half[1] + 2.0)) ** 2)
        window = np.maximum(window, 1.0 - smoothstep((r - 1.0) / 0.35))
    field = interpolate(np.concatenate(pts), np.concatenate(vals), region, smoothing=0.0)
    return np.ascontiguousarray(field * window[..., None].astype(np.float32))


def brow_field(lm: FaceLandmarks, region: Region, anchors: np.ndarray) -> np.ndarray:
    """Forward field for brows = 1: brows and forehead lift, eyes stay."""
    lift = BROW_LIFT * lm.face_height
    brows = points(lm, BROW_A + BROW_B)
    forehead = points(lm, UPPER_FOREHEAD)
    lids = points(lm, EYE_A_UPPER[1:-1] + EYE_B_UPPER[1:-1])
    eyes = points(lm, EYE_A_LOWER + EYE_B_LOWER + (468, 473))
    still = points(lm, (1, 2, 4, 6, 13, 14, 61, 291, CHIN))
    pts = np.concatenate([brows, forehead, lids, eyes, still, anchors])
    values = np.concatenate(
        [
            np.tile([0.0, -lift], (len(brows), 1)),
            np.tile([0.0, -0.55 * lift], (len(forehead), 1)),
            np.tile([0.0, -0.2 * lift], (len(lids), 1)),
            np.zeros((len(eyes) + len(still) + len(anchors), 2)),
        ]
    )
    return interpolate(pts, values, region)


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
        weight = 1.0 - smoothstep((r - 1.1) / 0.55)
    else:
        small = cv2.resize(matte.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
        # A soft matte edge: the background next to the hair stretches a little, never tears.
        small = cv2.GaussianBlur(small, (0, 0), 1.0).astype(np.float64)
        reach = 1.0 - smoothstep((r - 1.2) / (HEAD_MATTE_SCALE - 1.2))
        core = 1.0 - smoothstep((r - 0.9) / 0.3)
        weight = np.maximum(core, reach * small)
    chin_y = float(lm.xy[CHIN][1])
    fh = lm.face_height
    weight *= 1.0 - smoothstep((gy - chin_y) / (0.35 * fh))
    oval = points(lm, FACE_OVAL)
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

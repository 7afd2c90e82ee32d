"""Restore a small face before rigging: super-resolve the face crop with Real-ESRGAN x4plus.

A face whose crop has fewer pixels than the output needs would otherwise be blown up with
bicubic interpolation, which is blurry. The crop the renderer will use is cut (with a margin,
so the network sees context), super-resolved four times, and handed on with the landmarks
moved into its coordinates. It runs once per photo (a few seconds on the CPU).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from facecast.face import CROP_FACE_SCALE, FaceLandmarks
from facecast.options import RenderOptions

logger = logging.getLogger(__name__)

RESTORE_BELOW = 0.4
"""Restore when the face crop is smaller than this share of the output edge (a 2.5x
blow-up): below that, bicubic is blurry; above it, the GAN's texture changes more than it
adds (the test portraits at 512 px, crops of ~255 px, stay as they are)."""
RESTORE_MARGIN = 0.15
"""Context around the crop, as a share of its side."""
MAX_INPUT_SIDE = 256
"""Longest side fed to x4plus (cost grows with its square: ~3 s at 128 px on 2 cores)."""
X4 = 4


def crop_side(landmarks: FaceLandmarks, shape: tuple[int, ...]) -> float:
    """The side of the square the portrait crop will take from the photo (see face.py)."""
    _, y0, _, y1 = landmarks.oval_box
    return float(min(CROP_FACE_SCALE * (y1 - y0), shape[0], shape[1]))


def needs_restore(landmarks: FaceLandmarks, shape: tuple[int, ...], size: int) -> bool:
    """True when the face crop would be enlarged more than 1 / RESTORE_BELOW times."""
    return crop_side(landmarks, shape) < RESTORE_BELOW * size


def restore_region(
    rgb: np.ndarray, landmarks: FaceLandmarks
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The box (x0, y0, x1, y1) around the face crop to super-resolve, and its pixels."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = landmarks.oval_box
    side = crop_side(landmarks, rgb.shape) * (1 + 2 * RESTORE_MARGIN)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (
        max(0, int(cx - side / 2)),
        max(0, int(cy - side / 2)),
        min(w, int(np.ceil(cx + side / 2))),
        min(h, int(np.ceil(cy + side / 2))),
    )
    return box, rgb[box[1] : box[3], box[0] : box[2]]


def restore_face(
    rgb: np.ndarray, landmarks: FaceLandmarks, upscale4: object, size: int = 512
) -> tuple[np.ndarray, FaceLandmarks]:
    """The super-resolved face region and the landmarks moved onto it.

    `upscale4` maps a (1, H, W, 3) uint8 batch to (1, 4H, 4W, 3) (Real-ESRGAN x4plus). The
    region is fed at no more than the `size` px output needs (cost and memory grow with the
    square of the input).
    """
    (bx0, by0, _, _), region = restore_region(rgb, landmarks)
    needed = size * (1 + 2 * RESTORE_MARGIN) / X4
    shrink = min(1.0, min(MAX_INPUT_SIDE, needed) / max(region.shape[:2]))
    if shrink < 1.0:
        fed = (round(region.shape[1] * shrink), round(region.shape[0] * shrink))
        region = cv2.resize(region, fed, interpolation=cv2.INTER_AREA)
    assert callable(upscale4)
    big = upscale4(np.ascontiguousarray(region)[None])[0]
    scale = X4 * shrink
    moved = landmarks.transformed(scale, -bx0 * scale, -by0 * scale)
    logger.info("restored a small face: %dx%d -> %dx%d", *region.shape[1::-1], *big.shape[1::-1])
    return big, moved


def maybe_restore(
    rgb: np.ndarray, landmarks: FaceLandmarks, options: RenderOptions
) -> tuple[np.ndarray, FaceLandmarks]:
    """`rgb` and `landmarks`, with a too-small face restored when an upscaler can do it."""
    if not options.restore or options.shape == "full":
        return rgb, landmarks
    if not needs_restore(landmarks, rgb.shape, options.size):
        return rgb, landmarks
    from facecast import post

    for name in post.of_kind("upscale"):
        backend = post.REGISTRY.get(name)
        face_upscaler = getattr(backend, "face_upscaler", None)
        if face_upscaler is not None:
            return restore_face(rgb, landmarks, face_upscaler(), options.size)
    return rgb, landmarks

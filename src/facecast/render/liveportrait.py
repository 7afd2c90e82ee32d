"""LivePortrait driven by facecast's own motion curves (no driving video, no InsightFace).

Per photo (`prepare`): the face is cropped from mediapipe's landmarks (box x 2.3, shifted up),
the appearance extractor F gives the 3-D feature volume and the motion extractor M gives the
source pose, expression, scale, translation and canonical keypoints; x_s follows. Per frame:
the head curves are added to the source angles for the driving rotation, the jaw curve sets
the lip-retargeting target ratio and the blinks the eye-retargeting target ratio (their
deltas are cached per quantised ratio), stitching corrects the result, the warping+SPADE
network W+G renders the 512 px face, and a feathered mask pastes it back into the frame.

Operator files (FACECAST_MODELS_DIR/liveportrait/) are bound by position and every shape is
checked. On the CPU a frame costs seconds (docs/backends.md); long clips need force_cpu.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from facecast import accel
from facecast.accel import Shape
from facecast.audio import AudioTrack
from facecast.face import FaceLandmarks, Portrait
from facecast.motion import MotionFrame
from facecast.registry import Capabilities, Description, model_files

logger = logging.getLogger(__name__)

MODEL = "liveportrait"
LICENCE = "MIT (KwaiVGI/LivePortrait code and weights)"
SECONDS_PER_FRAME_CPU = 7.0
"""W+G on 2 cores (NEURAL-NOTES.md); F + M once per photo about 1 s more."""
GPU_BATCH = 8
N_KP = 21
NET_SIDE = 256
"""F and M see the crop at this size."""
OUT_SIDE = 512
"""W+G renders the face crop at this size."""
FEATURE_SHAPE = (32, 16, 64, 64)
BINS = 66
CROP_SCALE = 2.3
CROP_SHIFT_UP = 0.125
"""The crop centre moves up by this share of the crop side (upstream's vy_ratio)."""
LIP_OPEN = 0.5
"""Lip ratio at jaw = 1 (upstream's usable targets are 0..0.8)."""
SOURCE_MOUTH_OPEN = 0.03
"""A source lip ratio at or above this counts as open and is closed at jaw = 0."""
RATIO_STEP = 0.01
"""Retargeting deltas are cached per ratio rounded to this."""
FEATHER = 0.06
"""Paste-back mask fades over this share of the crop side."""
MASK_INSET = 0.08
"""The mask starts this share of the side inside the crop's edge (W+G's borders are weak)."""
# mediapipe mesh points for upstream's ratios (its own 203-point model is not used).
LIP_GAP = (13, 14)
MOUTH_CORNERS = (61, 291)
EYE_A = ((159, 145), (33, 133))
EYE_B = ((386, 374), (362, 263))

ANGLE: Shape = (None, BINS)
VECTOR: Shape = (None, 3 * N_KP)
FILES: dict[str, tuple[list[Shape], list[Shape]]] = {
    "appearance_feature_extractor.onnx": (
        [(None, 3, NET_SIDE, NET_SIDE)],
        [(None, *FEATURE_SHAPE)],
    ),
    "motion_extractor.onnx": (
        [(None, 3, NET_SIDE, NET_SIDE)],
        [ANGLE, ANGLE, ANGLE, (None, 3), VECTOR, (None, 1), VECTOR],
    ),
    "warping_spade.onnx": (
        [(None, *FEATURE_SHAPE), (None, N_KP, 3), (None, N_KP, 3)],
        [(None, 3, OUT_SIDE, OUT_SIDE)],
    ),
    "stitching.onnx": ([(None, 6 * N_KP)], [(None, 3 * N_KP + 2)]),
    "stitching_lip.onnx": ([(None, 3 * N_KP + 2)], [(None, 3 * N_KP)]),
    "stitching_eye.onnx": ([(None, 3 * N_KP + 3)], [(None, 3 * N_KP)]),
}
"""Each file's input and output shapes, by position (N: any batch)."""


def degrees_from_bins(bins: np.ndarray) -> np.ndarray:
    """Angle in degrees from 66 bin logits: softmax-weighted bin index x 3 - 97.5."""
    shifted = bins - bins.max(axis=-1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=-1, keepdims=True)
    return np.asarray(p @ np.arange(BINS, dtype=np.float64) * 3.0 - 97.5)


def rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """R = (Rz(roll) Ry(yaw) Rx(pitch))^T, angles in degrees (row-vector convention)."""
    p, y, r = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return np.asarray((rz @ ry @ rx).T)


@dataclass(frozen=True)
class SourceMotion:
    """What the motion extractor says about the photo."""

    pitch: float
    yaw: float
    roll: float
    t: np.ndarray  # (3,)
    exp: np.ndarray  # (21, 3)
    scale: float
    kp: np.ndarray  # (21, 3) canonical keypoints

    def keypoints(self, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> np.ndarray:
        """x = scale (kp R + exp), then + t in x and y, for the source angles plus these."""
        r = rotation(self.pitch + pitch, self.yaw + yaw, self.roll + roll)
        x = self.scale * (self.kp @ r + self.exp)
        x[:, :2] += self.t[:2]
        return np.asarray(x, np.float32)


def _distance(lm: FaceLandmarks, pair: tuple[int, int]) -> float:
    return float(np.linalg.norm(lm.xy[pair[0]] - lm.xy[pair[1]]))


def lip_ratio(lm: FaceLandmarks) -> float:
    """Inner-lip gap over mouth width (mediapipe stand-in for upstream's lip ratio)."""
    return _distance(lm, LIP_GAP) / max(_distance(lm, MOUTH_CORNERS), 1e-6)


def eye_ratios(lm: FaceLandmarks) -> tuple[float, float]:
    """Lid gap over eye width, per eye."""
    return tuple(  # type: ignore[return-value]
        _distance(lm, gap) / max(_distance(lm, width), 1e-6) for gap, width in (EYE_A, EYE_B)
    )


def crop_transform(lm: FaceLandmarks) -> np.ndarray:
    """2x3 affine from the photo to the OUT_SIDE face crop."""
    x0, y0, x1, y1 = lm.oval_box
    side = CROP_SCALE * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - CROP_SHIFT_UP * side
    s = OUT_SIDE / side
    return np.array([[s, 0, OUT_SIDE / 2 - s * cx], [0, s, OUT_SIDE / 2 - s * cy]], np.float32)


@lru_cache(maxsize=4)
def feather_mask(side: int) -> np.ndarray:
    """(side, side) float32 weights: 1 inside, fading to 0 well before the crop's edge."""
    inset, fade = round(MASK_INSET * side), max(1, round(FEATHER * side))
    ramp = np.clip((np.arange(side) + 0.5 - inset) / fade, 0, 1)
    edge = np.minimum(ramp, ramp[::-1])
    return np.asarray(np.outer(edge, edge), np.float32)


def to_net(image: np.ndarray, side: int) -> np.ndarray:
    """RGB uint8 -> 1x3xHxW float32 in [0, 1] at `side`."""
    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def _quantised(value: float) -> float:
    return round(value / RATIO_STEP) * RATIO_STEP


class Networks:
    """The six ONNX sessions, bound by position and shape-checked."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.sessions = {
            name: accel.checked_session(files[name], *shapes) for name, shapes in FILES.items()
        }
        # W+G exports often fix the batch at 1: batch only when it is free.
        first = self.sessions["warping_spade.onnx"].get_inputs()[0].shape[0]
        self.batched = not isinstance(first, int) or first != 1

    def run(self, name: str, *inputs: np.ndarray) -> list[np.ndarray]:
        sess = self.sessions[name]
        feed = dict(zip(accel.input_names(sess), inputs, strict=True))
        return list(sess.run(None, feed))


class LivePortraitAnimator:
    """A photo rigged for LivePortrait."""

    def __init__(self, nets: Networks, portrait: Portrait) -> None:
        self._nets = nets
        self._rgb = portrait.rgb
        lm = portrait.landmarks
        self._affine = crop_transform(lm)
        crop = cv2.warpAffine(
            portrait.rgb,
            self._affine,
            (OUT_SIDE, OUT_SIDE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        net_in = to_net(crop, NET_SIDE)
        (self._feature,) = nets.run("appearance_feature_extractor.onnx", net_in)
        pitch, yaw, roll, t, exp, scale, kp = nets.run("motion_extractor.onnx", net_in)
        self.source = SourceMotion(
            float(degrees_from_bins(pitch)[0]),
            float(degrees_from_bins(yaw)[0]),
            float(degrees_from_bins(roll)[0]),
            t[0].astype(np.float64),
            exp[0].reshape(N_KP, 3).astype(np.float64),
            float(scale[0, 0]),
            kp[0].reshape(N_KP, 3).astype(np.float64),
        )
        self.x_s = self.source.keypoints()
        self.lip_s = lip_ratio(lm)
        self.eyes_s = eye_ratios(lm)
        self._lip_cache: dict[float, np.ndarray] = {}
        self._eye_cache: dict[float, np.ndarray] = {}
        h, w = portrait.rgb.shape[:2]
        self._size = (w, h)
        self._paste_mask = cv2.warpAffine(
            feather_mask(OUT_SIDE),
            self._affine,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        )[..., None]

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def lip_target(self, jaw: float) -> float:
        """The lip ratio the jaw curve asks for (an open source mouth closes at jaw 0).

        The opening is quantised to RATIO_STEP so that deltas can be cached; jaw 0 gives
        the source's own ratio exactly (a closed source mouth stays as it is)."""
        base = self.lip_s if self.lip_s < SOURCE_MOUTH_OPEN else 0.0
        return base + _quantised(LIP_OPEN * max(0.0, jaw))

    def eye_target(self, blink_a: float, blink_b: float) -> float:
        """One eye ratio for both eyes (the eye net takes one): the source's, closed by blinks."""
        eyes = float(np.mean(self.eyes_s))
        blink = min(1.0, max(0.0, (blink_a + blink_b) / 2))
        return eyes - _quantised(eyes * blink)

    def _lip_delta(self, target: float) -> np.ndarray:
        if target not in self._lip_cache:
            feed = np.concatenate([self.x_s.reshape(-1), [self.lip_s, target]])[None]
            (delta,) = self._nets.run("stitching_lip.onnx", feed.astype(np.float32))
            self._lip_cache[target] = delta.reshape(N_KP, 3)
        return self._lip_cache[target]

    def _eye_delta(self, target: float) -> np.ndarray:
        if target not in self._eye_cache:
            feed = np.concatenate([self.x_s.reshape(-1), [*self.eyes_s, target]])[None]
            (delta,) = self._nets.run("stitching_eye.onnx", feed.astype(np.float32))
            self._eye_cache[target] = delta.reshape(N_KP, 3)
        return self._eye_cache[target]

    def driving_keypoints(self, values: dict[str, float]) -> np.ndarray:
        """x_d for one frame's channel values, before stitching."""
        x_d = self.source.keypoints(
            values.get("pitch", 0.0), values.get("yaw", 0.0), values.get("roll", 0.0)
        )
        x_d = x_d + self._lip_delta(self.lip_target(values.get("jaw", 0.0)))
        x_d = x_d + self._eye_delta(
            self.eye_target(values.get("blink_a", 0.0), values.get("blink_b", 0.0))
        )
        return np.asarray(x_d, np.float32)

    def stitched(self, x_d: np.ndarray) -> np.ndarray:
        """x_d corrected by the stitching net so the face joins the unmoved shoulders."""
        feed = np.concatenate([self.x_s.reshape(-1), x_d.reshape(-1)])[None].astype(np.float32)
        (d,) = self._nets.run("stitching.onnx", feed)
        out = x_d + d[0, : 3 * N_KP].reshape(N_KP, 3)
        out[:, :2] += d[0, 3 * N_KP : 3 * N_KP + 2]
        return np.asarray(out, np.float32)

    def generate(self, keypoints: Sequence[np.ndarray]) -> list[np.ndarray]:
        """W+G for each driving keypoint set: OUT_SIDE RGB uint8 face crops."""
        chunks = [list(keypoints)] if self._nets.batched else [[k] for k in keypoints]
        faces: list[np.ndarray] = []
        for chunk in chunks:
            n = len(chunk)
            feature = np.repeat(self._feature, n, axis=0)
            source = np.repeat(self.x_s[None], n, axis=0)
            (out,) = self._nets.run("warping_spade.onnx", feature, np.stack(chunk), source)
            faces += list(np.clip(out.transpose(0, 2, 3, 1) * 255 + 0.5, 0, 255).astype(np.uint8))
        return faces

    def paste(self, face: np.ndarray) -> np.ndarray:
        """The generated crop put back into the photo through the feathered mask."""
        w, h = self._size
        back = cv2.warpAffine(
            face,
            self._affine,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        mask = self._paste_mask
        frame = self._rgb.astype(np.float32) * (1 - mask) + back.astype(np.float32) * mask
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    def render_batch(self, frames: Sequence[MotionFrame], audio: AudioTrack) -> list[np.ndarray]:
        """Frames for a batch of motion frames (W+G batched when the export allows); the
        network sees the motion, not the audio."""
        keypoints = [self.stitched(self.driving_keypoints(dict(f.values))) for f in frames]
        return [self.paste(face) for face in self.generate(keypoints)]


class LivePortraitRenderer:
    """Registry entry: loads the six networks once per process."""

    name = "liveportrait"

    def __init__(self, files: dict[str, Path]) -> None:
        self._files = files
        self._nets: Networks | None = None
        self.capabilities = Capabilities(
            batch_size=GPU_BATCH if accel.cuda_available() else 1,
            seconds_per_frame_cpu=SECONDS_PER_FRAME_CPU,
        )

    def load(self) -> None:
        """Open and check the six ONNX files (raises with the file that does not fit)."""
        self._nets = Networks(self._files)

    def prepare(self, portrait: Portrait, *, expression: str = "keep") -> LivePortraitAnimator:
        """Rig `portrait`; the network keeps the photo's expression (`expression` unused)."""
        if self._nets is None:
            self.load()
        assert self._nets is not None
        return LivePortraitAnimator(self._nets, portrait)


DESCRIPTION: Description[LivePortraitRenderer] = Description(
    LivePortraitRenderer.name,
    "renderer",
    lambda models_dir: LivePortraitRenderer(model_files([MODEL], models_dir)),
    device="gpu",
    licence=LICENCE,
    models=(MODEL,),
)
"""Available when the six verified files of MODEL are in the models folder."""

"""Wav2Lip mouth refinement: re-renders the lower face of any renderer's frames from the audio.

Wav2Lip's code and weights are licensed for non-commercial use only. facecast vendors none of
its code; the operator brings `wav2lip.onnx` (mel 1x80x16 + face 6x96x96 -> face 3x96x96)
and opts in with FACECAST_ALLOW_NONCOMMERCIAL=true, which is logged when the backend loads.

The mel spectrogram follows the published recipe: 16 kHz, pre-emphasis 0.97, STFT (n_fft 800,
hop 200, Hann 800, centred with reflect padding), Slaney mel 80 bands 55-7600 Hz on the
magnitude, 20 log10(max(1e-5, S)) - 20 dB, then scaled to [-4, 4]. Frame i sees the 16 mel
frames from int(i * 80 / fps). The face box follows the head frame by frame (phase
correlation of the upper face against the photo), and the 96 px prediction goes back through
a feathered mask over the lower face instead of a hard box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.signal import lfilter

from facecast import accel
from facecast.audio import AudioTrack, resample
from facecast.config import get_settings
from facecast.face import FaceLandmarks
from facecast.post import PostContext
from facecast.registry import Capabilities, Description, MissingError, model_files

logger = logging.getLogger(__name__)

MODEL = "wav2lip"
LICENCE = "non-commercial (Rudrabha/Wav2Lip code and weights)"
SECONDS_PER_FRAME_CPU = 0.045
MEL_RATE = 16_000
PREEMPHASIS = 0.97
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0
MEL_STEP = 16
"""Mel frames per video frame's window."""
MEL_FPS = MEL_RATE / HOP
"""Mel frames per second (80)."""
FACE_SIDE = 96
CHIN_PAD = 0.06
"""The face box reaches this share of its height below the chin (upstream pads 10 px)."""
BATCH = 16
TRACK_SHARE = 0.55
"""Top share of the face box (brows, eyes, nose) used to follow the head: the mouth below
changes shape from frame to frame and would pull the estimate."""
TRACK_MAX_SHIFT = 0.2
"""Shifts beyond this share of the box side are taken as a failed estimate (box stays)."""
TRACK_MIN_RESPONSE = 0.05
"""Phase-correlation peaks weaker than this are not trusted."""


def preemphasis(samples: np.ndarray) -> np.ndarray:
    """y[n] = x[n] - 0.97 x[n - 1]."""
    return np.asarray(lfilter([1.0, -PREEMPHASIS], [1.0], samples), np.float64)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(80, 401) Slaney-normalised triangular filters, 55-7600 Hz."""
    fft_freqs = np.linspace(0, MEL_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights_ = np.maximum(0, np.minimum(lower, upper))
    weights_ *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    return weights_


def melspectrogram(track: AudioTrack) -> np.ndarray:
    """(80, frames) normalised log-mel spectrogram in [-4, 4], 80 frames per second."""
    samples = resample(track, MEL_RATE).samples.astype(np.float64)
    y = np.pad(preemphasis(samples), N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(y) - N_FFT) // HOP
    window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n_frames]
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).T
    db = 20.0 * np.log10(np.maximum(1e-5, mel_filters() @ magnitude)) - REF_LEVEL_DB
    scaled = 2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS
    return np.asarray(np.clip(scaled, -MAX_ABS, MAX_ABS), np.float32)


def mel_window(mel: np.ndarray, index: int, fps: float) -> np.ndarray:
    """The (80, 16) window for video frame `index` (the last full window past the end)."""
    start = int(index * MEL_FPS / fps)
    if start + MEL_STEP > mel.shape[1]:
        start = max(0, mel.shape[1] - MEL_STEP)
    window = mel[:, start : start + MEL_STEP]
    if window.shape[1] < MEL_STEP:  # audio shorter than one window
        window = np.pad(window, ((0, 0), (0, MEL_STEP - window.shape[1])), mode="edge")
    return window


def face_box(landmarks: FaceLandmarks, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the face, a little below the chin, clipped to the frame."""
    x0, y0, x1, y1 = landmarks.oval_box
    h, w = shape[:2]
    y1 += CHIN_PAD * (y1 - y0)
    return max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))


def face_input(crop: np.ndarray) -> np.ndarray:
    """(6, 96, 96) float32: the BGR crop with its lower half zeroed, then the whole crop."""
    bgr = cv2.resize(crop, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)[..., ::-1]
    reference = bgr.transpose(2, 0, 1).astype(np.float32) / 255.0
    masked = reference.copy()
    masked[:, FACE_SIDE // 2 :] = 0.0
    return np.concatenate([masked, reference])


@lru_cache(maxsize=8)
def lower_face_mask(width: int, height: int) -> np.ndarray:
    """(h, w, 1) soft weights: 1 over mouth and chin, fading out towards nose and cheeks."""
    mask = np.zeros((height, width), np.float32)
    centre = (round(width / 2), round(height * 0.74))
    axes = (max(1, round(width * 0.36)), max(1, round(height * 0.24)))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    blur = max(3, round(min(width, height) * 0.12) | 1)
    return cv2.GaussianBlur(mask, (blur, blur), 0)[..., None]


Box = tuple[int, int, int, int]


def _tracking_region(box: Box) -> Box:
    x0, y0, x1, y1 = box
    return x0, y0, x1, y0 + max(8, round(TRACK_SHARE * (y1 - y0)))


def _grey(rgb: np.ndarray, region: Box) -> np.ndarray:
    x0, y0, x1, y1 = region
    return cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(
        np.float32
    )


def follow_box(reference: np.ndarray, frame: np.ndarray, box: Box) -> Box:
    """`box` moved with the head: the shift of the upper face between the photo (`reference`,
    grey, cut by `_tracking_region(box)`) and `frame`, by phase correlation.

    Renderers move the head a few pixels (turns, nods, sway); a box fixed on the photo would
    let the refined mouth slide against the face."""
    region = _tracking_region(box)
    current = _grey(frame, region)
    if current.shape != reference.shape:
        return box
    window = cv2.createHanningWindow(current.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(reference, current, window)
    x0, y0, x1, y1 = box
    limit = TRACK_MAX_SHIFT * max(x1 - x0, y1 - y0)
    if response < TRACK_MIN_RESPONSE or max(abs(dx), abs(dy)) > limit:
        return box
    h, w = frame.shape[:2]
    sx = int(np.clip(round(dx), -x0, w - x1))
    sy = int(np.clip(round(dy), -y0, h - y1))
    return x0 + sx, y0 + sy, x1 + sx, y1 + sy


@dataclass(frozen=True)
class _Refine:
    session: Any
    mel: np.ndarray
    fps: float
    box: Box
    reference: np.ndarray
    """The photo's upper face (grey) inside `box`, to follow the head frame by frame."""

    def __call__(self, frames: list[np.ndarray], first: int) -> list[np.ndarray]:
        boxes = [follow_box(self.reference, f, self.box) for f in frames]
        crops = [f[y0:y1, x0:x1] for f, (x0, y0, x1, y1) in zip(frames, boxes, strict=True)]
        mels = np.stack([mel_window(self.mel, first + i, self.fps) for i in range(len(frames))])
        faces = np.stack([face_input(c) for c in crops])
        sess = self.session
        names = accel.input_names(sess)
        (pred,) = sess.run(None, {names[0]: mels[:, None], names[1]: faces})
        out = []
        for frame, crop, face, (x0, y0, x1, y1) in zip(frames, crops, pred, boxes, strict=True):
            mask = lower_face_mask(x1 - x0, y1 - y0)
            rgb = np.clip(face.transpose(1, 2, 0)[..., ::-1] * 255.0, 0, 255).astype(np.float32)
            mouth = cv2.resize(rgb, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
            blended = crop.astype(np.float32) * (1 - mask) + mouth * mask
            refined = frame.copy()
            refined[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
            out.append(refined)
        return out


class Wav2Lip:
    """The `wav2lip` refiner (non-commercial; registered only with the operator's opt-in)."""

    name = "wav2lip"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._session: Any = None
        self.capabilities = Capabilities(
            batch_size=BATCH, seconds_per_frame_cpu=SECONDS_PER_FRAME_CPU
        )

    def load(self) -> None:
        """Open and shape-check the operator's wav2lip.onnx."""
        logger.warning(
            "Wav2Lip enabled (%s): its code and weights are licensed for non-commercial use only",
            OPT_IN,
        )
        self._session = accel.checked_session(
            self._path,
            [(None, 1, N_MELS, MEL_STEP), (None, 6, FACE_SIDE, FACE_SIDE)],
            [(None, 3, FACE_SIDE, FACE_SIDE)],
        )

    def prepare(self, context: PostContext) -> _Refine:
        if self._session is None:
            self.load()
        portrait = context.portrait
        box = face_box(portrait.landmarks, portrait.rgb.shape)
        return _Refine(
            self._session,
            melspectrogram(context.audio),
            float(context.options.fps),
            box,
            _grey(portrait.rgb, _tracking_region(box)),
        )


OPT_IN = "FACECAST_ALLOW_NONCOMMERCIAL=true"


def _make(models_dir: Path) -> Wav2Lip:
    """Wav2Lip when its verified file is present and the operator opted in."""
    (path,) = model_files([MODEL], models_dir).values()
    if not get_settings().allow_noncommercial:
        raise MissingError([OPT_IN], "the operator's opt-in: its licence is non-commercial")
    return Wav2Lip(path)


DESCRIPTION: Description[Wav2Lip] = Description(
    Wav2Lip.name,
    "refine",
    _make,
    device="any",
    licence=LICENCE,
    commercial_use=False,
    models=(MODEL,),
)

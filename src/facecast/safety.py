"""Screening of source photos for explicit content, with NudeNet's detector run by onnxruntime.

The model is `320n.onnx` from the `nudenet` wheel (a YOLOv8n detector: input `images`, N x 3 x
320 x 320 floats in 0..1; output N x (4 + 18) x anchors). Only the model file is used; nudenet's
own code and its opencv-python-headless dependency stay out of the environment (nudenet is
installed with `--no-deps`; see deploy/README.md).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecast.errors import ErrorCode, FacecastError
from facecast.image import load_image

MODEL_FILE = "320n.onnx"
MODEL_PACKAGE = "nudenet"
INPUT_SIZE = 320
BOX_COORDINATES = 4
LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
"""The detector's classes, in output order (from nudenet/nudenet.py)."""
EXPLICIT = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
"""Classes that make a photo explicit."""


class ExplicitImageError(FacecastError):
    """The photo shows explicit content; the job ends `rejected`."""

    code = ErrorCode.EXPLICIT_IMAGE


class ScreeningUnavailableError(FacecastError):
    """The screening model is missing; jobs fail closed instead of going unscreened."""

    code = ErrorCode.SCREENING_UNAVAILABLE


@dataclass(frozen=True)
class Verdict:
    """The highest explicit class score of a photo."""

    label: str
    score: float


def bundled_model() -> Path | None:
    """`320n.onnx` inside the installed nudenet package (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def model_input(rgb: np.ndarray) -> np.ndarray:
    """RGB padded to a square at the bottom/right (as nudenet does), 320 px, NCHW in 0..1.

    The photo is scaled first and padded after, which gives nudenet's input while memory stays
    at 320 x 320 whatever the photo's shape (padding first cost the longest side squared).
    """
    height, width = rgb.shape[:2]
    scale = INPUT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(rgb[..., :3]), size, interpolation=interpolation)
    square = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    square[: size[1], : size[0]] = resized.astype(np.float32) / 255.0
    return np.ascontiguousarray(square.transpose(2, 0, 1)[np.newaxis])


class NudityScreen:
    """Loads the detector once (on first use, per process) and judges photos."""

    def __init__(self, model: Path | None, threshold: float) -> None:
        self.model = model
        self.threshold = threshold
        self._session: object | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> object:
        with self._lock:
            if self._session is None:
                if self.model is None or not self.model.is_file():
                    raise ScreeningUnavailableError(
                        "The photo cannot be screened: the screening model is not installed."
                    )
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    str(self.model), options, providers=["CPUExecutionProvider"]
                )
            return self._session

    def verdict(self, rgb: np.ndarray) -> Verdict:
        """The most likely explicit class and its score (the maximum over all anchors)."""
        session = self._loaded()
        name = session.get_inputs()[0].name  # type: ignore[attr-defined]
        output = session.run(None, {name: model_input(rgb)})[0]  # type: ignore[attr-defined]
        scores = np.asarray(output)[0, BOX_COORDINATES:, :].max(axis=1)
        best = max(
            (i for i, label in enumerate(LABELS) if label in EXPLICIT and i < len(scores)),
            key=lambda i: scores[i],
        )
        return Verdict(LABELS[best], float(scores[best]))

    def check(self, photo: Path | np.ndarray) -> Verdict:
        """Raise ExplicitImageError when the photo is explicit; the verdict otherwise.

        `photo` is a decoded RGB copy (facecast.image's working copy) or a file, which is
        decoded the same bounded way.
        """
        rgb = load_image(photo) if isinstance(photo, Path) else photo
        verdict = self.verdict(rgb)
        if verdict.score >= self.threshold:
            raise ExplicitImageError(
                "The photo was refused: it appears to show explicit content "
                f"({verdict.label.lower()}, score {verdict.score:.2f})."
            )
        return verdict

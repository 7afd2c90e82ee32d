"""Where the person is in the photo: a soft matte from mediapipe's selfie segmentation.

The head's motion is confined to it, so hair and ears move with the head while the
background behind them stays where it was. The model ships inside the mediapipe wheel.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np

from facecast.face import _quiet_native_stderr

MATTE_MODEL = 0
"""mediapipe's general selfie model (256 x 256 input), which suits head-and-shoulder photos."""


class _Segmenter:
    def __init__(self) -> None:
        with _quiet_native_stderr():
            import mediapipe as mp  # heavy: imported only when a matte is first needed

            self._graph: Any = mp.solutions.selfie_segmentation.SelfieSegmentation(
                model_selection=MATTE_MODEL
            )
        self._lock = threading.Lock()

    def run(self, rgb: np.ndarray) -> np.ndarray:
        with self._lock, _quiet_native_stderr():
            result = self._graph.process(np.ascontiguousarray(rgb))
        return np.clip(np.asarray(result.segmentation_mask, np.float32), 0.0, 1.0)


@lru_cache(maxsize=1)
def _segmenter() -> _Segmenter:
    return _Segmenter()


def person_matte(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel probability (0..1, float32, shape (H, W)) that a pixel shows the person."""
    return _segmenter().run(rgb)

"""A photo rigged once and kept in a file, for renderers in another environment (the LiveKit
avatar, whose livekit-agents cannot share a Python environment with mediapipe)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

from facecast import pipeline
from facecast.options import RenderOptions

LIVE_EXPRESSION: Literal["neutral"] = "neutral"
"""Between utterances the mouth rests closed and relaxed, whatever the photo shows."""


def save_rig(
    photo: Path | bytes, target: Path, *, size: int = 512, face_index: int | None = None
) -> Path:
    """Find the face in `photo`, rig it for the warp renderer at `size` and write the rig to
    `target` (a pickle: load it with facecast.live.avatar.load_rig, only from files you made)."""
    options = RenderOptions(size=size, face_index=face_index, expression=LIVE_EXPRESSION)
    rigged = pipeline.rig_photo(photo if isinstance(photo, bytes) else Path(photo), options)
    target = Path(target)
    target.write_bytes(pickle.dumps(rigged.animator, protocol=pickle.HIGHEST_PROTOCOL))
    return target

"""The one typed options object: built once by the route or the CLI, carried in the job request,
handed to the pipeline unchanged, and hashed for result reuse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RenderOptions:
    """What the caller may choose about a render."""

    fps: int = 25
    size: int = 512
    full_frame: bool = False
    lang: str = "de"
    voice: str | None = None
    seed: int = 0
    speech_backend: str = "espeak"
    renderer: str = "warp"
    watermark: str | None = None
    """Visible text drawn small and semi-transparent in the bottom-right corner."""
    voice_sample: Path | None = None
    """A recording (3-30 s) whose voice a cloning speech backend speaks `text` in."""

"""Post-processors change rendered frames in batches: of kind `upscale` (Real-ESRGAN) or
`refine` (Wav2Lip). Like renderers they live in a registry and describe themselves; the pipeline
asks for one of a kind and never names a backend itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facecast.audio import AudioTrack
from facecast.face import Portrait
from facecast.options import RenderOptions
from facecast.registry import Capabilities, Description, Kind, Registry


@dataclass(frozen=True)
class PostContext:
    """What a post-processor may look at for one job."""

    options: RenderOptions
    audio: AudioTrack
    portrait: Portrait


class FrameStep(Protocol):
    """A prepared post-processing step: a batch of RGB uint8 frames in, the new frames out."""

    def __call__(self, frames: list[np.ndarray], first: int) -> list[np.ndarray]:
        """`first` is the index of `frames[0]` in the video."""
        ...


class PostProcessor(Protocol):
    """A post-processing backend: `load` once per process, `prepare` once per job."""

    name: str
    capabilities: Capabilities

    def load(self) -> None: ...

    def prepare(self, context: PostContext) -> FrameStep: ...


def _builtin_post() -> list[Description[PostProcessor]]:
    from facecast.post.realesrgan import DESCRIPTION as REALESRGAN
    from facecast.post.wav2lip import DESCRIPTION as WAV2LIP

    return [REALESRGAN, WAV2LIP]


REGISTRY: Registry[PostProcessor] = Registry("post-processor", _builtin_post)


def of_kind(kind: Kind) -> list[str]:
    """Names of the registered post-processors of `kind` ("upscale" or "refine")."""
    names = REGISTRY.names()
    return [d.name for d in REGISTRY.descriptions() if d.kind == kind and d.name in names]

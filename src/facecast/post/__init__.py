"""Post-processors change rendered frames in batches: `upscale` (Real-ESRGAN) and `refine`
(Wav2Lip). Like renderers they live in a registry with capabilities; the pipeline asks
for the one that fills a role and never names a backend itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from facecast.audio import AudioTrack
from facecast.face import Portrait
from facecast.options import RenderOptions
from facecast.registry import Capabilities, Registry

Role = Literal["upscale", "refine"]


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
    role: Role
    capabilities: Capabilities

    def load(self) -> None: ...

    def prepare(self, context: PostContext) -> FrameStep: ...


def _builtin_post() -> list[PostProcessor]:
    from facecast.post.realesrgan import builtin_upscalers
    from facecast.post.wav2lip import builtin_refiners

    found: list[PostProcessor] = [*builtin_upscalers(), *builtin_refiners()]
    return found


REGISTRY: Registry[PostProcessor] = Registry("post-processor", _builtin_post)


def for_role(role: Role) -> list[str]:
    """Names of the registered post-processors that fill `role`."""
    return [p.name for p in REGISTRY.all() if p.role == role]

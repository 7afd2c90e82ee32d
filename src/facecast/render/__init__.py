"""Renderers turn a portrait, the audio and per-frame motion into frames; chosen by name from a
registry.

A renderer is one module plus one registration: a class with `name`, `capabilities`, `load()`
and `prepare(portrait)` (per photo), whose animator's `render_batch(frames, audio)` draws one
frame per `motion.MotionFrame`, and a `registry.Description` handed to `register` (or listed in
`_builtin_renderers` when it ships with facecast).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from facecast.audio import AudioTrack
from facecast.face import Portrait
from facecast.motion import MotionFrame
from facecast.registry import Capabilities, Description, Registry


class Animator(Protocol):
    """A portrait made ready for animation; lent to one render at a time."""

    @property
    def size(self) -> tuple[int, int]:
        """Output (width, height)."""
        ...

    def render_batch(self, frames: Sequence[MotionFrame], audio: AudioTrack) -> list[np.ndarray]:
        """One RGB uint8 frame per motion frame. `audio` is the whole sound track of the video
        (a frame plays from `frame.start` to `frame.end`), for renderers the sound drives; a
        GPU renderer runs a batch at once, the warp renderer one frame after the other."""
        ...


class Renderer(Protocol):
    """A rendering backend: `load` once per process, `prepare` once per photo."""

    name: str
    capabilities: Capabilities

    def load(self) -> None: ...

    def prepare(self, portrait: Portrait, *, expression: str = "keep") -> Animator:
        """Rig `portrait`; `expression` is RenderOptions.expression (the mouth's rest pose)."""
        ...


def _builtin_renderers() -> list[Description[Renderer]]:
    from facecast.render.liveportrait import DESCRIPTION as LIVEPORTRAIT
    from facecast.render.warp import DESCRIPTION as WARP

    return [WARP, LIVEPORTRAIT]


REGISTRY: Registry[Renderer] = Registry("renderer", _builtin_renderers, kind="renderer")


def register(renderer: Renderer, description: Description[Renderer] | None = None) -> None:
    """Make a renderer available under its name (described by `description`, or plainly)."""
    REGISTRY.register(renderer, description)


def available() -> list[str]:
    """Names of the renderers this process can use."""
    return REGISTRY.names()


def get_renderer(name: str) -> Renderer:
    """The loaded renderer called `name` (loaded once per process)."""
    return REGISTRY.get(name)

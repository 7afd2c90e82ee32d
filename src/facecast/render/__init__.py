"""Renderers turn a portrait and per-frame motion into frames; chosen by name from a registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from facecast.face import Portrait
from facecast.registry import Capabilities, Registry


class Animator(Protocol):
    """A portrait made ready for animation: one call per output frame."""

    @property
    def size(self) -> tuple[int, int]:
        """Output (width, height)."""
        ...

    def render_batch(self, values: Sequence[dict[str, float]]) -> list[np.ndarray]:
        """One RGB uint8 frame per entry of channel values (motion.CHANNELS); a GPU renderer
        runs a batch at once, the warp renderer one frame after the other."""
        ...


class Renderer(Protocol):
    """A rendering backend: `load` once per process, `prepare` once per photo."""

    name: str
    capabilities: Capabilities

    def load(self) -> None: ...

    def prepare(self, portrait: Portrait, *, expression: str = "keep") -> Animator:
        """Rig `portrait`; `expression` is RenderOptions.expression (the mouth's rest pose)."""
        ...


def _builtin_renderers() -> list[Renderer]:
    from facecast.render.liveportrait import builtin_liveportrait
    from facecast.render.warp import WarpRenderer

    return [WarpRenderer(), *builtin_liveportrait()]


REGISTRY: Registry[Renderer] = Registry("renderer", _builtin_renderers)


def register(renderer: Renderer) -> None:
    """Make a renderer available under its name."""
    REGISTRY.register(renderer)


def available() -> list[str]:
    """Names of the renderers this process can use."""
    return REGISTRY.names()


def get_renderer(name: str) -> Renderer:
    """The loaded renderer called `name` (loaded once per process)."""
    return REGISTRY.get(name)

"""Renderers turn a portrait and per-frame motion into frames; chosen by name from a registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np

from facecast.errors import BackendUnavailableError
from facecast.face import Portrait


class Animator(Protocol):
    """A portrait made ready for animation: one call per output frame."""

    @property
    def size(self) -> tuple[int, int]:
        """Output (width, height)."""
        ...

    def render(self, values: dict[str, float]) -> np.ndarray:
        """One RGB uint8 frame for the channel values of motion.CHANNELS."""
        ...


class Renderer(Protocol):
    """A rendering backend: `load` once per process, `prepare` once per photo."""

    name: str

    def load(self) -> None: ...

    def prepare(self, portrait: Portrait) -> Animator: ...


_FACTORIES: dict[str, Callable[[], Renderer]] = {}
_LOADED: dict[str, Renderer] = {}
_LOCK = threading.Lock()


def register(name: str, factory: Callable[[], Renderer]) -> None:
    """Make a renderer available under `name`."""
    _FACTORIES[name] = factory


def available() -> list[str]:
    """Names of the renderers this process can use."""
    _register_builtin()
    return sorted(_FACTORIES)


def get_renderer(name: str) -> Renderer:
    """The loaded renderer called `name` (loaded once per process)."""
    _register_builtin()
    with _LOCK:
        if name not in _LOADED:
            if name not in _FACTORIES:
                choices = ", ".join(sorted(_FACTORIES))
                raise BackendUnavailableError(
                    f"Renderer '{name}' is not available; choose one of: {choices}."
                )
            renderer = _FACTORIES[name]()
            renderer.load()
            _LOADED[name] = renderer
        return _LOADED[name]


def _register_builtin() -> None:
    if "warp" not in _FACTORIES:
        from facecast.render.warp import WarpRenderer

        register("warp", WarpRenderer)

"""Speech backends by name: `get_backend(name)` hands out a loaded one (see facecast.registry).

espeak is always there; an optional backend joins in `_builtin_backends` only when its package
and weights are present.
"""

from __future__ import annotations

from facecast.registry import Registry
from facecast.speech import SpeechBackend


def _builtin_backends() -> list[SpeechBackend]:
    """The backends facecast ships with, cheap to construct (loading happens later)."""
    from facecast.speech.espeak import EspeakBackend

    return [EspeakBackend()]


REGISTRY: Registry[SpeechBackend] = Registry("speech backend", _builtin_backends)


def register(backend: SpeechBackend) -> None:
    """Make `backend` available under `backend.name`, replacing any backend of that name."""
    REGISTRY.register(backend)


def available() -> list[str]:
    """Names of the registered backends, sorted."""
    return REGISTRY.names()


def get_backend(name: str) -> SpeechBackend:
    """The backend called `name`, loaded once in this process (thread-safe)."""
    return REGISTRY.get(name)

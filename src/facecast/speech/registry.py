"""Speech backends by name: `get_backend(name)` hands out a loaded one (see facecast.registry).

espeak is always there; an optional backend joins in `_builtin_backends` only when its package
and weights are present.
"""

from __future__ import annotations

from facecast.registry import Registry
from facecast.speech import SpeechBackend


def _builtin_backends() -> list[SpeechBackend]:
    """The backends facecast ships with, cheap to construct (loading happens later)."""
    from facecast.config import get_settings
    from facecast.speech.espeak import EspeakBackend
    from facecast.speech.xtts import XttsBackend, xtts_installed

    backends: list[SpeechBackend] = [EspeakBackend()]
    settings = get_settings()
    if xtts_installed(settings.xtts_model_dir):
        assert settings.xtts_model_dir is not None
        cache = settings.voice_cache_dir or settings.data_dir / "voice-cache"
        backends.append(XttsBackend(settings.xtts_model_dir, cache))
    return backends


REGISTRY: Registry[SpeechBackend] = Registry("speech backend", _builtin_backends)


def register(backend: SpeechBackend) -> None:
    """Make `backend` available under `backend.name`, replacing any backend of that name."""
    REGISTRY.register(backend)


def available() -> list[str]:
    """Names of the registered backends, sorted."""
    return REGISTRY.names()


def cloning_backend() -> str | None:
    """Name of a registered backend that clones voices (installed with its weights), or None."""
    for backend in REGISTRY.all():
        if backend.capabilities.cloning:
            return backend.name
    return None


def get_backend(name: str) -> SpeechBackend:
    """The backend called `name`, loaded once in this process (thread-safe)."""
    return REGISTRY.get(name)

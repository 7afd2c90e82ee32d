"""Speech backends by name: register once, then `get_backend(name)` hands out a loaded one.

The built-in backends join on first use, not at import. espeak is always there; an optional
heavy backend (XTTS) belongs in `_builtin_backends` and joins only when its package and weights
are present. A backend is loaded at most once per process: a forked child (Celery prefork)
loads again on first use, so no backend has to survive a fork it did not see.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from facecast.errors import BackendUnavailableError
from facecast.speech import SpeechBackend
from facecast.speech.espeak import EspeakBackend


@dataclass
class _Registry:
    backends: dict[str, SpeechBackend] = field(default_factory=dict)
    loaded_in: dict[str, int] = field(default_factory=dict)
    """Backend name -> pid of the process that ran its `load()`."""
    builtins_added: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_REGISTRY = _Registry()


def _builtin_backends() -> list[SpeechBackend]:
    """The backends facecast ships with, cheap to construct (loading happens later)."""
    backends: list[SpeechBackend] = [EspeakBackend()]
    # XTTS goes here: append it only when `importlib.util.find_spec` finds its package and
    # get_settings().xtts_model_dir holds the weights, so `available()` tells the truth.
    return backends


def _reset_lock_in_child() -> None:
    # A thread of the parent may have held the lock mid-load when another thread forked.
    _REGISTRY.lock = threading.Lock()


def _ensure_builtins() -> None:
    """Add the built-in backends once. Caller holds the registry lock."""
    if _REGISTRY.builtins_added:
        return
    os.register_at_fork(after_in_child=_reset_lock_in_child)
    for backend in _builtin_backends():
        _REGISTRY.backends.setdefault(backend.name, backend)
    _REGISTRY.builtins_added = True


def register(backend: SpeechBackend) -> None:
    """Make `backend` available under `backend.name`, replacing any backend of that name."""
    with _REGISTRY.lock:
        _ensure_builtins()
        _REGISTRY.backends[backend.name] = backend
        _REGISTRY.loaded_in.pop(backend.name, None)


def available() -> list[str]:
    """Names of the registered backends, sorted."""
    with _REGISTRY.lock:
        _ensure_builtins()
        return sorted(_REGISTRY.backends)


def get_backend(name: str) -> SpeechBackend:
    """The backend called `name`, loaded once in this process (thread-safe).

    Raises BackendUnavailableError for an unknown name or a backend that cannot load.
    """
    with _REGISTRY.lock:
        _ensure_builtins()
        backend = _REGISTRY.backends.get(name)
        if backend is None:
            known = ", ".join(sorted(_REGISTRY.backends)) or "none"
            raise BackendUnavailableError(
                f"Speech backend {name!r} is not available. Available: {known}."
            )
        pid = os.getpid()
        if _REGISTRY.loaded_in.get(name) != pid:
            backend.load()
            _REGISTRY.loaded_in[name] = pid
        return backend

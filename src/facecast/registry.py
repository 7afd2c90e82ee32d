"""One generic registry for pluggable backends (speech, renderers, post-processors).

A backend is constructed cheaply, declares what it can do in `capabilities`, and does its heavy
work in `load()`. Built-in backends join on first use, not at import: `builtins` returns the
ones whose packages and weights are present, so `names()` tells the truth. A backend is loaded
at most once per process; a forked child (Celery prefork) loads again on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from facecast.errors import BackendUnavailableError

Device = Literal["cpu", "gpu", "any"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend needs and offers; the service asks these instead of naming backends."""

    device: Device = "cpu"
    """Where it runs well: "gpu" backends are queued for GPU workers."""
    phoneme_timings: bool = False
    """Speech: returns phoneme timings that drive the mouth."""
    cloning: bool = False
    """Speech: clones a voice from a sample."""
    natural: bool = False
    """Speech: sounds like a person (neural or unit selection), not a formant robot."""
    batch_size: int = 1
    """Renderers and post-processors: frames per call that suit it."""
    seconds_per_frame_cpu: float | None = None
    """Measured cost per frame on a 2-core CPU, for time estimates; None when negligible."""
    licence: str = ""
    """Licence of the code and weights, as users need to know it."""
    commercial_use: bool = True
    """False when the weights or code forbid commercial use (an operator opt-in)."""


class Backend(Protocol):
    """A backend: cheap to construct, `load()` once per process before use."""

    name: str
    capabilities: Capabilities

    def load(self) -> None: ...


B = TypeVar("B", bound=Backend)


@dataclass
class Registry(Generic[B]):
    """Backends of one kind by name, each loaded once per process (thread-safe)."""

    kind: str
    """What the backends are, for error messages ("speech backend", "renderer")."""
    builtins: Callable[[], Iterable[B]]
    """The shipped backends that can run here; called once, on first use."""
    _backends: dict[str, B] = field(default_factory=dict)
    _loaded_in: dict[str, int] = field(default_factory=dict)
    _builtins_added: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        os.register_at_fork(after_in_child=self._reset_lock)

    def _reset_lock(self) -> None:
        # A thread of the parent may have held the lock mid-load when another thread forked.
        self._lock = threading.Lock()

    def _ensure_builtins(self) -> None:
        """Add the built-in backends once. Caller holds the lock."""
        if self._builtins_added:
            return
        for backend in self.builtins():
            self._backends.setdefault(backend.name, backend)
        self._builtins_added = True

    def register(self, backend: B) -> None:
        """Make `backend` available under `backend.name`, replacing any of that name."""
        with self._lock:
            self._ensure_builtins()
            self._backends[backend.name] = backend
            self._loaded_in.pop(backend.name, None)

    def unregister(self, name: str) -> None:
        """Forget the backend called `name` (no error when there is none)."""
        with self._lock:
            self._ensure_builtins()
            self._backends.pop(name, None)
            self._loaded_in.pop(name, None)

    def names(self) -> list[str]:
        """Names of the registered backends, sorted."""
        with self._lock:
            self._ensure_builtins()
            return sorted(self._backends)

    def all(self) -> list[B]:
        """Every registered backend, not loaded (for capabilities), sorted by name."""
        with self._lock:
            self._ensure_builtins()
            return [self._backends[name] for name in sorted(self._backends)]

    def peek(self, name: str) -> B | None:
        """The backend called `name` without loading it, or None."""
        with self._lock:
            self._ensure_builtins()
            return self._backends.get(name)

    def get(self, name: str) -> B:
        """The backend called `name`, loaded once in this process.

        Raises BackendUnavailableError for an unknown name or a backend that cannot load.
        """
        with self._lock:
            self._ensure_builtins()
            backend = self._backends.get(name)
            if backend is None:
                known = ", ".join(sorted(self._backends)) or "none"
                raise BackendUnavailableError(
                    f"The {self.kind} {name!r} is not available here. Available: {known}."
                )
            pid = os.getpid()
            if self._loaded_in.get(name) != pid:
                backend.load()
                self._loaded_in[name] = pid
            return backend

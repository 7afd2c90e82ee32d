"""One generic registry for pluggable backends (speech, renderers, post-processors).

A backend describes itself in a `Description`: its kind, where it runs, its licence, the model
files it needs and how to make it from a models folder. Everything that lists or chooses
backends (the catalogue, `GET /backends`, `GET /voices`, `facecast models`, the default voice)
reads these descriptions, so a backend's name is written once, in its own module.

A backend is constructed cheaply by `Description.make(models_dir)`, which raises
`MissingError` naming what this machine lacks; its heavy work happens in `load()`. Built-in
backends join on first use, not at import, so `names()` tells the truth. A backend is loaded
at most once per process; a forked child (Celery prefork) loads again on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

from facecast.errors import BackendUnavailableError

Device = Literal["cpu", "gpu", "any"]
Kind = Literal["speech", "renderer", "upscale", "refine"]
"""What a backend does: speaks text, renders frames, upscales or refines rendered frames."""
NOUNS: dict[str, str] = {
    "speech": "speech backend",
    "renderer": "renderer",
    "upscale": "upscaler",
    "refine": "refiner",
}
"""How messages name a backend of each kind."""
LAST = 100
"""`Description.preference` of a backend that states none: after the ranked ones."""


@dataclass(frozen=True)
class Capabilities:
    """What a made backend offers here (may depend on the machine: a GPU, installed voices)."""

    phoneme_timings: bool = False
    """Speech: returns phoneme timings that drive the mouth."""
    cloning: bool = False
    """Speech: clones a voice from a sample."""
    natural: bool = False
    """Speech: sounds like a person (neural or unit selection), not a formant robot."""
    seconds_per_second_cpu: float | None = None
    """Speech: CPU seconds per second of speech on a 2-core CPU, for a slow backend (None: a
    fast one, see facecast.cost)."""
    batch_size: int = 1
    """Renderers and post-processors: frames per call that suit it."""
    seconds_per_frame_cpu: float | None = None
    """Measured cost per frame on a 2-core CPU, for time estimates; None when negligible."""


class Backend(Protocol):
    """A backend: cheap to construct, `load()` once per process before use."""

    name: str
    capabilities: Capabilities

    def load(self) -> None: ...


B = TypeVar("B", bound=Backend)
B_co = TypeVar("B_co", bound=Backend, covariant=True)


class MissingError(BackendUnavailableError):
    """What this machine lacks to make a backend (files, a package, an operator's opt-in)."""

    def __init__(self, missing: Sequence[str], how_to_get: str = "") -> None:
        self.missing = tuple(missing)
        self.how_to_get = how_to_get
        detail = f" ({how_to_get})" if how_to_get else ""
        super().__init__(f"missing {', '.join(self.missing)}{detail}")


@dataclass(frozen=True)
class Description(Generic[B_co]):
    """Everything known about a backend without making or loading it."""

    name: str
    kind: Kind
    make: Callable[[Path], B_co]
    """How to get the backend given the models folder: cheap (its `load()` does the heavy
    work); raises MissingError naming what this machine lacks."""
    device: Device = "cpu"
    """Where it runs well: "gpu" backends are queued for GPU workers."""
    licence: str = ""
    """Licence of the code and weights, as users need to know it."""
    commercial_use: bool = True
    """False when the weights or code forbid commercial use (an operator opt-in)."""
    models: tuple[str, ...] = ()
    """Names of the weights manifest's models whose files it needs (facecast.weights)."""
    preference: int = LAST
    """Lower first where facecast picks among backends of one kind (the default voice)."""


def model_files(models: Iterable[str], models_dir: Path) -> dict[str, Path]:
    """The verified files of the named manifest models by file name (for `make`); raises
    MissingError with the files that are absent or do not check out."""
    from facecast import weights

    files: dict[str, Path] = {}
    for name in models:
        found = weights.status(weights.spec(name), models_dir)
        if not found.present:
            raise MissingError(found.missing, found.spec.how_to_get)
        bad = [f"{f.location} ({f.problem})" for f in found.files if not f.verified]
        if bad:
            raise MissingError(bad, "see `facecast models verify`")
        files.update({f.location.name: f.location for f in found.files})
    return files


def _settings_models_dir() -> Path:
    from facecast.config import get_settings

    return get_settings().models_dir


@dataclass
class Registry(Generic[B]):
    """Backends by name, each made once and loaded once per process (thread-safe)."""

    noun: str
    """What the backends are, for error messages ("speech backend", "renderer")."""
    builtins: Callable[[], Iterable[Description[B]]]
    """Descriptions of the shipped backends; made once, on first use."""
    kind: Kind | None = None
    """The kind of a backend registered without a description (None: one is required)."""
    models_dir: Callable[[], Path] = _settings_models_dir
    _described: dict[str, Description[B]] = field(default_factory=dict)
    _backends: dict[str, B] = field(default_factory=dict)
    _missing: dict[str, MissingError] = field(default_factory=dict)
    _builtin: set[str] = field(default_factory=set)
    _loaded_in: dict[str, int] = field(default_factory=dict)
    _builtins_added: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        os.register_at_fork(after_in_child=self._reset_lock)

    def _reset_lock(self) -> None:
        # A thread of the parent may have held the lock mid-load when another thread forked.
        self._lock = threading.Lock()

    def _ensure_builtins(self) -> None:
        """Describe and make the built-in backends once. Caller holds the lock."""
        if self._builtins_added:
            return
        folder = self.models_dir()
        for description in self.builtins():
            self._described.setdefault(description.name, description)
            self._builtin.add(description.name)
            try:
                self._backends[description.name] = description.make(folder)
            except MissingError as missing:
                self._missing[description.name] = missing
        self._builtins_added = True

    def register(self, backend: B, description: Description[B] | None = None) -> None:
        """Make `backend` available under `backend.name`, replacing any of that name.

        Without `description` it keeps the description of a known backend of that name, or
        describes it as of the registry's `kind`."""
        with self._lock:
            self._ensure_builtins()
            if description is None:
                description = self._described.get(backend.name) or self._plain(backend)
            self._described[backend.name] = description
            self._backends[backend.name] = backend
            self._loaded_in.pop(backend.name, None)

    def _plain(self, backend: B) -> Description[B]:
        if self.kind is None:
            raise ValueError(f"{backend.name!r} needs a Description to join the {self.noun}s.")
        return Description(backend.name, self.kind, lambda _folder: backend)

    def unregister(self, name: str) -> None:
        """Forget the backend called `name` (no error when there is none); a built-in stays
        described, as missing."""
        with self._lock:
            self._ensure_builtins()
            self._backends.pop(name, None)
            self._loaded_in.pop(name, None)
            if name in self._builtin:
                self._missing.setdefault(name, MissingError(["unregistered in this process"]))
            else:
                self._described.pop(name, None)

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

    def describe(self, name: str) -> Description[B] | None:
        """What is known about the backend called `name`, available here or not."""
        with self._lock:
            self._ensure_builtins()
            return self._described.get(name)

    def descriptions(self) -> list[Description[B]]:
        """Every known backend, available here or not, by preference then name."""
        with self._lock:
            self._ensure_builtins()
            known = list(self._described.values())
        return sorted(known, key=lambda d: (d.preference, d.name))

    def missing(self, name: str) -> MissingError | None:
        """What this machine lacks for the known backend `name` (None when it is here)."""
        with self._lock:
            self._ensure_builtins()
            return None if name in self._backends else self._missing.get(name)

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
                    f"The {self.noun} {name!r} is not available here. Available: {known}."
                )
            pid = os.getpid()
            if self._loaded_in.get(name) != pid:
                backend.load()
                self._loaded_in[name] = pid
            return backend

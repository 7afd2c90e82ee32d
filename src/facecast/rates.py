"""How fast this host renders, measured, for honest time estimates.

Every finished render (a worker's warm-up, a job, a CLI render) reports its frame loop's wall
and CPU time and the time spent before it (speech, photo); each job configuration (renderer,
refiner, upscale factor) keeps a running average per frame of REFERENCE_EDGE x REFERENCE_EDGE
pixels. Estimates scale it by the frame area. The figures are kept per host in a small JSON
file, so a CLI run after a service job (or the other way round) starts from them too, and
workers report theirs in their heartbeat for the API. A configuration never measured here
falls back to its backends' declared cost (`Capabilities.seconds_per_frame_cpu`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from facecast.config import get_settings
from facecast.options import RenderOptions

REFERENCE_EDGE = 512
"""Rates are per frame of this edge (the default size); cost scales with the frame area."""
NEWEST_WEIGHT = 0.5
"""Weight of the newest render in the running average (the machine's load changes)."""
CACHE_ENV = "XDG_CACHE_HOME"


@dataclass(frozen=True)
class Rate:
    """Measured cost of one job configuration on this host."""

    wall_per_frame: float
    """Wall seconds of the frame loop (render, post-process, encode) per reference frame."""
    cpu_per_frame: float
    """CPU seconds (all threads) of the frame loop per reference frame."""
    overhead: float = 0.0
    """Wall seconds before the first frame (speech, photo), per job."""


@dataclass(frozen=True)
class Estimate:
    """What a job will cost."""

    cpu_per_video_second: float
    """CPU seconds (all threads) per second of video."""
    wall_per_video_second: float
    """Wall seconds per second of video, once the first frame is under way."""
    seconds: float | None
    """Wall seconds for the whole job (None when the video's length is not known)."""
    measured: bool = True
    """False when no render of this configuration was measured here (declared figures)."""


def rate_key(options: RenderOptions) -> str:
    """The configuration a rate belongs to: what decides the cost per frame."""
    return f"{options.renderer}+{options.refine or '-'}+x{options.upscale or 1}"


def frame_scale(options: RenderOptions) -> float:
    """Frame area relative to a reference frame (the renderer's size, before upscaling)."""
    return float((options.size / REFERENCE_EDGE) ** 2)


class HostRates:
    """The rates measured on this host, in memory and in `path` (JSON, written atomically)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._rates: dict[str, Rate] = self._load()
        self._warm = False
        """False until the first render of this process: its overhead includes loading the
        models (speech, face mesh), which later jobs do not pay."""

    def _load(self) -> dict[str, Rate]:
        if self.path is None:
            return {}
        try:
            stored = json.loads(self.path.read_text())
            return {k: Rate(**v) for k, v in stored.items()}
        except (OSError, ValueError, TypeError):
            return {}

    def get(self, options: RenderOptions) -> Rate | None:
        """The measured rate of the job's configuration, or None when never measured."""
        with self._lock:
            return self._rates.get(rate_key(options))

    def as_dict(self) -> dict[str, Rate]:
        """Every measured rate by configuration key."""
        with self._lock:
            return dict(self._rates)

    def merge(self, rates: dict[str, Rate]) -> None:
        """Take `rates` (another process's) for configurations not measured here."""
        with self._lock:
            for key, rate in rates.items():
                self._rates.setdefault(key, rate)

    def observe(
        self,
        options: RenderOptions,
        frames: int,
        wall: float,
        cpu: float,
        overhead: float | None,
    ) -> None:
        """Fold in a finished render: its frame loop's `wall` and `cpu` seconds over `frames`
        frames, and the seconds before the loop (None: not known)."""
        if frames <= 0 or wall <= 0:
            return
        if not self._warm:
            self._warm, overhead = True, None
        per = frames * frame_scale(options)
        new = Rate(wall / per, cpu / per, overhead or 0.0)
        key = rate_key(options)
        with self._lock:
            old = self._rates.get(key)
            if old is not None:
                new = Rate(
                    _blend(old.wall_per_frame, new.wall_per_frame),
                    _blend(old.cpu_per_frame, new.cpu_per_frame),
                    old.overhead if overhead is None else _blend(old.overhead, overhead),
                )
            self._rates[key] = new
            self._save(key, new)

    def _save(self, key: str, rate: Rate) -> None:
        """Store `rate` in the file, keeping what other processes wrote for other keys."""
        if self.path is None:
            return
        snapshot = {k: asdict(v) for k, v in self._load().items()}
        snapshot[key] = asdict(rate)
        with contextlib.suppress(OSError):  # an estimate is never worth failing a render
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            partial.write_text(json.dumps(snapshot, indent=1))
            os.replace(partial, self.path)


def _blend(old: float, new: float) -> float:
    return (1 - NEWEST_WEIGHT) * old + NEWEST_WEIGHT * new


def estimate(rate: Rate, options: RenderOptions, video_seconds: float | None) -> Estimate:
    """The job's cost from a measured rate (`video_seconds`: None when not known yet)."""
    frames_per_second = options.fps * frame_scale(options)
    wall = rate.wall_per_frame * frames_per_second
    seconds = None if video_seconds is None else rate.overhead + wall * video_seconds
    return Estimate(rate.cpu_per_frame * frames_per_second, wall, seconds)


def default_path() -> Path:
    """FACECAST_RATES_FILE, else this host's file under the user's cache directory (one per
    host name, so a home directory shared between machines keeps each machine's figures)."""
    configured = get_settings().rates_file
    if configured is not None:
        return configured
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache")
    return cache / "facecast" / f"rates-{socket.gethostname()}.json"


@lru_cache(maxsize=1)
def host_rates() -> HostRates:
    """This process's view of the host's rates (loaded once, saved on every observation)."""
    return HostRates(default_path())

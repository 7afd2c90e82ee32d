"""What a job may ask for: renderers and post-processors checked against the registries (and,
in the service, against what live workers offer), the queue a job needs, and the catalogue
that `GET /backends` and `facecast models list` show."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from facecast import post, render, weights
from facecast.errors import BackendUnavailableError
from facecast.options import RenderOptions
from facecast.rates import Estimate, Rate
from facecast.registry import NOUNS, Capabilities, Description, Device, Registry

MAX_OUTPUT_EDGE = 4096
"""Largest upscaled video edge (H.264 level 6 and memory on one worker)."""
UPSCALE_FACTORS = (2, 4)
GPU_QUEUE = "gpu"


FrameKind = Literal["renderer", "upscale", "refine"]
"""The kinds of backend that make or change video frames (what the catalogue lists)."""


@dataclass(frozen=True)
class BackendInfo:
    """One entry of the catalogue: a backend as it describes itself, and how it stands here."""

    description: Description[Any]
    capabilities: Capabilities | None
    """What it offers here (None when this server cannot run it)."""
    missing: tuple[str, ...] = ()
    """What this server lacks (when not available): model files, a package, an opt-in."""
    how_to_get: str = ""

    @property
    def name(self) -> str:
        return self.description.name

    @property
    def kind(self) -> str:
        return self.description.kind

    @property
    def available(self) -> bool:
        return self.capabilities is not None

    @property
    def source(self) -> str:
        """Where `facecast models fetch` takes its weights from ("" when it needs none)."""
        models = self.description.models
        return ", ".join(dict.fromkeys(weights.spec(model).source for model in models))

    def fields(self) -> dict[str, object]:
        """The entry as GET /backends shows it (less `offered`, which live workers decide)."""
        caps = self.capabilities
        return {
            "kind": self.kind,
            "name": self.name,
            "available": self.available,
            "device": self.description.device,
            "batch_size": caps.batch_size if caps else None,
            "seconds_per_frame_cpu": caps.seconds_per_frame_cpu if caps else None,
            "licence": self.description.licence,
            "commercial_use": self.description.commercial_use,
            "missing": list(self.missing),
            "how_to_get": self.how_to_get,
            "source": self.source,
        }


REGISTRIES: dict[str, Registry[Any]] = {
    "renderer": render.REGISTRY,
    "upscale": post.REGISTRY,
    "refine": post.REGISTRY,
}
"""The registry that holds the backends of each kind that makes or changes frames."""


def _frame_descriptions() -> list[Description[Any]]:
    return [*render.REGISTRY.descriptions(), *post.REGISTRY.descriptions()]


def _unavailable(kind: FrameKind, name: str, have: list[str]) -> BackendUnavailableError:
    noun = NOUNS[kind]
    listed = ", ".join(have) or "none"
    described = REGISTRIES[kind].describe(name)
    missing = REGISTRIES[kind].missing(name) if described and described.kind == kind else None
    if missing is None:
        return BackendUnavailableError(
            f"The {noun} {name!r} is not available. Available {noun}s: {listed}."
        )
    what = ", ".join(missing.missing)
    how = f" ({missing.how_to_get})" if missing.how_to_get else ""
    return BackendUnavailableError(
        f"The {noun} {name!r} is not available here: it needs {what}{how}. "
        f"Available {noun}s: {listed}."
    )


def wanted(options: RenderOptions) -> list[tuple[FrameKind, str]]:
    """(kind, name) of every backend the job needs beyond speech."""
    needs: list[tuple[FrameKind, str]] = [("renderer", options.renderer)]
    if options.refine:
        needs.append(("refine", options.refine))
    if options.upscale:
        names = post.of_kind("upscale")
        known = [d.name for d in post.REGISTRY.descriptions() if d.kind == "upscale"]
        needs.append(("upscale", (names or known or ["upscale"])[0]))
    return needs


def _here(kind: FrameKind) -> list[str]:
    """Names of this process's backends of `kind`, most preferred first."""
    registry = REGISTRIES[kind]
    names = set(registry.names())
    return [d.name for d in registry.descriptions() if d.kind == kind and d.name in names]


def check_options(options: RenderOptions, offered: Collection[str] | None = None) -> None:
    """Raise BackendUnavailableError unless every backend the job needs can run.

    `offered`: backend names some live worker reports (the service); None checks this process.
    """
    if options.upscale is not None:
        if options.upscale not in UPSCALE_FACTORS:
            raise BackendUnavailableError(
                f"upscale must be one of {', '.join(map(str, UPSCALE_FACTORS))}."
            )
        if options.size * options.upscale > MAX_OUTPUT_EDGE:
            raise BackendUnavailableError(
                f"size {options.size} x upscale {options.upscale} is over the "
                f"{MAX_OUTPUT_EDGE} px limit of an upscaled video."
            )
    for kind, name in wanted(options):
        have = _here(kind)
        if offered is not None:
            have = [n for n in have if n in offered]
        if name not in have:
            raise _unavailable(kind, name, have)


def device_of(kind: str, name: str) -> Device:
    """Where the named backend runs well, as it describes itself ("cpu" when unknown)."""
    described = REGISTRIES[kind].describe(name)
    return described.device if described is not None else "cpu"


def needs_gpu(options: RenderOptions) -> bool:
    """True when a backend of the job is GPU-class (queued for GPU workers)."""
    return any(device_of(kind, name) == "gpu" for kind, name in wanted(options))


def queue_for(options: RenderOptions, default: str) -> str:
    """The Celery queue of a render job."""
    return GPU_QUEUE if needs_gpu(options) else default


REFERENCE_EDGE = 512
"""seconds_per_frame_cpu is measured on frames of this edge; cost scales with the area."""


def cpu_seconds_per_video_second(options: RenderOptions) -> float | None:
    """CPU time per second of video of the job's costly backends (None when all are cheap)."""
    total = 0.0
    for kind, name in wanted(options):
        backend = REGISTRIES[kind].peek(name)
        cost = backend.capabilities.seconds_per_frame_cpu if backend else None
        if cost:
            total += cost * options.fps * (options.size / REFERENCE_EDGE) ** 2
    return round(total, 1) if total else None


def job_estimate(
    options: RenderOptions,
    video_seconds: float | None,
    measured: Mapping[str, Rate] | None = None,
) -> Estimate | None:
    """What the job will cost: from the rate measured for its configuration (`measured`;
    default this host's), else from its backends' declared CPU cost; None when neither knows."""
    from facecast.rates import estimate, host_rates, rate_key

    rates = host_rates().as_dict() if measured is None else measured
    rate = rates.get(rate_key(options))
    if rate is not None:
        return estimate(rate, options, video_seconds)
    declared = cpu_seconds_per_video_second(options)
    if declared is None:
        return None
    # The declared figures are CPU seconds of a 2-core machine, used as wall time too.
    total = None if video_seconds is None else declared * video_seconds
    return Estimate(declared, declared, total, measured=False)


def offered_here() -> list[str]:
    """Every renderer and post-processor this process can run (for worker heartbeats)."""
    return sorted({*render.available(), *post.REGISTRY.names()})


def gpu_class_here() -> list[str]:
    """Names of the GPU-class backends this process can run."""
    here = set(offered_here())
    return sorted(d.name for d in _frame_descriptions() if d.device == "gpu" and d.name in here)


def catalogue() -> list[BackendInfo]:
    """Every renderer and post-processor the registries describe: available here or not, with
    what they offer or what is missing."""
    entries = []
    for described in _frame_descriptions():
        registry = REGISTRIES[described.kind]
        backend = registry.peek(described.name)
        missing = registry.missing(described.name)
        entries.append(
            BackendInfo(
                described,
                backend.capabilities if backend is not None else None,
                missing.missing if missing is not None else (),
                missing.how_to_get if missing is not None else "",
            )
        )
    return entries


def model_users() -> dict[str, str]:
    """Manifest model name -> the backend that needs it (for `facecast models list`)."""
    return {model: d.name for d in _frame_descriptions() for model in d.models}

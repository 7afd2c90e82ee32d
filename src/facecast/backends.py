"""What a job may ask for: renderers and post-processors checked against the registries (and,
in the service, against what live workers offer), the queue a job needs, and the catalogue
that `GET /backends` and `facecast models list` show."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from facecast import post, render, weights
from facecast.config import get_settings
from facecast.errors import BackendUnavailableError
from facecast.options import RenderOptions
from facecast.registry import Capabilities

MAX_OUTPUT_EDGE = 4096
"""Largest upscaled video edge (H.264 level 6 and memory on one worker)."""
UPSCALE_FACTORS = (2, 4)
GPU_QUEUE = "gpu"


@dataclass(frozen=True)
class BackendInfo:
    """One entry of the catalogue."""

    kind: str
    """renderer, upscale or refine."""
    name: str
    available: bool
    capabilities: Capabilities | None
    missing: tuple[str, ...] = ()
    """Model files this server lacks (when not available)."""
    how_to_get: str = ""
    source: str = ""
    """Where `facecast models fetch` takes its weights from ("" when it needs none)."""

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["missing"] = list(self.missing)
        return data


def _missing_weights(backend: str) -> tuple[list[str], str]:
    """Files the named backend lacks, and how to get them ([] when it is not weight-based)."""
    folder = get_settings().models_dir
    for spec in weights.manifest():
        if spec.backend == backend:
            found = weights.status(spec, folder)
            if not found.present:
                return found.missing, spec.how_to_get
            problems = [f"{f.location} ({f.problem})" for f in found.files if not f.verified]
            if problems:
                return problems, "see `facecast models verify`"
    return [], ""


def _unavailable(kind: str, name: str, have: list[str]) -> BackendUnavailableError:
    missing, how = _missing_weights(name)
    listed = ", ".join(have) or "none"
    if missing:
        return BackendUnavailableError(
            f"The {kind} {name!r} needs model files this server lacks: {', '.join(missing)} "
            f"({how}). Available {kind}s: {listed}."
        )
    if name == "wav2lip" and not get_settings().allow_noncommercial:
        return BackendUnavailableError(
            "The refiner 'wav2lip' is non-commercial and off: the operator must set "
            f"FACECAST_ALLOW_NONCOMMERCIAL=true. Available refiners: {listed}."
        )
    return BackendUnavailableError(
        f"The {kind} {name!r} is not available. Available {kind}s: {listed}."
    )


def wanted(options: RenderOptions) -> list[tuple[str, str]]:
    """(kind, name) of every backend the job needs beyond speech."""
    needs = [("renderer", options.renderer)]
    if options.refine:
        needs.append(("refiner", options.refine))
    if options.upscale:
        names = post.for_role("upscale")
        needs.append(("upscaler", names[0] if names else "realesrgan"))
    return needs


def _here(kind: str) -> list[str]:
    if kind == "renderer":
        return render.available()
    return post.for_role("refine" if kind == "refiner" else "upscale")


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


def needs_gpu(options: RenderOptions) -> bool:
    """True when a backend of the job is GPU-class (queued for GPU workers)."""
    for kind, name in wanted(options):
        backend = render.REGISTRY.peek(name) if kind == "renderer" else post.REGISTRY.peek(name)
        if backend is not None and backend.capabilities.device == "gpu":
            return True
    return False


def queue_for(options: RenderOptions, default: str) -> str:
    """The Celery queue of a render job."""
    return GPU_QUEUE if needs_gpu(options) else default


REFERENCE_EDGE = 512
"""seconds_per_frame_cpu is measured on frames of this edge; cost scales with the area."""


def cpu_seconds_per_video_second(options: RenderOptions) -> float | None:
    """CPU time per second of video of the job's costly backends (None when all are cheap)."""
    total = 0.0
    for kind, name in wanted(options):
        backend = render.REGISTRY.peek(name) if kind == "renderer" else post.REGISTRY.peek(name)
        cost = backend.capabilities.seconds_per_frame_cpu if backend else None
        if cost:
            total += cost * options.fps * (options.size / REFERENCE_EDGE) ** 2
    return round(total, 1) if total else None


def offered_here() -> list[str]:
    """Every renderer and post-processor this process can run (for worker heartbeats)."""
    return sorted({*render.available(), *post.REGISTRY.names()})


def gpu_class_here() -> list[str]:
    """Names of the GPU-class backends this process can run."""
    names = [r.name for r in render.REGISTRY.all() if r.capabilities.device == "gpu"]
    names += [p.name for p in post.REGISTRY.all() if p.capabilities.device == "gpu"]
    return sorted(names)


def catalogue(models_dir: Path | None = None) -> list[BackendInfo]:
    """Registered backends, then known ones this server lacks, with what is missing."""
    entries = [BackendInfo("renderer", r.name, True, r.capabilities) for r in render.REGISTRY.all()]
    entries += [BackendInfo(p.role, p.name, True, p.capabilities) for p in post.REGISTRY.all()]
    present = {e.name for e in entries}
    kinds = {"liveportrait": "renderer", "wav2lip": "refine", "realesrgan": "upscale"}
    for backend, kind in kinds.items():
        if backend not in present:
            missing, how = _missing_weights(backend)
            if not missing and backend == "wav2lip":
                missing = ["FACECAST_ALLOW_NONCOMMERCIAL=true"]
            entries.append(BackendInfo(kind, backend, False, None, tuple(missing), how))
    sources = {spec.backend: spec.source for spec in reversed(weights.manifest())}
    return [dataclasses.replace(e, source=sources.get(e.name, "")) for e in entries]

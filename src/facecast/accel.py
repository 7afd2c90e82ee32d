"""onnxruntime sessions for the neural backends: CUDA when this process has it, else the CPU."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def providers() -> list[str]:
    """Execution providers to ask for, best first."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in (CUDA, CPU) if p in available]


def cuda_available() -> bool:
    """True when onnxruntime here can run on a CUDA GPU (the onnxruntime-gpu wheel + a GPU)."""
    return CUDA in providers()


def session(model: Path | bytes, arena: bool = True) -> Any:
    """An InferenceSession on the best provider, quiet about graph optimisation notes.

    `arena=False` hands activation memory back after each run (for a model run once per photo
    in a long-lived worker) instead of keeping its peak for the next run."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = arena
    chosen = providers()
    if CUDA in chosen and isinstance(model, Path):
        model = for_cuda(model)
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=chosen)


def has_gridsample(path: Path) -> bool:
    """Whether the graph in `path` has a GridSample node (read without its weights' data)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type == "GridSample" for node in graph.node)


def for_cuda(path: Path, cache_dir: Path | None = None) -> Path | bytes:
    """`path` ready for the CUDA provider: its 5-D GridSample nodes rewritten into ops CUDA
    runs (weights/gridsample.py), cached under the models dir's converted/ folder, or in
    memory when that folder is read-only; `path` itself when there is nothing to rewrite."""
    from facecast import weights
    from facecast.config import get_settings
    from facecast.weights import gridsample

    if not has_gridsample(path):
        return path
    folder = cache_dir or get_settings().models_dir
    target = weights.converted_path(folder, f"{path.stem}-cuda", [path])
    if target.is_file():
        return target
    replaced: list[int] = []
    blob = gridsample.rewritten_bytes(path.read_bytes(), replaced.append)
    if not replaced or replaced[0] == 0:
        return path
    logger.info("%s: %d 5-D GridSample nodes rewritten for CUDA", path.name, replaced[0])
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(blob)
        partial.replace(target)
    except OSError:
        return blob
    return target


Shape = tuple[int | None, ...]
"""Expected tensor shape; None matches any size (a free batch dimension)."""


class ModelShapeError(ValueError):
    """An operator-supplied ONNX file does not have the signature facecast expects."""


def _dims(value: Any) -> tuple[int | str | None, ...]:
    return tuple(d if isinstance(d, int) else None for d in value.shape)


def checked_session(path: Path, inputs: list[Shape], outputs: list[Shape]) -> Any:
    """A session for `path` whose inputs and outputs match by position, checked shape by shape.

    Exports name their tensors differently, so facecast binds them by position; a fixed
    dimension that differs (or a wrong count) raises ModelShapeError naming the file.
    """
    sess = session(path)
    for kind, found, wanted in (
        ("inputs", sess.get_inputs(), inputs),
        ("outputs", sess.get_outputs(), outputs),
    ):
        if len(found) != len(wanted):
            raise ModelShapeError(
                f"{path}: has {len(found)} {kind}, expected {len(wanted)} "
                f"({', '.join(map(str, wanted))})."
            )
        for i, (tensor, shape) in enumerate(zip(found, wanted, strict=True)):
            dims = _dims(tensor)
            fits = len(dims) == len(shape) and all(
                d is None or s is None or d == s for d, s in zip(dims, shape, strict=True)
            )
            if not fits:
                shown = "x".join("?" if d is None else str(d) for d in dims)
                want = "x".join("N" if s is None else str(s) for s in shape)
                raise ModelShapeError(
                    f"{path}: {kind[:-1]} {i} ({tensor.name}) is {shown}, expected {want}."
                )
    return sess


def input_names(sess: Any) -> list[str]:
    """The session's input names in order (for binding by position)."""
    return [i.name for i in sess.get_inputs()]

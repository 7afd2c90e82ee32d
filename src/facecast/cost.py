"""What a job will cost in CPU-seconds, estimated before it runs, from what it will do.

cost = speech synthesis (seconds of speech x the voice's real-time factor)
     + rendering (frames x the renderer's cost per frame at its size)
     + slow backends (upscaling, GPU-class renderers run on a CPU: their measured CPU time per
       second of video, see facecast.backends.cpu_seconds_per_video_second)

The video is as long as its audio: an upload's declared length (the cap when it declares none)
or the text's spoken length as the voices read it (facecast.speech.limits.typical_seconds,
which counts the signs the voices read out by name). The figures are measured on this
project's 2-core reference machine (bench/render.py, bench/speech.py, bench/upscale.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from facecast.options import RenderOptions

RENDER_SECONDS_PER_FRAME = 0.005
"""CPU-seconds to warp, encode and mux one REFERENCE_EDGE frame (bench/render.py: about 17x
real time warm at 25 fps, 0.0024 s a frame; doubled for cold starts and slower hosts)."""
DEFAULT_SPEECH_SECONDS_PER_SECOND = 0.06
"""A voice whose backend declares no cost (Capabilities.seconds_per_second_cpu): Piper's measured
real-time factor (0.056; Pico 0.012, espeak 0.001)."""


@dataclass(frozen=True)
class JobCost:
    """A job's estimated length and CPU cost."""

    video_seconds: float
    cpu_seconds: float


def speech_cpu_seconds(options: RenderOptions, speech_seconds: float) -> float:
    """CPU time to synthesise `speech_seconds` of speech with the job's voice."""
    from facecast.speech.registry import REGISTRY

    backend = REGISTRY.peek(options.speech_backend or "")
    declared = backend.capabilities.seconds_per_second_cpu if backend is not None else None
    return speech_seconds * (declared or DEFAULT_SPEECH_SECONDS_PER_SECOND)


def render_cpu_seconds(options: RenderOptions, video_seconds: float) -> float:
    """CPU time to render, refine and upscale `video_seconds` of video with `options`."""
    # Imported here: the backend registries load the renderers' modules.
    from facecast.backends import REFERENCE_EDGE, cpu_seconds_per_video_second

    frames = video_seconds * options.fps
    base = frames * RENDER_SECONDS_PER_FRAME * (options.size / REFERENCE_EDGE) ** 2
    slow = cpu_seconds_per_video_second(options) or 0.0
    return base + slow * video_seconds


def job_cost(
    options: RenderOptions, video_seconds: float, *, renders: bool, speaks: bool
) -> JobCost:
    """The whole job: speech when it speaks text, the video when it renders one."""
    cpu = speech_cpu_seconds(options, video_seconds) if speaks else 0.0
    if renders:
        cpu += render_cpu_seconds(options, video_seconds)
    return JobCost(video_seconds=round(video_seconds, 1), cpu_seconds=round(cpu, 1))

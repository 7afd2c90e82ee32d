"""Where the time and memory of a render go, on this machine's CPU.

    python bench/render.py [--long] [--size 512] [--fps 25]

For a ~10 s German sentence (espeak) on the Grace Hopper portrait it prints:
  (a) the renderer alone: WarpAnimator.render over the motion curves, no encoding (BLAS on
      one thread, as render_talking_head runs it), plus the one-time cost of rigging the
      photo, and its CPU time per step (fields, warp, mouth, eyes, head, frame);
  (b) the encoder alone: VideoWriter fed pre-rendered frames from a small ring, its CPU time,
      and the RGB -> YUV conversion it does on its thread;
  (c) end to end, text to finished MP4 via render_talking_head: the cold first call of the
      process and a warm one, with the real-time factor (audio seconds per wall second), the
      CPU seconds of the warm one and its share of the encoder-alone throughput;
  (d) peak resident memory of a fresh process rendering the 10 s clip and, with --long, a
      ~5 minute one: similar peaks mean memory stays flat with clip length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

SENTENCE = (
    "Guten Tag! Ich heiße Grace und erzähle Ihnen heute eine kurze Geschichte. Es war einmal "
    "ein kleines Mädchen, das lebte mit seiner Mutter in einem Haus am Rande des Waldes."
)
"""About 9.5 s from espeak-ng's German voice."""
LONG_REPEATS = 32
"""SENTENCE this many times lasts a little over 5 minutes."""
LONG_TEXT_CHARS = 10_000
"""FACECAST_MAX_TEXT_CHARS for the children (the default cap of 5000 is too short for --long)."""
RING_FRAMES = 16
"""Distinct frames the encoder benchmark cycles through, so memory does not dominate."""
T = TypeVar("T")


def photo() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def timed(func: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = func()
    return value, time.perf_counter() - started


def cpu_timed(func: Callable[[], T]) -> tuple[T, float, float]:
    """`func`'s value, wall seconds and CPU seconds (all threads of this process)."""
    cpu = time.process_time()
    value, wall = timed(func)
    return value, wall, time.process_time() - cpu


def maxrss_mib() -> float:
    """getrusage(RUSAGE_SELF).ru_maxrss in MiB (Linux reports KiB).

    Linux carries ru_maxrss across fork and exec, so a child started by a big parent reports
    at least the parent's size: the children are started while this process is still small.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def high_water_mib() -> float:
    """VmHWM of this process image (Linux), which exec resets; ru_maxrss elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return maxrss_mib()


def row(what: str, value: str, note: str = "") -> None:
    print(f"  {what:<34} {value:>14}  {note}", flush=True)


# --- (d) a render in a fresh process -------------------------------------------------------


def child(repeats: int, size: int, fps: int, output: Path) -> None:
    """Render SENTENCE x `repeats` and print one JSON line with timings and peak memory."""
    from facecast.pipeline import RenderOptions, render_talking_head

    before = high_water_mib()
    text = " ".join([SENTENCE] * repeats)
    options = RenderOptions(fps=fps, size=size)
    result = render_talking_head(photo(), output, text=text, options=options)
    print(
        json.dumps(
            {
                "duration": result.duration,
                "frames": result.frames,
                "elapsed": result.elapsed,
                "hwm_before_mib": before,
                "hwm_peak_mib": high_water_mib(),
                "maxrss_mib": maxrss_mib(),
            }
        )
    )


def run_child(repeats: int, size: int, fps: int, folder: Path) -> dict[str, float]:
    env = dict(os.environ, FACECAST_MAX_TEXT_CHARS=str(LONG_TEXT_CHARS))
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(repeats),
        "--size",
        str(size),
        "--fps",
        str(fps),
        "--output",
        str(folder / f"child-{repeats}.mp4"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def memory_rows(children: list[tuple[str, dict[str, float]]]) -> None:
    for name, got in children:
        row(
            f"(d) peak RSS, {name}",
            f"{got['hwm_peak_mib']:.0f} MiB",
            f"{got['duration']:.1f} s audio, {got['frames']:.0f} frames in "
            f"{got['elapsed']:.1f} s ({got['duration'] / got['elapsed']:.1f}x real time); "
            f"after imports {got['hwm_before_mib']:.0f} MiB, ru_maxrss {got['maxrss_mib']:.0f} MiB",
        )
    if len(children) > 1:
        growth = children[1][1]["hwm_peak_mib"] - children[0][1]["hwm_peak_mib"]
        row("(d) long minus 10 s", f"{growth:+.0f} MiB", "flat if near 0")


# --- (a) (b) (c) in this process -----------------------------------------------------------


def in_process(size: int, fps: int, folder: Path) -> None:
    import cv2
    import numpy as np
    from threadpoolctl import threadpool_limits

    from facecast import motion
    from facecast.pipeline import RenderOptions, prepare_portrait, render_talking_head, synthesize
    from facecast.render.warp import WarpAnimator
    from facecast.video import VideoWriter

    options = RenderOptions(fps=fps, size=size)

    # (c) The first render of a process also loads espeak-ng and the face mesh.
    cold, cold_s = timed(
        lambda: render_talking_head(photo(), folder / "cold.mp4", text=SENTENCE, options=options)
    )
    duration = cold.duration
    row("clip", f"{duration:.2f} s", f"{cold.frames} frames, {len(SENTENCE)} characters")
    row("(c) end to end, cold first call", f"{cold_s:.2f} s", f"{duration / cold_s:.1f}x real time")
    warm, warm_s, warm_cpu = cpu_timed(
        lambda: render_talking_head(photo(), folder / "warm.mp4", text=SENTENCE, options=options)
    )
    row(
        "(c) end to end, warm",
        f"{warm_s:.2f} s",
        f"{duration / warm_s:.1f}x real time, {warm.frames / warm_s:.0f} frames/s",
    )
    row(
        "(c) end to end, warm, CPU",
        f"{warm_cpu:.2f} s",
        f"{warm_cpu / duration:.3f} CPU s per second of video",
    )

    speech, tts_s = timed(lambda: synthesize(SENTENCE, "de"))
    row("    speech (espeak-ng)", f"{tts_s * 1000:.0f} ms")
    portrait, face_s = timed(lambda: prepare_portrait(photo(), options))
    row("    photo + face mesh + crop", f"{face_s * 1000:.0f} ms")
    curves, motion_s = timed(
        lambda: motion.motion_curves(speech.audio, fps, phonemes=speech.phonemes, seed=0)
    )
    row("    motion curves", f"{motion_s * 1000:.0f} ms")

    # (a) The renderer alone.
    animator, prep_s = timed(lambda: WarpAnimator(portrait))
    row("(a) renderer prepare (rig the photo)", f"{prep_s * 1000:.0f} ms")
    values = [curves.frame(i) for i in range(curves.n_frames)]
    ring: list[np.ndarray] = []

    def render_all() -> None:
        for v in values:
            frame = animator.render(v)
            if len(ring) < RING_FRAMES:
                ring.append(frame.copy())

    clock = step_clock()
    if clock is not None:
        animator.clock = clock
    with threadpool_limits(limits=1, user_api="blas"):
        _, render_s, render_cpu = cpu_timed(render_all)
    row(
        "(a) renderer alone",
        f"{len(values) / render_s:.0f} frames/s",
        f"{render_s * 1000 / len(values):.2f} ms/frame",
    )
    row("(a) renderer alone, CPU", f"{render_cpu * 1000 / len(values):.2f} ms/frame")
    if clock is not None:
        for step, seconds in clock.seconds.items():
            row(
                f"(a)   step {step}",
                f"{seconds * 1000 / len(values):.3f} ms/frame",
                f"{seconds / max(render_cpu, 1e-9):.0%} of the renderer's CPU",
            )

    # (b) The encoder alone, fed from the ring.
    width, height = animator.size

    def encode_all() -> None:
        with VideoWriter(
            folder / "encode.mp4", fps=fps, width=width, height=height, audio=speech.audio
        ) as writer:
            for i in range(curves.n_frames):
                writer.write(ring[i % len(ring)])

    _, encode_s, encode_cpu = cpu_timed(encode_all)
    row(
        "(b) encoder alone (H.264 + AAC)",
        f"{curves.n_frames / encode_s:.0f} frames/s",
        f"{encode_s * 1000 / curves.n_frames:.2f} ms/frame",
    )
    row("(b) encoder alone, CPU", f"{encode_cpu * 1000 / curves.n_frames:.2f} ms/frame")
    _, _, convert_cpu = cpu_timed(
        lambda: [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in ring * 4]
    )
    row(
        "(b)   colour conversion (RGB->I420)",
        f"{convert_cpu * 1000 / (4 * len(ring)):.3f} ms/frame",
    )
    encoder_fps = curves.n_frames / encode_s
    row(
        "(c) warm end to end / encoder alone",
        f"{warm.frames / warm_s / encoder_fps:.0%}",
        "of the encoder-alone throughput",
    )


def step_clock() -> Any:
    """A StepClock for the warp renderer (None where this facecast has none)."""
    try:
        from facecast.render.warp import StepClock
    except ImportError:
        return None
    return StepClock.new()


def bench(size: int, fps: int, long: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="facecast-bench-") as tmp:
        folder = Path(tmp)
        # Fresh processes first, while this one is small (see maxrss_mib).
        print("(d) rendering the 10 s clip in a fresh process...", file=sys.stderr, flush=True)
        children = [("10 s clip", run_child(1, size, fps, folder))]
        if long:
            print(
                "(d) rendering the ~5 min clip in a fresh process...", file=sys.stderr, flush=True
            )
            children.append(("5 min clip", run_child(LONG_REPEATS, size, fps, folder)))
        print(
            f"facecast render benchmark: {size}x{size} @ {fps} fps, {os.cpu_count()} CPUs, "
            f"photo {photo().name}",
            flush=True,
        )
        in_process(size, fps, folder)
        memory_rows(children)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--long", action="store_true", help="also render a ~5 minute clip")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.size, args.fps, args.output)
    else:
        bench(args.size, args.fps, args.long)


if __name__ == "__main__":
    main()

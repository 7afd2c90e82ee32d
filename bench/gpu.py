"""The GPU figures docs/backends.md still lacks, measured in one prepared run on a GPU host.

    python bench/gpu.py                 # on the GPU host (onnxruntime-gpu installed)
    python bench/gpu.py --quick         # smoke run on any CPU: tiny sizes, same code paths

Prints, with the provider actually used:
  (a) LivePortrait stand-ins at the real sizes with random weights: warping (5-D GridSample on
      the 1x32x16x64x64 feature volume, opset 20) and a SPADE-sized generator (64 -> 512 px,
      ~55 M parameters): does the CUDA provider run 5-D GridSample, and frames per second at
      batch 1/8/16 in fp32 and fp16 (fp16 by casting the weights and inputs), each as exported
      and with its 5-D GridSample rewritten into gathers (facecast/weights/gridsample.py);
  (b) Real-ESRGAN (the real packaged weights): animevideov3 512 -> 2048 and x4plus 128 -> 512,
      frames per second at batch 1 and 8;
  (c) a whole upscale=2 job through the `gpu`-capable worker path (render_talking_head).
The stand-ins match LivePortrait's tensor signatures and rough parameter counts, not its
exact layers; they answer "does it run, and how fast is this much work".
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facecast import accel
from facecast.options import RenderOptions
from facecast.pipeline import render_talking_head
from facecast.post.realesrgan import NETWORKS, Upscaler
from facecast.weights import gridsample

RNG = np.random.default_rng(0)


def _conv(nodes, inits, x: str, cin: int, cout: int, name: str, act: bool = True) -> str:
    w = (RNG.standard_normal((cout, cin, 3, 3)) * (2 / (9 * cin)) ** 0.5).astype(np.float32)
    inits.append(numpy_helper.from_array(w, f"{name}.w"))
    nodes.append(helper.make_node("Conv", [x, f"{name}.w"], [f"{name}.y"], pads=[1, 1, 1, 1]))
    if not act:
        return f"{name}.y"
    nodes.append(helper.make_node("Relu", [f"{name}.y"], [f"{name}.r"]))
    return f"{name}.r"


def liveportrait_standin(width: int, side: int) -> bytes:
    """feature (N,32,16,S,S) + kp_d + kp_s (N,21,3) -> image (N,3,8S,8S)."""
    nodes, inits = [], []
    n = helper.make_node
    # Deformation grid: identity grid moved by the mean keypoint shift (a real flow field).
    grid = (
        np.stack(
            np.meshgrid(*[np.linspace(-1, 1, k) for k in (side, side, 16)], indexing="ij")[::-1],
            axis=-1,
        )
        .transpose(2, 0, 1, 3)[None]
        .astype(np.float32)
    )  # (1,16,S,S,3)
    inits.append(numpy_helper.from_array(grid, "grid0"))
    nodes += [
        n("Sub", ["kp_driving", "kp_source"], ["shift"]),
        n("ReduceMean", ["shift", "ax1"], ["mshift"], keepdims=1),  # (N,1,3)
        n("Unsqueeze", ["mshift", "ax23"], ["mshift5"]),  # (N,1,1,1,3)
        n("Add", ["grid0", "mshift5"], ["grid"]),
        n("GridSample", ["feature", "grid"], ["warped"], mode="linear", align_corners=0),
        n("Reshape", ["warped", "flat"], ["w2d"]),  # (N,512,S,S)
    ]
    inits += [
        numpy_helper.from_array(np.array([2, 3], np.int64), "ax23"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([0, 512, side, side], np.int64), "flat"),
    ]
    x = _conv(nodes, inits, "w2d", 512, width, "enc")
    for i in range(6):
        x = _conv(nodes, inits, x, width, width, f"mid{i}")
    channels = width
    for level in range(3):  # 64 -> 128 -> 256 -> 512
        inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), f"up{level}.s"))
        nodes.append(n("Resize", [x, "", f"up{level}.s"], [f"up{level}"], mode="nearest"))
        x = _conv(nodes, inits, f"up{level}", channels, channels // 2, f"dec{level}a")
        x = _conv(nodes, inits, x, channels // 2, channels // 2, f"dec{level}b")
        channels //= 2
    x = _conv(nodes, inits, x, channels, 3, "rgb", act=False)
    nodes.append(n("Sigmoid", [x], ["image"]))
    out_side = side * 8
    graph = helper.make_graph(
        nodes,
        "lp-standin",
        [
            helper.make_tensor_value_info("feature", TensorProto.FLOAT, ["N", 32, 16, side, side]),
            helper.make_tensor_value_info("kp_driving", TensorProto.FLOAT, ["N", 21, 3]),
            helper.make_tensor_value_info("kp_source", TensorProto.FLOAT, ["N", 21, 3]),
        ],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, out_side, out_side])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model.SerializeToString()


def to_fp16(blob: bytes) -> bytes:
    """The same graph with float16 weights and inputs (a plain cast, no float16 library)."""
    model = onnx.load_from_string(blob)
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT and not init.name.endswith(".s"):
            array = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(array, init.name))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    return model.SerializeToString()


def fps(run, frames: int, repeats: int) -> float:
    run()
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return frames * repeats / (time.perf_counter() - started)


def bench_liveportrait(quick: bool) -> None:
    side, width, batches = (16, 64, (1, 2)) if quick else (64, 512, (1, 8, 16))
    blob = liveportrait_standin(width, side)
    print(f"(a) LivePortrait stand-in {side}->{side * 8} px, width {width}")
    half = to_fp16(blob)
    variants = {
        "fp32": blob,
        "fp32 rewritten": gridsample.rewritten_bytes(blob),
        "fp16": half,
        "fp16 rewritten": gridsample.rewritten_bytes(half),
    }
    for precision, graph in variants.items():
        try:
            sess = accel.session(graph)
        except Exception as exc:  # report and go on: this is what the run is for
            print(f"  {precision}: cannot load: {str(exc).splitlines()[0]}")
            continue
        provider = sess.get_providers()[0]
        dtype = np.float32 if precision.startswith("fp32") else np.float16
        for batch in batches:
            feed = {
                "feature": RNG.standard_normal((batch, 32, 16, side, side)).astype(dtype),
                "kp_driving": RNG.uniform(-0.5, 0.5, (batch, 21, 3)).astype(dtype),
                "kp_source": RNG.uniform(-0.5, 0.5, (batch, 21, 3)).astype(dtype),
            }
            try:
                rate = fps(lambda f=feed, s=sess: s.run(None, f), batch, 2 if quick else 10)
                print(f"  {precision} {provider} batch {batch:2d}: {rate:7.1f} frames/s")
            except Exception as exc:
                print(f"  {precision} {provider} batch {batch}: failed: {str(exc).splitlines()[0]}")


def bench_realesrgan(quick: bool, models: Path) -> None:
    print("(b) Real-ESRGAN, packaged weights")
    cases = (("animevideov3-x4", 64 if quick else 512), ("x4plus", 32 if quick else 128))
    for key, side in cases:
        upscaler = Upscaler(NETWORKS[key], models)
        provider = upscaler.session.get_providers()[0]
        for batch in (1, 2) if quick else (1, 8):
            images = RNG.integers(0, 255, (batch, side, side, 3), dtype=np.uint8)
            rate = fps(lambda i=images, u=upscaler: u(i), batch, 1 if quick else 5)
            print(f"  {key:16s} {side}->{side * 4} {provider} batch {batch}: {rate:6.2f} frames/s")


def bench_job(quick: bool) -> None:
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    options = RenderOptions(size=256 if quick else 512, fps=5 if quick else 25, upscale=2)
    with tempfile.TemporaryDirectory() as scratch:
        result = render_talking_head(
            photo, Path(scratch) / "job.mp4", text="Guten Tag, wie geht es Ihnen?", options=options
        )
    print(
        f"(c) upscale=2 job, {options.size}->{options.size * 2} px: {result.frames} frames "
        f"in {result.elapsed:.1f} s ({result.frames / result.elapsed:.1f} frames/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU smoke run")
    args = parser.parse_args()
    print(f"providers: {accel.providers()}")
    bench_liveportrait(args.quick)
    bench_realesrgan(args.quick, Path(tempfile.mkdtemp(prefix="facecast-gpu-bench-")))
    bench_job(args.quick)


if __name__ == "__main__":
    main()

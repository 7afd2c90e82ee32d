"""Real-ESRGAN on this machine's CPU: onnxruntime (converted) against the ncnn package, and
what super-resolution buys on a small face.

    python bench/upscale.py [--out docs/img/restore.jpg]

Prints (a) seconds per frame for realesr-animevideov3 (512 -> 2048, the output-frame network)
and RealESRGAN_x4plus (128 -> 512, the face-restoring network) with onnxruntime and, when the
`ncnn` package is installed, with ncnn on the same .param/.bin; (b) PSNR against the original
of the Grace Hopper face crop downscaled 512 -> 128 and brought back by bicubic, animevideov3
and x4plus, and saves the side-by-side image; (c) the quarter-size photo framed at 512 px
with and without restoring the small face (docs/img/small-face.jpg).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from facecast import weights
from facecast.face import detect_landmarks
from facecast.image import load_image
from facecast.post.realesrgan import NETWORKS, Upscaler
from facecast.restore import restore_region

REPEATS = 2


def timed(run, repeats: int = REPEATS) -> float:
    run()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - started) / repeats


def ncnn_runner(key: str, image: np.ndarray):
    try:
        import ncnn
    except ImportError:
        return None
    network = NETWORKS[key]
    files = weights.require(network.model, Path("."))
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.load_param(str(files[f"{network.stem}.param"]))
    net.load_model(str(files[f"{network.weights}.bin"]))
    x = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0

    def run() -> np.ndarray:
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat(x))
        _, out = extractor.extract("output")
        return np.array(out)

    return run


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/restore.jpg"))
    args = parser.parse_args()
    photo = load_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    models = Path(tempfile.mkdtemp(prefix="facecast-bench-"))
    frame = cv2.resize(photo, (512, 512), interpolation=cv2.INTER_AREA)
    small = cv2.resize(photo, (128, 128), interpolation=cv2.INTER_AREA)
    print("speed, 2-core CPU, seconds per image")
    for key, image in (("animevideov3-x4", frame), ("x4plus", small)):
        upscaler = Upscaler(NETWORKS[key], models)
        ort_s = timed(lambda u=upscaler, i=image: u(i[None]))
        runner = ncnn_runner(key, image)
        ncnn_s = timed(runner) if runner else float("nan")
        side = image.shape[0]
        print(f"  {key:16s} {side}->{side * 4}: onnxruntime {ort_s:.2f}  ncnn {ncnn_s:.2f}")
    # A face crop at 512, taken down to 128 and back up four times.
    landmarks = detect_landmarks(photo)
    _, region = restore_region(photo, landmarks)
    original = cv2.resize(region, (512, 512), interpolation=cv2.INTER_AREA)
    low = cv2.resize(original, (128, 128), interpolation=cv2.INTER_AREA)
    results = {"bicubic": cv2.resize(low, (512, 512), interpolation=cv2.INTER_CUBIC)}
    for key in ("animevideov3-x4", "x4plus"):
        results[key] = Upscaler(NETWORKS[key], models)(low[None])[0]
    print("quality, face crop 512 -> 128 -> 512, PSNR against the original")
    for name, image in results.items():
        print(f"  {name:16s} {psnr(image, original):.2f} dB")
    tiles = [original, *results.values()]
    labels = ["original 512", *results]
    sheet = np.concatenate(tiles, axis=1)
    for i, label in enumerate(labels):
        cv2.putText(
            sheet,
            label,
            (i * 512 + 10, 30),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.9,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"side-by-side: {args.out}")
    small_face(args.out.with_name("small-face.jpg"))


if __name__ == "__main__":
    main()


def small_face(out: Path) -> None:
    """The Grace Hopper photo at a quarter of its size, framed at 512 px with and without
    the x4plus restore: the image the renderer animates."""
    import io

    from PIL import Image

    from facecast.options import RenderOptions
    from facecast.pipeline import prepare_portrait

    photo = load_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    small = cv2.resize(photo, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, format="PNG")
    tiles = []
    for restore in (False, True):
        started = time.perf_counter()
        portrait = prepare_portrait(buffer.getvalue(), RenderOptions(size=512, restore=restore))
        elapsed = time.perf_counter() - started
        grey = cv2.cvtColor(portrait.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail = float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())
        label = "restored (x4plus)" if restore else "bicubic (today)"
        print(
            f"  small face {small.shape[1]}x{small.shape[0]} -> 512, {label}: "
            f"{elapsed:.1f} s, detail (mean |Laplacian|) {detail:.2f}"
        )
        tile = portrait.rgb.copy()
        cv2.putText(
            tile, label, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA
        )
        tiles.append(tile)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))
    print(f"side-by-side: {out}")

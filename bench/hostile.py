"""Hostile uploads: 8 at once of each kind the attacks of issue 21 use, against
`facecast serve --workers 1`; the API's and the worker's peak memory.

    python bench/hostile.py                 # every kind, 8 concurrent uploads each
    python bench/hostile.py --concurrent 16

Kinds: the photos of tests/test_attacks_round3.py (JPEG marker and fill-byte floods, PNG
private/text chunk floods and tiny IDAT chunks, a WebP chunk flood, a lossless WebP past the
decode budget, HEIC/AVIF whose `ispe` lies), as the photo of POST /animate; the voice samples
(200 MHz, 768 kHz, 3 Hz, 255 channels) as `voice_clone_wav` of POST /tts and as the recording
of POST /animate. Every upload must be refused (4xx). It prints, per kind, the answers and the
slowest one, the API's resident memory (sampled every 10 ms) and its peak, the worker
processes' peak (VmHWM), and what decoding the same file as the worker would costs (a fresh
process running facecast.image.load_photo or facecast.audio.load_audio: its peak growth).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from load import API_CEILING_MIB, RSS_SAMPLE_S, child_pids, peak_memory_mib, rss_mib
from service import PHOTO, add_service_arguments, free_port, start_service, stop_service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

UPLOAD_BYTES = 14_000_000
"""Size of the flood files (the issue's attacks were 14 MB; the upload limit is 15 MiB)."""


def descendants(pid: int) -> list[int]:
    """Every process below `pid`."""
    found, todo = [], [pid]
    while todo:
        for child in child_pids(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def main() -> None:
    from test_attacks_round3 import HOSTILE_SAMPLES, hostile_photos, peak_in_subprocess

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_service_arguments(parser, jobs=0, size=256)
    parser.add_argument("--concurrent", type=int, default=8)
    args = parser.parse_args()
    args.workers = 1
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    ok = True
    with tempfile.TemporaryDirectory(prefix="facecast-hostile-") as tmp:
        folder = Path(tmp)
        photos = hostile_photos(UPLOAD_BYTES, folder)
        cases: list[tuple[str, str, str, bytes]] = [
            (f"photo {name}", "/animate", "source_image", data) for name, data in photos.items()
        ]
        cases += [(f"voice {n}", "/tts", "voice_clone_wav", d) for n, d in HOSTILE_SAMPLES.items()]
        cases += [(f"audio {n}", "/animate", "audio", d) for n, d in HOSTILE_SAMPLES.items()]
        log = folder / "serve.log"
        process = start_service(
            args, folder / "data", port, log, FACECAST_RATE_LIMIT_PER_MINUTE="0"
        )
        try:
            with httpx.Client(base_url=base_url, timeout=120) as client:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    try:
                        if client.get("/ready").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.3)
                portrait = Path(PHOTO).read_bytes()
                before = rss_mib(process.pid)
                print(
                    f"{args.concurrent} concurrent uploads of each kind; API RSS at start "
                    f"{before:.0f} MiB (ceiling {API_CEILING_MIB} MiB)"
                )
                print(
                    f"{'kind':34} {'answers':22} {'slowest':>8} {'API peak':>9} "
                    f"{'worker peak':>12} {'decode alone':>13}"
                )
                for kind, route, field, data in cases:
                    peak, done = rss_mib(process.pid), threading.Event()

                    def sample(done: threading.Event = done) -> None:
                        nonlocal peak
                        while not done.is_set():
                            peak = max(peak, rss_mib(process.pid))
                            done.wait(RSS_SAMPLE_S)

                    sampler = threading.Thread(target=sample)
                    sampler.start()

                    def post(
                        _: int, route: str = route, field: str = field, data: bytes = data
                    ) -> tuple[int, float]:
                        files = {field: ("upload", data)}
                        form: dict[str, str] = {"text": "Hallo."} if field != "audio" else {}
                        if route == "/animate":
                            form["consent"] = "true"
                            if field != "source_image":
                                files["source_image"] = ("portrait.jpg", portrait)
                        started = time.monotonic()
                        answer = httpx.post(base_url + route, data=form, files=files, timeout=120)
                        return answer.status_code, time.monotonic() - started

                    with ThreadPoolExecutor(args.concurrent) as pool:
                        results = list(pool.map(post, range(args.concurrent)))
                    done.set()
                    sampler.join()
                    worker_peak = max(map(peak_memory_mib, descendants(process.pid)), default=0.0)
                    file = folder / "case"
                    file.write_bytes(data)
                    call = (
                        f"facecast.image.load_photo(Path({str(file)!r}))"
                        if kind.startswith("photo")
                        else f"facecast.audio.load_audio(Path({str(file)!r}))"
                    )
                    alone = peak_in_subprocess(call)
                    statuses = sorted({code for code, _ in results})
                    slowest = max(elapsed for _, elapsed in results)
                    refused = all(400 <= code < 500 for code in statuses)
                    ok = ok and refused and peak < API_CEILING_MIB
                    print(
                        f"{kind:34} {statuses!s:22} {slowest:7.2f}s {peak:8.0f}M "
                        f"{worker_peak:11.0f}M {float(alone['growth_mib']):+12.0f}M"
                    )
                after = rss_mib(process.pid)
                print(f"API RSS at the end {after:.0f} MiB")
        finally:
            stop_service(process)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Load: 50 concurrent clients submit 200 short text jobs to `facecast serve --workers 2`.

    python bench/load.py                                    # both client models, no Redis
    python bench/load.py --redis-url redis://127.0.0.1:6379/12 --jobs 200 --clients 50
    python bench/load.py --mode burst                       # only the saturation run
    python bench/load.py --mode uploads                     # API memory, 16 large photos at once

Two client models, each against a fresh `facecast serve`:

- `app`: each client behaves like the playground or the Flet app. It opens at a random moment
  in the first `--ramp` seconds, posts a job, follows it over the WebSocket until it is final,
  pauses up to `--think` seconds (the user watches the video) and posts its next job.
- `burst`: each client posts its next job the moment the previous POST returned, without
  waiting for any job. This saturates the API: with C clients always in flight, Little's law
  makes the latency C x (API time per submission) / (cores the API gets), so this run reports
  the API's capacity (submissions per second) rather than a latency it could meet.

- `uploads`: `--uploads` clients (16) post large-dimension photos at the same moment: 48 MP
  greyscale PNGs and 192 MP JPEGs, and the crafted ones (a 20000 x 2000 PNG, a 6000 x 6000
  progressive JPEG with 400 scans). It reports the API's resident memory before, its peak
  (sampled every 10 ms) and after, against the ceiling in the README; no worker runs.

`app` and `burst` check that every job ends `done`, none is lost and none ran twice (ids unique,
one attempt each), and print submit latency p50/p99 (target p99 < 50 ms), queue pickup latency,
jobs per minute and the peak memory (VmHWM) of the API process.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.sync.client import connect

from service import (
    FINAL,
    PHOTO,
    Timing,
    add_service_arguments,
    collect,
    free_port,
    percentile,
    start_service,
    stop_service,
    wait_ready,
)

TEXT = "Hallo {i}."
TARGET_P99_MS = 50.0
API_CEILING_MIB = 400
"""The API's memory ceiling under concurrent large uploads (README, "Photos")."""
RSS_SAMPLE_S = 0.01
PAGE_BYTES = 4096


@dataclass(frozen=True)
class Run:
    """What one client model measured."""

    mode: str
    submitted: list[tuple[str, float]]
    submit_wall_s: float
    attempts: list[int]
    timings: list[Timing]
    peak_rss_mib: float


def peak_memory_mib(pid: int) -> float:
    """VmHWM (peak resident memory) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Clients:
    """`count` clients with their own connection, sharing `jobs` job numbers.

    The HTTP clients are made before the clock starts: building one (TLS context and all) is
    work of the load generator, not of the service.
    """

    def __init__(self, base_url: str, count: int, jobs: int, size: int) -> None:
        self.http = [httpx.Client(base_url=base_url, timeout=60) for _ in range(count)]
        self.jobs = jobs
        self.size = size
        self.photo = PHOTO.read_bytes()
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.submitted: list[tuple[str, float]] = []

    def next_job(self) -> int | None:
        with self.lock:
            i = next(self.counter)
        return i if i < self.jobs else None

    def post(self, client: int, i: int) -> str:
        """POST /animate job number `i` as client `client`; records (job id, latency)."""
        data = {"text": TEXT.format(i=i), "consent": "true", "size": str(self.size)}
        begin = time.perf_counter()
        answer = self.http[client].post(
            "/animate", data=data, files={"source_image": (PHOTO.name, self.photo)}
        )
        latency = time.perf_counter() - begin
        answer.raise_for_status()
        job_id: str = answer.json()["job_id"]
        with self.lock:
            self.submitted.append((job_id, latency))
        return job_id

    def close(self) -> None:
        for client in self.http:
            client.close()


def follow(ws_url: str, job_id: str) -> None:
    """Read the job's WebSocket until it reports a final state."""
    with connect(f"{ws_url}/ws/jobs/{job_id}", open_timeout=30) as socket:
        for message in socket:
            if json.loads(message).get("status") in FINAL:
                return


def app_client(clients: Clients, index: int, ws_url: str, args: argparse.Namespace) -> None:
    """Like the playground: post, follow the job to its end, pause, post the next."""
    rng = random.Random(index)
    time.sleep(rng.uniform(0, args.ramp))
    while (i := clients.next_job()) is not None:
        follow(ws_url, clients.post(index, i))
        time.sleep(rng.uniform(0, args.think))


def burst_client(clients: Clients, index: int, _: str, __: argparse.Namespace) -> None:
    """Post the next job as soon as the last POST returned."""
    while (i := clients.next_job()) is not None:
        clients.post(index, i)


MODES: dict[str, Callable[[Clients, int, str, argparse.Namespace], None]] = {
    "app": app_client,
    "burst": burst_client,
}


def measure(mode: str, args: argparse.Namespace) -> Run:
    """Start a fresh `facecast serve`, drive it with one client model, collect every job."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="facecast-load-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "serve.log"
        # No rate limit: all clients come from 127.0.0.1 and would share one bucket.
        process = start_service(args, data_dir, port, log, FACECAST_RATE_LIMIT_PER_MINUTE="0")
        try:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                wait_ready(client, process, log)
                clients = Clients(base_url, args.clients, args.jobs, args.size)
                ws_url = f"ws://127.0.0.1:{port}"
                begin = time.monotonic()
                with ThreadPoolExecutor(args.clients) as pool:
                    runs = [
                        pool.submit(MODES[mode], clients, index, ws_url, args)
                        for index in range(args.clients)
                    ]
                    for finished in runs:
                        finished.result()
                submit_wall = time.monotonic() - begin
                clients.close()
                timings = collect(client, clients.submitted)
            peak = peak_memory_mib(process.pid)
        finally:
            stop_service(process)
        attempts = [
            json.loads((data_dir / job_id / "job.json").read_text())["state"]["attempts"]
            for job_id, _ in clients.submitted
        ]
    return Run(mode, clients.submitted, submit_wall, attempts, timings, peak)


def report(run: Run, args: argparse.Namespace) -> bool:
    """Print one run; True when every job was done exactly once."""
    ms = 1000.0
    ids = [job_id for job_id, _ in run.submitted]
    latency = [s * ms for _, s in run.submitted]
    pickup = [(t.started - t.created) * ms for t in run.timings]
    span = max(t.finished for t in run.timings) - min(t.created for t in run.timings)
    done = sum(t.status == "done" for t in run.timings)
    p99 = percentile(latency, 99)
    if run.mode == "app":
        how = (
            f"app clients: start within {args.ramp:g} s, follow each job over the WebSocket, "
            f"pause up to {args.think:g} s"
        )
    else:
        how = "burst: every client posts again as soon as its POST returned"
    print(f"{how}; {args.jobs} jobs from {args.clients} clients")
    print(
        f"  done {done}/{args.jobs}, lost {args.jobs - len(run.timings)}, unique ids "
        f"{len(set(ids))}, ran more than once {sum(a != 1 for a in run.attempts)}"
    )
    verdict = "met" if p99 < TARGET_P99_MS else "missed"
    print(
        f"  submit latency  p50 {percentile(latency, 50):7.1f} ms  p99 {p99:7.1f} ms  "
        f"(target p99 < {TARGET_P99_MS:g} ms: {verdict})"
    )
    print(
        f"  submissions     {len(ids) / run.submit_wall_s:7.1f} /s over {run.submit_wall_s:.1f} s"
    )
    print(
        f"  queue pickup    p50 {percentile(pickup, 50):7.0f} ms  p99 "
        f"{percentile(pickup, 99):7.0f} ms  (created -> started, includes waiting)"
    )
    print(f"  throughput      {len(run.timings) / span * 60:7.1f} jobs/min over {span:.1f} s")
    print(f"  API process     peak RSS {run.peak_rss_mib:.0f} MiB")
    return (
        done == args.jobs
        and len(set(ids)) == args.jobs
        and all(attempt == 1 for attempt in run.attempts)
    )


def rss_mib(pid: int) -> float:
    """Resident memory of a process now, in MiB."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES / 2**20


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (started by any of its threads)."""
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    return [int(child) for task in tasks for child in task.read_text().split()]


def large_uploads() -> list[tuple[str, bytes]]:
    """Large-dimension photos (real content, so they pass the checks) and crafted ones."""
    import io

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import progressive_scan_bomb, wide_png

    grace = Image.open(PHOTO).convert("RGB")
    png, jpeg = io.BytesIO(), io.BytesIO()
    grace.convert("L").resize((6000, 8000), Image.Resampling.BILINEAR).save(png, "PNG")
    big = grace.resize((12_000, 16_000), Image.Resampling.BILINEAR)
    big.save(jpeg, "JPEG", quality=30)
    del big
    return [
        ("48mp.png", png.getvalue()),
        ("192mp.jpg", jpeg.getvalue()),
        ("wide.png", wide_png(20_000, 2_000)),
        ("scans.jpg", progressive_scan_bomb(grace)),
    ]


def measure_uploads(args: argparse.Namespace) -> bool:
    """`--uploads` photos posted at once to an API without workers; its memory throughout."""
    photos = large_uploads()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="facecast-load-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "serve.log"
        args_no_workers = argparse.Namespace(**{**vars(args), "workers": 0})
        process = start_service(
            args_no_workers, data_dir, port, log, FACECAST_RATE_LIMIT_PER_MINUTE="0"
        )
        try:
            with httpx.Client(base_url=base_url, timeout=120) as client:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    with contextlib.suppress(httpx.TransportError):
                        if client.get("/health").status_code == 200:
                            break
                    time.sleep(0.2)
                before = rss_mib(process.pid)
                peak, done = before, threading.Event()

                def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, rss_mib(process.pid))
                        done.wait(RSS_SAMPLE_S)

                sampler = threading.Thread(target=sample)
                sampler.start()
                clients = [httpx.Client(base_url=base_url, timeout=120) for _ in photos]
                begin = time.monotonic()

                def post(i: int) -> int:
                    name, data = photos[i % len(photos)]
                    form = {"text": TEXT.format(i=i), "consent": "true", "size": str(args.size)}
                    answer = clients[i % len(clients)].post(
                        "/animate", data=form, files={"source_image": (name, data)}
                    )
                    return answer.status_code

                with ThreadPoolExecutor(args.uploads) as pool:
                    statuses = list(pool.map(post, range(args.uploads)))
                wall = time.monotonic() - begin
                upload_peak = peak
                time.sleep(1.0)
                after = rss_mib(process.pid)

                def faces(i: int) -> int:
                    name, data = photos[i % 2]  # the large PNG and the large JPEG
                    answer = clients[i].post("/faces", files={"source_image": (name, data)})
                    return answer.status_code

                with ThreadPoolExecutor(4) as pool:
                    face_statuses = list(pool.map(faces, range(4)))
                helper = max(map(peak_memory_mib, child_pids(process.pid)), default=0.0)
                done.set()
                sampler.join()
                for each in clients:
                    each.close()
        finally:
            stop_service(process)
    sizes = ", ".join(f"{name} {len(data) / 2**20:.1f} MB" for name, data in photos)
    print(f"{args.uploads} concurrent uploads, cycling through: {sizes}")
    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    print(f"  answers         {counts} in {wall:.1f} s")
    verdict = "met" if upload_peak < API_CEILING_MIB else "missed"
    print(
        f"  API process     RSS before {before:.0f} MiB, peak {upload_peak:.0f} MiB, after "
        f"{after:.0f} MiB (ceiling {API_CEILING_MIB} MiB: {verdict})"
    )
    print(
        f"  then 4 x POST /faces (48 MP PNG, 192 MP JPEG): {face_statuses}, API peak "
        f"{peak:.0f} MiB; the face search helper process peaked at {helper:.0f} MiB"
    )
    return upload_peak < API_CEILING_MIB and all(code in (202, 400) for code in statuses)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_service_arguments(parser, jobs=200, size=128)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--mode", choices=[*MODES, "both", "uploads"], default="both")
    parser.add_argument("--uploads", type=int, default=16, help="uploads mode: at once")
    parser.add_argument("--ramp", type=float, default=5.0, help="app clients start within (s)")
    parser.add_argument("--think", type=float, default=2.0, help="app client pause, max (s)")
    args = parser.parse_args()
    if args.mode == "uploads":
        if not measure_uploads(args):
            sys.exit(1)
        return
    modes = list(MODES) if args.mode == "both" else [args.mode]
    print(f"facecast serve --workers {args.workers}, ", end="")
    print(f"Redis {args.redis_url}" if args.redis_url else "server-less (filesystem queue)", end="")
    print(f", video size {args.size}")
    ok = all([report(measure(mode, args), args) for mode in modes])
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

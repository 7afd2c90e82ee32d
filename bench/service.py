"""Throughput of the job service: N text jobs through `facecast serve` with W workers.

    python bench/service.py                         # server-less queue (no Redis)
    python bench/service.py --redis-url redis://127.0.0.1:6379/12
    python bench/service.py --jobs 20 --workers 2 --size 256

Prints submit latency (POST /animate) p50/p99, queue pickup latency (created -> started),
wall time per job (created -> finished), and jobs per minute over the whole batch.
Every job has its own text, so no result is reused from the content-hash cache.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import matplotlib

import facecast

PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
TEXT = "Satz Nummer {i}: Heute ist ein schöner Tag, und die Sonne scheint über der Stadt."
FINAL = {"done", "error", "canceled", "rejected"}
READY_TIMEOUT_S = 180.0
JOB_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Timing:
    """One job as the service reported it (seconds since the epoch) and its submit latency."""

    submit_s: float
    created: float
    started: float
    finished: float
    status: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in 0..100."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return (
        statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]
        if q < 100
        else ordered[-1]
    )


def start_service(
    args: argparse.Namespace, data_dir: Path, port: int, log: Path, **settings: str
) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FACECAST_") and k != "REDIS_URL"
    }
    src = str(Path(facecast.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["FACECAST_DATA_DIR"] = str(data_dir)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    env.update(settings)
    command = [
        sys.executable,
        "-m",
        "facecast.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
    ]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_service(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (workers finish or hand back their jobs), then kill after a minute."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def add_service_arguments(parser: argparse.ArgumentParser, jobs: int, size: int) -> None:
    """The options both service benchmarks take."""
    parser.add_argument("--jobs", type=int, default=jobs)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=size)
    parser.add_argument("--redis-url", default=None, help="use this Redis; default: no server")


def wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            sys.exit(f"facecast serve exited:\n{log.read_text()[-3000:]}")
        try:
            if client.get("/ready", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def submit(client: httpx.Client, i: int, size: int) -> tuple[str, float]:
    data = {"text": TEXT.format(i=i), "consent": "true", "size": str(size)}
    with PHOTO.open("rb") as photo:
        begin = time.perf_counter()
        answer = client.post("/animate", data=data, files={"source_image": (PHOTO.name, photo)})
        latency = time.perf_counter() - begin
    answer.raise_for_status()
    job_id: str = answer.json()["job_id"]
    return job_id, latency


def collect(client: httpx.Client, submitted: list[tuple[str, float]]) -> list[Timing]:
    pending = dict(submitted)
    timings: list[Timing] = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            view = client.get(f"/jobs/{job_id}").json()
            if view["status"] in FINAL:
                timings.append(
                    Timing(
                        pending.pop(job_id),
                        epoch(view["created_at"]),
                        epoch(view["started_at"] or view["created_at"]),
                        epoch(view["finished_at"]),
                        view["status"],
                    )
                )
        time.sleep(0.2)
    if pending:
        sys.exit(f"{len(pending)} jobs did not finish in {JOB_TIMEOUT_S} s")
    return timings


def report(args: argparse.Namespace, timings: list[Timing], ready_s: float) -> None:
    ms = 1000.0
    submit = [t.submit_s * ms for t in timings]
    by_creation = sorted(timings, key=lambda t: t.created)
    pickup = [(t.started - t.created) * ms for t in by_creation]
    idle_pickup = pickup[: args.workers]  # the first jobs found idle workers
    wall = [t.finished - t.created for t in timings]
    service = [t.finished - t.started for t in timings]
    span = max(t.finished for t in timings) - min(t.created for t in timings)
    failed = [t.status for t in timings if t.status != "done"]
    mode = f"Redis {args.redis_url}" if args.redis_url else "server-less (filesystem queue)"
    rows = [
        ("submit latency", percentile(submit, 50), percentile(submit, 99), "ms", "POST /animate"),
        ("pickup, idle", min(idle_pickup), max(idle_pickup), "ms", "first jobs; min/max"),
        ("pickup, batch", percentile(pickup, 50), percentile(pickup, 99), "ms", "incl. waiting"),
        ("wall per job", percentile(wall, 50), percentile(wall, 99), "s", "created -> finished"),
        ("work per job", statistics.median(service), max(service), "s", "started -> finished"),
    ]
    print(
        f"facecast serve, {args.workers} workers, {mode}; {len(timings)} jobs at size {args.size}"
        f" on {os.cpu_count()} CPUs; ready after {ready_s:.1f} s"
    )
    for name, low, high, unit, note in rows:
        print(f"  {name:<15} p50/min {low:8.2f} {unit:<2}  p99/max {high:8.2f} {unit:<2}  ({note})")
    print(f"  {'throughput':<15} {len(timings) / span * 60:.1f} jobs/min over {span:.1f} s")
    if failed:
        print(f"  NOT DONE: {failed}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_service_arguments(parser, jobs=20, size=256)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="facecast-bench-") as tmp:
        log = Path(tmp) / "serve.log"
        process = start_service(args, Path(tmp) / "data", port, log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                ready_s = wait_ready(client, process, log)
                submitted = [submit(client, i, args.size) for i in range(args.jobs)]
                timings = collect(client, submitted)
            report(args, timings, ready_s)
        finally:
            stop_service(process)


if __name__ == "__main__":
    main()

"""Load: many clients submit short text jobs at once to `facecast serve --workers 2`.

    python bench/load.py                                    # 200 jobs, 50 clients, no Redis
    python bench/load.py --redis-url redis://127.0.0.1:6379/12 --jobs 200 --clients 50

Checks that every job finishes `done`, none is lost and none ran twice (job ids unique, one
attempt each), and prints submit latency p50/p99 (target p99 < 50 ms), queue pickup latency,
jobs per minute and the peak memory (VmHWM) of the API process.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from service import PHOTO, collect, free_port, percentile, start_service, wait_ready

TEXT = "Hallo {i}."


def peak_memory_mib(pid: int) -> float:
    """VmHWM (peak resident memory) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def submit_all(base_url: str, jobs: int, clients: int, size: int) -> list[tuple[str, float]]:
    """`jobs` POST /animate from `clients` threads, each with its own connection."""
    photo = PHOTO.read_bytes()
    local = threading.local()

    def one(i: int) -> tuple[str, float]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=60)
        data = {"text": TEXT.format(i=i), "consent": "true", "size": str(size)}
        begin = time.perf_counter()
        answer = local.client.post(
            "/animate", data=data, files={"source_image": (PHOTO.name, photo)}
        )
        latency = time.perf_counter() - begin
        answer.raise_for_status()
        return answer.json()["job_id"], latency

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(jobs)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--redis-url", default=None, help="use this Redis; default: no server")
    args = parser.parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="facecast-load-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "serve.log"
        # No rate limit: all clients come from 127.0.0.1 and would share one bucket.
        process = start_service(args, data_dir, port, log, FACECAST_RATE_LIMIT_PER_MINUTE="0")
        try:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                wait_ready(client, process, log)
                begin = time.monotonic()
                submitted = submit_all(base_url, args.jobs, args.clients, args.size)
                submit_wall = time.monotonic() - begin
                timings = collect(client, submitted)
            peak = peak_memory_mib(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        ids = [job_id for job_id, _ in submitted]
        attempts = [
            json.loads((data_dir / job_id / "job.json").read_text())["state"]["attempts"]
            for job_id in ids
        ]
    ms = 1000.0
    latency = [s * ms for _, s in submitted]
    pickup = [(t.started - t.created) * ms for t in timings]
    span = max(t.finished for t in timings) - min(t.created for t in timings)
    done = sum(t.status == "done" for t in timings)
    mode = f"Redis {args.redis_url}" if args.redis_url else "server-less (filesystem queue)"
    print(
        f"facecast serve --workers {args.workers}, {mode}: {args.jobs} jobs from "
        f"{args.clients} clients, size {args.size}"
    )
    print(
        f"  done {done}/{args.jobs}, lost {args.jobs - len(timings)}, unique ids {len(set(ids))}"
        f", ran more than once {sum(a != 1 for a in attempts)}"
    )
    print(
        f"  submit latency  p50 {percentile(latency, 50):7.1f} ms  p99 "
        f"{percentile(latency, 99):7.1f} ms  (all submitted in {submit_wall:.1f} s)"
    )
    print(
        f"  queue pickup    p50 {percentile(pickup, 50):7.0f} ms  p99 "
        f"{percentile(pickup, 99):7.0f} ms  (created -> started, includes waiting)"
    )
    print(f"  throughput      {len(timings) / span * 60:.1f} jobs/min over {span:.1f} s")
    print(f"  API process     peak RSS {peak:.0f} MiB")
    if done != args.jobs or len(set(ids)) != args.jobs or any(a != 1 for a in attempts):
        sys.exit(1)


if __name__ == "__main__":
    main()

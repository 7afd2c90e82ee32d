"""Time to the first playable segment: text jobs through `facecast serve` with a warm worker.

    python bench/stream.py --redis-url redis://127.0.0.1:6379/12
    python bench/stream.py --jobs 20 --size 512 --workers 1

One job at a time (the worker is warm and idle when each is submitted), each with its own
text so nothing is reused. For each job the clock starts before POST /animate and stops when
the first segment is playable: the job view has its `stream_url`, the playlist names a
segment, and the init section and that segment have been downloaded. Prints p50/p95 over the
jobs, the first job apart (its photo is new to the worker: face analysis not yet cached),
and the time to the finished MP4.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from service import (
    PHOTO,
    add_service_arguments,
    free_port,
    percentile,
    start_service,
    stop_service,
    wait_ready,
)

TEXT = "Satz {i}: Guten Tag, ich zeige Ihnen heute, wie schnell das erste Bild erscheint."
POLL_S = 0.005
JOB_TIMEOUT_S = 120.0
FINAL = {"done", "error", "canceled", "rejected"}


def first_playable(client: httpx.Client, job_id: str, deadline: float) -> None:
    """Return once the job's first segment can be downloaded."""
    while time.monotonic() < deadline:
        view = client.get(f"/jobs/{job_id}").json()
        if view["status"] in FINAL and view["status"] != "done":
            sys.exit(f"job {job_id} ended {view['status']}: {view.get('error')}")
        if view.get("stream_url"):
            playlist = client.get(view["stream_url"])
            playlist.raise_for_status()
            base = view["stream_url"].rsplit("/", 1)[0]
            lines = playlist.text.splitlines()
            segment = next(line for line in lines if line and not line.startswith("#"))
            for name in ("init.mp4", segment):
                client.get(f"{base}/{name}").raise_for_status()
            return
        time.sleep(POLL_S)
    sys.exit(f"job {job_id}: no stream after {JOB_TIMEOUT_S} s")


def until_done(client: httpx.Client, job_id: str, deadline: float) -> None:
    """Return once the job is final."""
    while time.monotonic() < deadline:
        view = client.get(f"/jobs/{job_id}").json()
        if view["status"] in FINAL:
            if view["status"] != "done":
                sys.exit(f"job {job_id} ended {view['status']}: {view.get('error')}")
            return
        time.sleep(POLL_S * 4)
    sys.exit(f"job {job_id} not done after {JOB_TIMEOUT_S} s")


def one_job(client: httpx.Client, i: int, size: int) -> tuple[float, float]:
    """(seconds to the first playable segment, seconds to the finished video) of one job."""
    data = {"text": TEXT.format(i=i), "consent": "true", "size": str(size)}
    with PHOTO.open("rb") as photo:
        begin = time.perf_counter()
        answer = client.post("/animate", data=data, files={"source_image": (PHOTO.name, photo)})
        answer.raise_for_status()
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        first_playable(client, job_id, deadline)
        first = time.perf_counter() - begin
        until_done(client, job_id, deadline)
    return first, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_service_arguments(parser, jobs=20, size=512)
    parser.set_defaults(workers=1)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="facecast-bench-") as tmp:
        log = Path(tmp) / "serve.log"
        process = start_service(args, Path(tmp) / "data", port, log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                wait_ready(client, process, log)
                results = [one_job(client, i, args.size) for i in range(args.jobs)]
        finally:
            stop_service(process)
    ms = 1000.0
    first = [r[0] * ms for r in results]
    done = [r[1] * ms for r in results]
    print(
        f"facecast serve, {args.workers} worker(s); {args.jobs} text jobs one at a time at "
        f"{args.size} x {args.size} on this machine"
    )
    print(
        f"  first playable segment  p50 {percentile(first, 50):6.0f} ms  "
        f"p95 {percentile(first, 95):6.0f} ms  max {max(first):6.0f} ms  "
        f"(first job, new photo: {first[0]:.0f} ms)"
    )
    print(
        f"  finished MP4            p50 {statistics.median(done):6.0f} ms  "
        f"p95 {percentile(done, 95):6.0f} ms"
    )


if __name__ == "__main__":
    main()

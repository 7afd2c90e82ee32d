"""GET /metrics in the Prometheus text format, from numbers kept in the state store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from facecast.service.schemas import JobStatus
from facecast.service.state import HISTOGRAM_BUCKETS, Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "facecast_"

HISTOGRAM_HELP = {
    "stage_duration_seconds": "Time a job spent in each pipeline stage.",
    "queue_wait_seconds": "Time from submission to a worker picking the job up.",
    "job_duration_seconds": "Time a worker spent on a job.",
}
COUNTER_HELP = {
    "jobs_submitted_total": "Jobs queued for a worker.",
    "jobs_reused_total": "Requests answered with an identical earlier result.",
    "jobs_finished_total": "Jobs that reached a final state.",
}


@dataclass(frozen=True)
class Snapshot:
    """Everything /metrics shows, gathered from the state store and the broker."""

    jobs: Mapping[JobStatus, int]
    queue_depth: Mapping[str, int]
    workers_alive: int
    workers_warmed: int
    histograms: Sequence[Histogram]
    counters: Mapping[str, Mapping[str, int]]


def _labels(raw: str, **extra: str) -> str:
    """`k=v,k=v` (plus extra pairs) -> `{k="v",...}`."""
    pairs = [tuple(item.split("=", 1)) for item in raw.split(",") if "=" in item]
    pairs += list(extra.items())
    body = ",".join(f'{key}="{value}"' for key, value in pairs)
    return f"{{{body}}}" if body else ""


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}"]


def _histogram_lines(series: Histogram) -> list[str]:
    name = PREFIX + series.name
    lines, running = [], 0
    bounds = [*(f"{b:g}" for b in HISTOGRAM_BUCKETS), "+Inf"]
    for bound, count in zip(bounds, series.buckets, strict=True):
        running += count
        lines.append(f"{name}_bucket{_labels(series.label, le=bound)} {running}")
    lines.append(f"{name}_sum{_labels(series.label)} {series.total:.6f}")
    lines.append(f"{name}_count{_labels(series.label)} {series.count}")
    return lines


def render(snapshot: Snapshot) -> str:
    """The exposition text."""
    lines = _header("jobs", "gauge", "Jobs known to the service, by state.")
    lines += [
        f'{PREFIX}jobs{{state="{status.value}"}} {snapshot.jobs.get(status, 0)}'
        for status in JobStatus
    ]
    lines += _header("queue_depth", "gauge", "Messages waiting in each Celery queue.")
    lines += [
        f'{PREFIX}queue_depth{{queue="{q}"}} {n}' for q, n in sorted(snapshot.queue_depth.items())
    ]
    lines += _header("workers_alive", "gauge", "Worker processes with a fresh heartbeat.")
    lines += [f"{PREFIX}workers_alive {snapshot.workers_alive}"]
    lines += _header("workers_warmed", "gauge", "Worker processes whose engine is warmed up.")
    lines += [f"{PREFIX}workers_warmed {snapshot.workers_warmed}"]
    for name, help_text in HISTOGRAM_HELP.items():
        lines += _header(name, "histogram", help_text)
        for series in snapshot.histograms:
            if series.name == name:
                lines += _histogram_lines(series)
    for name, help_text in COUNTER_HELP.items():
        lines += _header(name, "counter", help_text)
        values = snapshot.counters.get(name, {})
        lines += [
            f"{PREFIX}{name}{_labels(label)} {value}" for label, value in sorted(values.items())
        ]
    return "\n".join(lines) + "\n"

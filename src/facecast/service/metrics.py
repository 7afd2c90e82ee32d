"""The service's numbers: a `MetricsStore` (Redis or a file) that API and workers count into,
and GET /metrics in the Prometheus text format from them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from facecast.service import redisconn
from facecast.service.schemas import JobStatus
from facecast.service.storage import file_lock, write_atomically

HISTOGRAM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds (seconds) of the duration histograms; +Inf is implied."""
METRICS_FILE = "_metrics.json"
LABEL_VALUE = re.compile(r"[^a-z0-9_]+")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "facecast_"

HISTOGRAM_HELP = {
    "stage_duration_seconds": "Time a job spent in each pipeline stage.",
    "queue_wait_seconds": "Time from submission to a worker picking the job up.",
    "job_duration_seconds": "Time a worker spent on a job.",
}
COUNTER_HELP = {
    "jobs_submitted_total": "Jobs queued for a worker.",
    "jobs_reused_total": "Requests answered with the caller's own earlier job.",
    "jobs_finished_total": "Jobs that ended, by how: done, error, canceled, rejected, reused.",
}


def label(**values: str) -> str:
    """A metric label set as `k=v,k=v` with values reduced to [a-z0-9_]."""
    return ",".join(f"{k}={LABEL_VALUE.sub('_', v.lower())}" for k, v in values.items())


@dataclass(frozen=True)
class Histogram:
    """One histogram series: per-bucket counts (not cumulative), +Inf last, sum and count."""

    name: str
    label: str
    buckets: tuple[int, ...]
    total: float
    count: int


def bucket_index(value: float) -> int:
    """Index of the first bucket whose upper bound holds `value` (len(buckets) for +Inf)."""
    for index, bound in enumerate(HISTOGRAM_BUCKETS):
        if value <= bound:
            return index
    return len(HISTOGRAM_BUCKETS)


class MetricsStore(Protocol):
    """Counters and duration histograms, shared by every process of the service."""

    def observe(self, name: str, label: str, value: float) -> None:
        """Add a duration to histogram `name` (labelled `label`)."""

    def histograms(self) -> list[Histogram]:
        """All histogram series."""

    def increment(self, name: str, label: str) -> None:
        """Add one to counter `name` (labelled `label`)."""

    def counters(self) -> dict[str, dict[str, int]]:
        """All counters: name -> label -> value."""


class RedisMetricsStore:
    """Hashes per series, listed in index sets: SCAN would walk every job key in the database,
    and /metrics is polled often."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def observe(self, name: str, label: str, value: float) -> None:
        """Count `value` into its bucket."""
        key = redisconn.key("hist", name, label)
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, f"b{bucket_index(value)}", 1)
            pipe.hincrbyfloat(key, "sum", value)
            pipe.hincrby(key, "count", 1)
            pipe.sadd(redisconn.key("index", "hist"), f"{name}:{label}")
            pipe.execute()

    def histograms(self) -> list[Histogram]:
        """Every histogram series."""
        index = self.redis.smembers(redisconn.key("index", "hist"))
        series_names = sorted(redisconn.text(n) for n in index)
        with self.redis.pipeline(transaction=False) as pipe:
            for series_name in series_names:
                pipe.hgetall(redisconn.key("hist", series_name))
            values = pipe.execute()
        series = []
        for series_name, raw in zip(series_names, values, strict=True):
            name, label = series_name.split(":", 1)
            fields = {redisconn.text(k): redisconn.text(v) for k, v in raw.items()}
            buckets = tuple(int(fields.get(f"b{i}", 0)) for i in range(len(HISTOGRAM_BUCKETS) + 1))
            total, count = float(fields.get("sum", 0)), int(fields.get("count", 0))
            series.append(Histogram(name, label, buckets, total, count))
        return series

    def increment(self, name: str, label: str) -> None:
        """Add one to a counter."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(redisconn.key("counter", name), label, 1)
            pipe.sadd(redisconn.key("index", "counter"), name)
            pipe.execute()

    def counters(self) -> dict[str, dict[str, int]]:
        """All counters."""
        index = self.redis.smembers(redisconn.key("index", "counter"))
        names = sorted(redisconn.text(n) for n in index)
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(redisconn.key("counter", name))
            values = pipe.execute()
        return {
            name: {redisconn.text(k): int(v) for k, v in raw.items()}
            for name, raw in zip(names, values, strict=True)
        }


MetricsData = dict[str, dict[str, list[float]]]


class FileMetricsStore:
    """All series in one JSON file, `<data dir>/_metrics.json`, changed under a lock."""

    def __init__(self, root: Path) -> None:
        self.path = root / METRICS_FILE

    def _update(self, change: Callable[[MetricsData], None]) -> None:
        with file_lock(self.path.with_name(f"{METRICS_FILE}.lock")):
            data = self._read()
            change(data)
            write_atomically(self.path, json.dumps(data).encode())

    def _read(self) -> MetricsData:
        try:
            data: MetricsData = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"hist": {}, "counter": {}}
        return data

    def observe(self, name: str, label: str, value: float) -> None:
        """Count `value` into its bucket."""

        def change(data: MetricsData) -> None:
            empty = [0.0] * (len(HISTOGRAM_BUCKETS) + 3)
            series = data["hist"].setdefault(f"{name}:{label}", empty)
            series[bucket_index(value)] += 1
            series[-2] += value
            series[-1] += 1

        self._update(change)

    def histograms(self) -> list[Histogram]:
        """Histogram series from the file."""
        series = []
        for key, values in sorted(self._read()["hist"].items()):
            name, label = key.split(":", 1)
            buckets = tuple(int(v) for v in values[: len(HISTOGRAM_BUCKETS) + 1])
            series.append(Histogram(name, label, buckets, values[-2], int(values[-1])))
        return series

    def increment(self, name: str, label: str) -> None:
        """Add one to a counter."""

        def change(data: MetricsData) -> None:
            data["counter"].setdefault(f"{name}:{label}", [0.0])[0] += 1

        self._update(change)

    def counters(self) -> dict[str, dict[str, int]]:
        """Counters from the file."""
        result: dict[str, dict[str, int]] = {}
        for key, values in sorted(self._read()["counter"].items()):
            name, label = key.split(":", 1)
            result.setdefault(name, {})[label] = int(values[0])
        return result


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

"""Live job state shared by the API and the workers: Redis when there is one, files otherwise.

A `StateStore` keeps each job's `JobState`, a short log tail, worker heartbeats and the numbers
behind /metrics. Changes go through `update(job_id, mutate)`: the store reads the state, calls the
pure function `mutate`, and writes its answer atomically (Redis WATCH/MULTI, or a file lock).
The transition functions at the end of this module are those pure functions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from facecast.service.schemas import ErrorInfo, JobState, JobStatus, WorkerInfo
from facecast.service.storage import Storage, write_atomically

Mutation = Callable[[JobState], JobState | None]
"""Given the current state, the new one, or None to leave it as it is."""

HISTOGRAM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds (seconds) of the duration histograms; +Inf is implied."""

KEY_PREFIX = "facecast:"
REDIS_TIMEOUT_S = 5.0
REDIS_CONNECT_TIMEOUT_S = 2.0
UPDATE_RETRIES = 50
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
METRICS_FILE = "_metrics.json"
WORKERS_DIR = "_workers"
IDEMPOTENCY_DIR = "_idempotency"
IDEMPOTENCY_KEY = re.compile(r"[0-9a-f]{64}")


def _text(value: bytes | str) -> str:
    """Redis answers bytes; decode them."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


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


class StateStore(Protocol):
    """Where job state, log tails, heartbeats and metrics live."""

    def ping(self) -> None:
        """Raise when the store cannot be reached."""

    def warm_up(self, connections: int) -> None:
        """Open up to `connections` connections now, so concurrent requests find them ready."""

    def create(self, state: JobState) -> None:
        """Store the first state of a new job."""

    def get(self, job_id: str) -> JobState | None:
        """The current state, or None for an unknown job."""

    def get_many(self, job_ids: Sequence[str]) -> list[JobState | None]:
        """The current states of several jobs (None for unknown ones), in one read."""

    def update(self, job_id: str, mutate: Mutation) -> JobState | None:
        """Apply `mutate` atomically; the new state, or None when nothing changed."""

    def forget(self, job_id: str) -> None:
        """Drop everything kept about a job."""

    def count_by_status(self) -> dict[JobStatus, int]:
        """How many known jobs are in each status."""

    def observe(self, name: str, label: str, value: float) -> None:
        """Add a duration to histogram `name` (labelled `label`)."""

    def histograms(self) -> list[Histogram]:
        """All histogram series."""

    def increment(self, name: str, label: str) -> None:
        """Add one to counter `name` (labelled `label`)."""

    def counters(self) -> dict[str, dict[str, int]]:
        """All counters: name -> label -> value."""

    def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Say that a worker process is alive for the next `ttl` seconds."""

    def drop_worker(self, worker_id: str) -> None:
        """Forget a worker that is shutting down."""

    def workers(self) -> list[WorkerInfo]:
        """Worker processes whose heartbeat has not expired."""

    def claim(self, key: str, job_id: str, ttl: float) -> str:
        """Bind idempotency `key` to `job_id` unless it is bound; the job it is bound to."""

    def release(self, key: str, job_id: str) -> None:
        """Unbind `key` if it is bound to `job_id` (the job was never created)."""

    def bound(self, key: str, ttl: float) -> str | None:
        """The job `key` is bound to, or None (unbound or expired); changes nothing."""


# --------------------------------------------------------------------------- Redis


class RedisStateStore:
    """State in Redis: one JSON value per job, a set per status, hashes for metrics."""

    def __init__(self, url: str, ttl_seconds: float) -> None:
        self.redis = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            health_check_interval=30,
        )
        self.ttl = max(1, int(ttl_seconds))

    @staticmethod
    def _key(*parts: str) -> str:
        return KEY_PREFIX + ":".join(parts)

    def ping(self) -> None:
        """Raise when Redis does not answer."""
        self.redis.ping()

    def warm_up(self, connections: int) -> None:
        """Check out and return `connections` pool connections, each connected."""
        pool = self.redis.connection_pool
        opened = [pool.get_connection() for _ in range(connections)]
        for connection in opened:
            pool.release(connection)

    def create(self, state: JobState) -> None:
        """Store a new job's first state."""
        with self.redis.pipeline() as pipe:
            pipe.set(self._key("job", state.job_id), state.model_dump_json(), ex=self.ttl)
            pipe.sadd(self._key("status", state.status.value), state.job_id)
            pipe.execute()

    def get(self, job_id: str) -> JobState | None:
        """The job's state, or None."""
        raw = self.redis.get(self._key("job", job_id))
        return None if raw is None else JobState.model_validate_json(raw)

    def get_many(self, job_ids: Sequence[str]) -> list[JobState | None]:
        """MGET of the jobs' states."""
        raws = self.redis.mget([self._key("job", job_id) for job_id in job_ids]) if job_ids else []
        return [None if raw is None else JobState.model_validate_json(raw) for raw in raws]

    def update(self, job_id: str, mutate: Mutation) -> JobState | None:
        """Optimistic read-modify-write with WATCH; retried when another writer won."""
        key = self._key("job", job_id)
        with self.redis.pipeline() as pipe:
            for _ in range(UPDATE_RETRIES):
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    current = None if raw is None else JobState.model_validate_json(raw)
                    new = None if current is None else mutate(current)
                    if current is None or new is None:
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.set(key, new.model_dump_json(), ex=self.ttl)
                    if new.status != current.status:
                        pipe.srem(self._key("status", current.status.value), job_id)
                        pipe.sadd(self._key("status", new.status.value), job_id)
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue
        raise RuntimeError(f"job {job_id}: state update kept conflicting")

    def forget(self, job_id: str) -> None:
        """Remove the job's state and status-set membership."""
        with self.redis.pipeline() as pipe:
            pipe.delete(self._key("job", job_id))
            for status in JobStatus:
                pipe.srem(self._key("status", status.value), job_id)
            pipe.execute()

    def count_by_status(self) -> dict[JobStatus, int]:
        """Cardinality of each status set."""
        with self.redis.pipeline() as pipe:
            for status in JobStatus:
                pipe.scard(self._key("status", status.value))
            counts = pipe.execute()
        return dict(zip(JobStatus, (int(c) for c in counts), strict=True))

    # Histograms, counters and workers are listed in index sets: SCAN would walk every job key
    # in the database, and /ready and /metrics are polled often.

    def observe(self, name: str, label: str, value: float) -> None:
        """Count `value` into its bucket."""
        key = self._key("hist", name, label)
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, f"b{bucket_index(value)}", 1)
            pipe.hincrbyfloat(key, "sum", value)
            pipe.hincrby(key, "count", 1)
            pipe.sadd(self._key("index", "hist"), f"{name}:{label}")
            pipe.execute()

    def histograms(self) -> list[Histogram]:
        """Every histogram series."""
        series_names = sorted(_text(n) for n in self.redis.smembers(self._key("index", "hist")))
        with self.redis.pipeline(transaction=False) as pipe:
            for series_name in series_names:
                pipe.hgetall(self._key("hist", series_name))
            values = pipe.execute()
        series = []
        for series_name, raw in zip(series_names, values, strict=True):
            name, label = series_name.split(":", 1)
            fields = {_text(k): _text(v) for k, v in raw.items()}
            buckets = tuple(int(fields.get(f"b{i}", 0)) for i in range(len(HISTOGRAM_BUCKETS) + 1))
            series.append(
                Histogram(
                    name, label, buckets, float(fields.get("sum", 0)), int(fields.get("count", 0))
                )
            )
        return series

    def increment(self, name: str, label: str) -> None:
        """Add one to a counter."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self._key("counter", name), label, 1)
            pipe.sadd(self._key("index", "counter"), name)
            pipe.execute()

    def counters(self) -> dict[str, dict[str, int]]:
        """All counters."""
        names = sorted(_text(n) for n in self.redis.smembers(self._key("index", "counter")))
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._key("counter", name))
            values = pipe.execute()
        return {
            name: {_text(k): int(v) for k, v in raw.items()}
            for name, raw in zip(names, values, strict=True)
        }

    def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Store the heartbeat with an expiry."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(
                self._key("worker", info.worker_id), info.model_dump_json(), px=int(ttl * 1000)
            )
            pipe.sadd(self._key("index", "worker"), info.worker_id)
            pipe.execute()

    def drop_worker(self, worker_id: str) -> None:
        """Delete a heartbeat."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._key("worker", worker_id))
            pipe.srem(self._key("index", "worker"), worker_id)
            pipe.execute()

    def workers(self) -> list[WorkerInfo]:
        """Workers with an unexpired heartbeat; expired ones leave the index."""
        index = self._key("index", "worker")
        ids = sorted(_text(i) for i in self.redis.smembers(index))
        values = self.redis.mget([self._key("worker", i) for i in ids]) if ids else []
        gone = [i for i, value in zip(ids, values, strict=True) if value is None]
        if gone:
            self.redis.srem(index, *gone)
        return [WorkerInfo.model_validate_json(v) for v in values if v is not None]

    def claim(self, key: str, job_id: str, ttl: float) -> str:
        """SET NX with an expiry; the winner's job id."""
        name = self._key("idem", key)
        for _ in range(UPDATE_RETRIES):
            if self.redis.set(name, job_id, nx=True, ex=max(1, int(ttl))):
                return job_id
            bound = self.redis.get(name)
            if bound is not None:
                return _text(bound)
        raise RuntimeError("idempotency key kept changing")

    def release(self, key: str, job_id: str) -> None:
        """Delete the binding if it is still ours."""
        name = self._key("idem", key)
        if _text(self.redis.get(name) or b"") == job_id:
            self.redis.delete(name)

    def bound(self, key: str, ttl: float) -> str | None:
        """The job `key` is bound to (Redis expires bindings itself)."""
        value = self.redis.get(self._key("idem", key))
        return None if value is None else _text(value)


# --------------------------------------------------------------------------- files


class FileStateStore:
    """State in files next to the job's artifacts, for the server-less single-machine mode."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._many_cache: dict[str, tuple[tuple[int, int], JobState]] = {}

    @contextmanager
    def _locked(self, lock_path: Path) -> Iterator[None]:
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _reserve_for(self, state: JobState) -> Path | None:
        """The space reserve may pay only for an ending (final state or cancel): progress on a
        full disk fails, and the job then ends `storage_full` from its reserve."""
        ending = state.status.final or state.cancel_requested
        return self.storage.reserve(state.job_id) if ending else None

    def warm_up(self, connections: int) -> None:
        """Nothing to open: files need no connections."""

    def ping(self) -> None:
        """Raise when the data directory is not writable."""
        self.storage.root.mkdir(parents=True, exist_ok=True)
        probe = self.storage.root / f".ping-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()

    def create(self, state: JobState) -> None:
        """Write the first state.json."""
        write_atomically(
            self.storage.path(state.job_id, STATE_FILE),
            state.model_dump_json().encode(),
            self._reserve_for(state),
        )

    def get(self, job_id: str) -> JobState | None:
        """Read state.json."""
        try:
            raw = self.storage.path(job_id, STATE_FILE).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return JobState.model_validate_json(raw)

    def get_many(self, job_ids: Sequence[str]) -> list[JobState | None]:
        """Each state.json, parsed again only when the file was replaced since the last call.

        Live progress asks for every followed job several times a second; most of them wait in
        the queue unchanged, and a stat costs a fraction of an open, read and parse.
        """
        seen: dict[str, tuple[tuple[int, int], JobState]] = {}
        states: list[JobState | None] = []
        for job_id in job_ids:
            try:
                info = self.storage.path(job_id, STATE_FILE).stat()
            except (FileNotFoundError, NotADirectoryError):
                states.append(None)
                continue
            version = (info.st_ino, info.st_mtime_ns)
            cached = self._many_cache.get(job_id)
            state = cached[1] if cached is not None and cached[0] == version else self.get(job_id)
            if state is not None:
                seen[job_id] = (version, state)
            states.append(state)
        self._many_cache = seen
        return states

    def update(self, job_id: str, mutate: Mutation) -> JobState | None:
        """Read-modify-write under the job's lock file."""
        if not self.storage.exists(job_id):
            return None
        with self._locked(self.storage.path(job_id, LOCK_FILE)):
            current = self.get(job_id)
            new = None if current is None else mutate(current)
            if new is None:
                return None
            write_atomically(
                self.storage.path(job_id, STATE_FILE),
                new.model_dump_json().encode(),
                self._reserve_for(new),
            )
            return new

    def forget(self, job_id: str) -> None:
        """Nothing to do: the state lives in the job directory, which retention removes."""

    def count_by_status(self) -> dict[JobStatus, int]:
        """Scan the job directories."""
        counts = dict.fromkeys(JobStatus, 0)
        for job_id in self.storage.job_ids():
            state = self.get(job_id)
            if state is not None:
                counts[state.status] += 1
        return counts

    def _update_metrics(self, change: Callable[[dict[str, dict[str, list[float]]]], None]) -> None:
        path = self.storage.root / METRICS_FILE
        with self._locked(self.storage.root / f"{METRICS_FILE}.lock"):
            data = self._read_metrics()
            change(data)
            write_atomically(path, json.dumps(data).encode())

    def _read_metrics(self) -> dict[str, dict[str, list[float]]]:
        try:
            data: dict[str, dict[str, list[float]]] = json.loads(
                (self.storage.root / METRICS_FILE).read_bytes()
            )
        except FileNotFoundError:
            return {"hist": {}, "counter": {}}
        return data

    def observe(self, name: str, label: str, value: float) -> None:
        """Count `value` into its bucket in _metrics.json."""

        def change(data: dict[str, dict[str, list[float]]]) -> None:
            series = data["hist"].setdefault(
                f"{name}:{label}", [0.0] * (len(HISTOGRAM_BUCKETS) + 3)
            )
            series[bucket_index(value)] += 1
            series[-2] += value
            series[-1] += 1

        self._update_metrics(change)

    def histograms(self) -> list[Histogram]:
        """Histogram series from _metrics.json."""
        series = []
        for key, values in sorted(self._read_metrics()["hist"].items()):
            name, label = key.split(":", 1)
            buckets = tuple(int(v) for v in values[: len(HISTOGRAM_BUCKETS) + 1])
            series.append(Histogram(name, label, buckets, values[-2], int(values[-1])))
        return series

    def increment(self, name: str, label: str) -> None:
        """Add one to a counter in _metrics.json."""

        def change(data: dict[str, dict[str, list[float]]]) -> None:
            series = data["counter"].setdefault(f"{name}:{label}", [0.0])
            series[0] += 1

        self._update_metrics(change)

    def counters(self) -> dict[str, dict[str, int]]:
        """Counters from _metrics.json."""
        result: dict[str, dict[str, int]] = {}
        for key, values in sorted(self._read_metrics()["counter"].items()):
            name, label = key.split(":", 1)
            result.setdefault(name, {})[label] = int(values[0])
        return result

    def _worker_path(self, worker_id: str) -> Path:
        return self.storage.root / WORKERS_DIR / f"{worker_id}.json"

    def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Write the heartbeat file; its expiry is inside."""
        path = self._worker_path(info.worker_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = info.model_dump(mode="json") | {"expires_at": time.time() + ttl}
        write_atomically(path, json.dumps(payload).encode())

    def drop_worker(self, worker_id: str) -> None:
        """Remove the heartbeat file."""
        self._worker_path(worker_id).unlink(missing_ok=True)

    def workers(self) -> list[WorkerInfo]:
        """Heartbeat files that have not expired."""
        folder = self.storage.root / WORKERS_DIR
        if not folder.is_dir():
            return []
        alive, now = [], time.time()
        for path in sorted(folder.glob("*.json")):
            try:
                payload = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if payload.get("expires_at", 0) > now:
                alive.append(WorkerInfo.model_validate(payload))
            elif payload.get("expires_at", 0) < now - 3600:
                path.unlink(missing_ok=True)
        return alive

    def _key_path(self, key: str) -> Path:
        if IDEMPOTENCY_KEY.fullmatch(key) is None:
            raise ValueError("bad idempotency key")
        return self.storage.root / IDEMPOTENCY_DIR / key

    def claim(self, key: str, job_id: str, ttl: float) -> str:
        """Create the key file exclusively; an expired one is replaced."""
        path = self._key_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(UPDATE_RETRIES):
            try:
                with path.open("x", encoding="ascii") as handle:
                    handle.write(job_id)
                return job_id
            except FileExistsError:
                try:
                    if time.time() - path.stat().st_mtime > ttl:
                        path.unlink(missing_ok=True)
                        continue
                    bound = path.read_text(encoding="ascii").strip()
                except FileNotFoundError:
                    continue
                if bound:
                    return bound
                time.sleep(0.01)  # the winner is still writing its id
        raise RuntimeError("idempotency key kept changing")

    def release(self, key: str, job_id: str) -> None:
        """Remove the key file if it names `job_id`."""
        path = self._key_path(key)
        with contextlib.suppress(FileNotFoundError):
            if path.read_text(encoding="ascii").strip() == job_id:
                path.unlink(missing_ok=True)

    def bound(self, key: str, ttl: float) -> str | None:
        """The job the key file names, unless it is older than `ttl`."""
        path = self._key_path(key)
        try:
            if time.time() - path.stat().st_mtime > ttl:
                return None
            return path.read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            return None


def open_state_store(redis_url: str | None, storage: Storage, ttl_seconds: float) -> StateStore:
    """Redis when a URL is configured, files in the data directory otherwise."""
    if redis_url:
        return RedisStateStore(redis_url, ttl_seconds)
    return FileStateStore(storage)


# --------------------------------------------------------------------------- transitions


def start_attempt(now: float, max_attempts: int) -> Mutation:
    """queued -> running (or a redelivered running job); None when it must not run."""

    def mutate(state: JobState) -> JobState | None:
        if state.status.final or state.cancel_requested:
            return None
        attempts = state.attempts + 1
        if attempts > max_attempts:
            return None
        return state.model_copy(
            update={
                "status": JobStatus.RUNNING,
                "started_at": now,
                "attempts": attempts,
                "stage": "starting",
            }
        )

    return mutate


def back_to_queue() -> Mutation:
    """running -> queued: its worker process died and the job waits for the next delivery
    (which `start_attempt` counts). Attempts so far are kept."""

    def mutate(state: JobState) -> JobState | None:
        if state.status is not JobStatus.RUNNING:
            return None
        return state.model_copy(
            update={"status": JobStatus.QUEUED, "stage": JobStatus.QUEUED.value, "progress": 0}
        )

    return mutate


def advance(stage: str, progress: int) -> Mutation:
    """Record progress of a running job; progress never goes backwards."""

    def mutate(state: JobState) -> JobState | None:
        if state.status is not JobStatus.RUNNING:
            return None
        value = max(state.progress, min(progress, 99))
        if value == state.progress and stage == state.stage:
            return None
        return state.model_copy(update={"stage": stage, "progress": value})

    return mutate


def stream_started() -> Mutation:
    """A running job's live stream has its first segment."""

    def mutate(state: JobState) -> JobState | None:
        if state.status is not JobStatus.RUNNING or state.streaming:
            return None
        return state.model_copy(update={"streaming": True})

    return mutate


def finish(status: JobStatus, now: float, error: ErrorInfo | None = None) -> Mutation:
    """Any unfinished state -> a final one."""

    def mutate(state: JobState) -> JobState | None:
        if state.status.final:
            return None
        done = status is JobStatus.DONE
        return state.model_copy(
            update={
                "status": status,
                "finished_at": now,
                "error": error,
                "progress": 100 if done else state.progress,
                "stage": status.value,
            }
        )

    return mutate


def request_cancel(now: float) -> Mutation:
    """A queued job is canceled at once; a running one is flagged and its worker stops it."""

    def mutate(state: JobState) -> JobState | None:
        if state.status.final:
            return None
        if state.status is JobStatus.QUEUED:
            return finish(JobStatus.CANCELED, now)(
                state.model_copy(update={"cancel_requested": True})
            )
        return state.model_copy(update={"cancel_requested": True})

    return mutate

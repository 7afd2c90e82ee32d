"""Live job state shared by the API and the workers: Redis when there is one, files otherwise.

A `JobStore` keeps each job's `JobState`. Changes go through `update(job_id, mutate)`: the
store reads the state, calls the pure function `mutate` (see transitions.py), and writes its
answer atomically (Redis WATCH/MULTI, or a file lock). Idempotency keys, worker heartbeats and
metrics have stores of their own (idempotency.py, heartbeats.py, metrics.py); stores.py opens
the four together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import redis

from facecast.service import redisconn
from facecast.service.redisconn import UPDATE_RETRIES
from facecast.service.schemas import JobState, JobStatus
from facecast.service.storage import Storage, check_writable, file_lock, write_atomically
from facecast.service.transitions import Mutation

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"


class JobStore(Protocol):
    """Where each job's live state is kept."""

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

    def ids_with(self, status: JobStatus) -> list[str]:
        """The ids of the known jobs in `status`."""


class RedisJobStore:
    """State in Redis: one JSON value per job, and a set of job ids per status."""

    def __init__(self, client: redis.Redis, ttl_seconds: float) -> None:
        self.redis = client
        self.ttl = max(1, int(ttl_seconds))

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
            pipe.set(redisconn.key("job", state.job_id), state.model_dump_json(), ex=self.ttl)
            pipe.sadd(redisconn.key("status", state.status.value), state.job_id)
            pipe.execute()

    def get(self, job_id: str) -> JobState | None:
        """The job's state, or None."""
        raw = self.redis.get(redisconn.key("job", job_id))
        return None if raw is None else JobState.model_validate_json(raw)

    def get_many(self, job_ids: Sequence[str]) -> list[JobState | None]:
        """MGET of the jobs' states."""
        keys = [redisconn.key("job", job_id) for job_id in job_ids]
        raws = self.redis.mget(keys) if keys else []
        return [None if raw is None else JobState.model_validate_json(raw) for raw in raws]

    def update(self, job_id: str, mutate: Mutation) -> JobState | None:
        """Optimistic read-modify-write with WATCH; retried when another writer won."""
        key = redisconn.key("job", job_id)
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
                        pipe.srem(redisconn.key("status", current.status.value), job_id)
                        pipe.sadd(redisconn.key("status", new.status.value), job_id)
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue
        raise RuntimeError(f"job {job_id}: state update kept conflicting")

    def forget(self, job_id: str) -> None:
        """Remove the job's state and status-set membership."""
        with self.redis.pipeline() as pipe:
            pipe.delete(redisconn.key("job", job_id))
            for status in JobStatus:
                pipe.srem(redisconn.key("status", status.value), job_id)
            pipe.execute()

    def ids_with(self, status: JobStatus) -> list[str]:
        """Members of the status set."""
        members = self.redis.smembers(redisconn.key("status", status.value))
        return sorted(redisconn.text(member) for member in members)

    def count_by_status(self) -> dict[JobStatus, int]:
        """Cardinality of each status set."""
        with self.redis.pipeline() as pipe:
            for status in JobStatus:
                pipe.scard(redisconn.key("status", status.value))
            counts = pipe.execute()
        return dict(zip(JobStatus, (int(c) for c in counts), strict=True))


class FileJobStore:
    """State in files next to the job's artifacts, for the server-less single-machine mode."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._many_cache: dict[str, tuple[tuple[int, int], JobState]] = {}

    def _reserve_for(self, state: JobState) -> Path | None:
        """The space reserve may pay only for an ending (final state or cancel): progress on a
        full disk fails, and the job then ends `storage_full` from its reserve."""
        ending = state.status.final or state.cancel_requested
        return self.storage.reserve(state.job_id) if ending else None

    def warm_up(self, connections: int) -> None:
        """Nothing to open: files need no connections."""

    def ping(self) -> None:
        """Raise when the data directory is not writable."""
        check_writable(self.storage.root)

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
        with file_lock(self.storage.path(job_id, LOCK_FILE)):
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

    def ids_with(self, status: JobStatus) -> list[str]:
        """Scan the job directories."""
        return [
            job_id
            for job_id in self.storage.job_ids()
            if (state := self.get(job_id)) is not None and state.status is status
        ]

    def count_by_status(self) -> dict[JobStatus, int]:
        """Scan the job directories."""
        counts = dict.fromkeys(JobStatus, 0)
        for job_id in self.storage.job_ids():
            state = self.get(job_id)
            if state is not None:
                counts[state.status] += 1
        return counts

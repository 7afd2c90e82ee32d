"""Worker heartbeats: each worker process says it is alive (and warmed up) every few seconds.

GET /ready, /metrics and the API's choice of queue read them; an expired heartbeat is a worker
that is gone. Kept in Redis (keys with an expiry) or, without Redis, in files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Protocol

import redis

from facecast.service import redisconn
from facecast.service.schemas import WorkerInfo
from facecast.service.storage import write_atomically

WORKERS_DIR = "_workers"
STALE_FILE_S = 3600.0
"""Heartbeat files expired this long ago are removed when read."""


class HeartbeatStore(Protocol):
    """Which worker processes are alive."""

    def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Say that a worker process is alive for the next `ttl` seconds."""

    def drop_worker(self, worker_id: str) -> None:
        """Forget a worker that is shutting down."""

    def workers(self) -> list[WorkerInfo]:
        """Worker processes whose heartbeat has not expired."""


class RedisHeartbeatStore:
    """A key with an expiry per worker, listed in an index set (no SCAN over job keys)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Store the heartbeat with an expiry."""
        with self.redis.pipeline(transaction=False) as pipe:
            key = redisconn.key("worker", info.worker_id)
            pipe.set(key, info.model_dump_json(), px=int(ttl * 1000))
            pipe.sadd(redisconn.key("index", "worker"), info.worker_id)
            pipe.execute()

    def drop_worker(self, worker_id: str) -> None:
        """Delete a heartbeat."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(redisconn.key("worker", worker_id))
            pipe.srem(redisconn.key("index", "worker"), worker_id)
            pipe.execute()

    def workers(self) -> list[WorkerInfo]:
        """Workers with an unexpired heartbeat; expired ones leave the index."""
        index = redisconn.key("index", "worker")
        ids = sorted(redisconn.text(i) for i in self.redis.smembers(index))
        values = self.redis.mget([redisconn.key("worker", i) for i in ids]) if ids else []
        gone = [i for i, value in zip(ids, values, strict=True) if value is None]
        if gone:
            self.redis.srem(index, *gone)
        return [WorkerInfo.model_validate_json(v) for v in values if v is not None]


class FileHeartbeatStore:
    """A JSON file per worker under `<data dir>/_workers/`, its expiry inside."""

    def __init__(self, root: Path) -> None:
        self.folder = root / WORKERS_DIR

    def _path(self, worker_id: str) -> Path:
        return self.folder / f"{worker_id}.json"

    def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Write the heartbeat file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = info.model_dump(mode="json") | {"expires_at": time.time() + ttl}
        write_atomically(self._path(info.worker_id), json.dumps(payload).encode())

    def drop_worker(self, worker_id: str) -> None:
        """Remove the heartbeat file."""
        self._path(worker_id).unlink(missing_ok=True)

    def workers(self) -> list[WorkerInfo]:
        """Heartbeat files that have not expired."""
        if not self.folder.is_dir():
            return []
        alive, now = [], time.time()
        for path in sorted(self.folder.glob("*.json")):
            try:
                payload = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if payload.get("expires_at", 0) > now:
                alive.append(WorkerInfo.model_validate(payload))
            elif payload.get("expires_at", 0) < now - STALE_FILE_S:
                path.unlink(missing_ok=True)
        return alive

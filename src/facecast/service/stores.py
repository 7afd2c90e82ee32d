"""The four stores the API and the workers share, opened together.

Each is a small Protocol with a Redis form and a file form (for the server-less mode):
job state (state.py), idempotency keys (idempotency.py), worker heartbeats (heartbeats.py)
and metrics (metrics.py). With Redis, one client serves all four.
"""

from __future__ import annotations

from dataclasses import dataclass

from facecast.config import Settings
from facecast.service import redisconn
from facecast.service.heartbeats import FileHeartbeatStore, HeartbeatStore, RedisHeartbeatStore
from facecast.service.idempotency import (
    FileIdempotencyStore,
    IdempotencyStore,
    RedisIdempotencyStore,
)
from facecast.service.metrics import FileMetricsStore, MetricsStore, RedisMetricsStore
from facecast.service.state import FileJobStore, JobStore, RedisJobStore
from facecast.service.storage import Storage


@dataclass(frozen=True)
class Stores:
    """Job state, idempotency keys, heartbeats and metrics."""

    jobs: JobStore
    idempotency: IdempotencyStore
    heartbeats: HeartbeatStore
    metrics: MetricsStore


def state_ttl(settings: Settings) -> float:
    """How long the state store keeps a job: a while beyond its retention."""
    return settings.retention_hours * 3600 * 2 + 86400


def open_stores(redis_url: str | None, storage: Storage, ttl_seconds: float) -> Stores:
    """Redis when a URL is configured, files in the data directory otherwise."""
    if redis_url:
        client = redisconn.connect(redis_url)
        return Stores(
            RedisJobStore(client, ttl_seconds),
            RedisIdempotencyStore(client),
            RedisHeartbeatStore(client),
            RedisMetricsStore(client),
        )
    root = storage.root
    return Stores(
        FileJobStore(storage),
        FileIdempotencyStore(root),
        FileHeartbeatStore(root),
        FileMetricsStore(root),
    )


def stores_for(settings: Settings, storage: Storage) -> Stores:
    """The stores `settings` name, for a process of the service."""
    return open_stores(settings.redis_url, storage, state_ttl(settings))

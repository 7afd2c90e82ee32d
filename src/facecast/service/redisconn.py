"""The Redis connection and key layout the Redis forms of the stores share.

One client (and so one connection pool) per process serves job state, idempotency keys,
heartbeats and metrics; every key starts with `facecast:`.
"""

from __future__ import annotations

import redis

KEY_PREFIX = "facecast:"
REDIS_TIMEOUT_S = 5.0
REDIS_CONNECT_TIMEOUT_S = 2.0
HEALTH_CHECK_S = 30
UPDATE_RETRIES = 50
"""Tries of an optimistic update (or a claim) before another writer is taken to be stuck."""


def connect(url: str) -> redis.Redis:
    """A client with short timeouts: a stalled Redis must be a quick 503, not a hang."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_S,
    )


def key(*parts: str) -> str:
    """`facecast:<part>:<part>...`."""
    return KEY_PREFIX + ":".join(parts)


def text(value: bytes | str) -> str:
    """Redis answers bytes; decode them."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

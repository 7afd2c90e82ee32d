"""Idempotency keys: a retried submission names the job its first request made.

A key (per caller and route, hashed) is bound to `<job id>:<request digest>`; a retry with the
same digest gets that job, one with another digest is refused. Bindings live in Redis (SET NX
with an expiry) or, without Redis, as files in the data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import redis

from facecast.service import redisconn
from facecast.service.errors import IdempotencyConflictError
from facecast.service.redisconn import UPDATE_RETRIES
from facecast.service.storage import content_key

IDEMPOTENCY_DIR = "_idempotency"
IDEMPOTENCY_KEY = re.compile(r"[0-9a-f]{64}")
BINDING_SEPARATOR = ":"
"""An idempotency key is bound to `<job id>:<request digest>` (job ids are hex)."""
DIGEST_CHUNK = 1 << 20
WRITER_WAIT_S = 0.01


class IdempotencyStore(Protocol):
    """Bindings of idempotency keys to jobs, each with an expiry."""

    def claim(self, key: str, job_id: str, ttl: float) -> str:
        """Bind idempotency `key` to `job_id` unless it is bound; the job it is bound to."""

    def release(self, key: str, job_id: str) -> None:
        """Unbind `key` if it is bound to `job_id` (the job was never created)."""

    def bound(self, key: str, ttl: float) -> str | None:
        """The job `key` is bound to, or None (unbound or expired); changes nothing."""


def idempotency_scope(principal: str, route: str, key: str | None) -> str | None:
    """The stored form of an Idempotency-Key: per caller and route, hashed."""
    return None if key is None else content_key("idempotency", principal, route, key)


def request_digest(fields: Sequence[object], uploads: Sequence[BinaryIO | None], limit: int) -> str:
    """A hash of a request's fields and uploads (each read up to `limit` + 1 bytes, then
    rewound): a retry under the same Idempotency-Key must send the same request."""
    parts: list[str | bytes | int | float | bool | None] = [repr(f) for f in fields]
    for upload in uploads:
        if upload is None or not upload.seekable():
            parts.append(None)
            continue
        start, left, digest = upload.tell(), limit + 1, hashlib.sha256()
        while left > 0 and (chunk := upload.read(min(DIGEST_CHUNK, left))):
            digest.update(chunk)
            left -= len(chunk)
        upload.seek(start)
        parts.append(digest.hexdigest())
    return content_key("request", *parts)[:32]


def deletion_marker(job_id: str) -> str:
    """The idempotency-store key that says `job_id` was deleted (so that a retry of the
    request that made it starts a new job instead of naming the deleted one)."""
    return content_key("deleted-job", job_id)


class RedisIdempotencyStore:
    """Bindings as Redis strings with an expiry."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def claim(self, key: str, job_id: str, ttl: float) -> str:
        """SET NX with an expiry; the winner's job id."""
        name = redisconn.key("idem", key)
        for _ in range(UPDATE_RETRIES):
            if self.redis.set(name, job_id, nx=True, ex=max(1, int(ttl))):
                return job_id
            bound = self.redis.get(name)
            if bound is not None:
                return redisconn.text(bound)
        raise RuntimeError("idempotency key kept changing")

    def release(self, key: str, job_id: str) -> None:
        """Delete the binding if it is still ours."""
        name = redisconn.key("idem", key)
        if redisconn.text(self.redis.get(name) or b"") == job_id:
            self.redis.delete(name)

    def bound(self, key: str, ttl: float) -> str | None:
        """The job `key` is bound to (Redis expires bindings itself)."""
        value = self.redis.get(redisconn.key("idem", key))
        return None if value is None else redisconn.text(value)


class FileIdempotencyStore:
    """Bindings as files under `<data dir>/_idempotency/`, expired by their age."""

    def __init__(self, root: Path) -> None:
        self.folder = root / IDEMPOTENCY_DIR

    def _key_path(self, key: str) -> Path:
        if IDEMPOTENCY_KEY.fullmatch(key) is None:
            raise ValueError("bad idempotency key")
        return self.folder / key

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
                time.sleep(WRITER_WAIT_S)  # the winner is still writing its id
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


class KeyBinder:
    """Binds Idempotency-Keys to new jobs: the first request's job wins; a retry with the
    same request gets that job, one with another request is refused (422)."""

    def __init__(self, store: IdempotencyStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl

    @staticmethod
    def _binding(job_id: str, digest: str | None) -> str:
        return job_id if digest is None else f"{job_id}{BINDING_SEPARATOR}{digest}"

    def bind(self, key: str, job_id: str, digest: str | None) -> str | None:
        """Bind `key` to the new job `job_id`; None when that worked, else the id of the job
        an earlier request bound it to (IdempotencyConflictError when that request differed).

        A key whose job was deleted since is bound afresh: the retry starts a new job.
        """
        mine = self._binding(job_id, digest)
        bound = self.store.claim(key, mine, self.ttl)
        earlier = bound.partition(BINDING_SEPARATOR)[0]
        if bound != mine and self.store.bound(deletion_marker(earlier), self.ttl):
            self.store.release(key, bound)
            bound = self.store.claim(key, mine, self.ttl)
        if bound == mine:
            return None
        earlier, _, earlier_digest = bound.partition(BINDING_SEPARATOR)
        if digest is not None and earlier_digest and earlier_digest != digest:
            raise IdempotencyConflictError(
                "This Idempotency-Key was used for a request with other fields or files; send "
                "the same request again, or use a new key."
            )
        return earlier

    def unbind(self, key: str, job_id: str, digest: str | None) -> None:
        """Release the binding of a job that was never created."""
        self.store.release(key, self._binding(job_id, digest))

    def move(self, key: str, job_id: str, answer: str, digest: str | None) -> None:
        """Bind `key` to the job `answer` instead of the new `job_id` (an earlier job of the
        caller answered the request)."""
        self.store.release(key, self._binding(job_id, digest))
        self.store.claim(key, self._binding(answer, digest), self.ttl)

    def mark_deleted(self, job_id: str) -> None:
        """Note that `job_id` was deleted: a retry of its request starts a new job."""
        self.store.claim(deletion_marker(job_id), job_id, self.ttl)

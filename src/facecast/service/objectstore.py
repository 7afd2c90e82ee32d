"""Shared artifact storage beyond one disk: any S3-compatible object store, through boto3.

`FACECAST_STORAGE_URL=s3://bucket/prefix` makes every job's artifacts (uploads, audio, video,
stream segments, manifests, the reuse cache) objects under `prefix/`, so the API and workers
on different hosts share nothing but Redis and the bucket; each process keeps only a local
working copy of the jobs it handles in its data directory. Credentials and endpoint come from
the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL,
AWS_REGION). `file:///path` (or nothing) keeps everything in the data directory.

`ObjectStorage` is the `Storage` (storage.py) that keeps the jobs there; `S3ObjectStore` the
objects themselves. Needs the `s3` extra (`pip install 'facecast[s3]'`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from facecast.errors import BackendUnavailableError
from facecast.service.schemas import JobManifest
from facecast.service.storage import (
    CACHE_DIR,
    CACHE_KEY_PATTERN,
    DOWNLOADS,
    MANIFEST,
    STREAM_DIR,
    STREAM_FILE_PATTERN,
    USED_MARKER,
    RemoteFile,
    Storage,
    is_job_id,
)

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
TRANSFER_CHUNK = 8 * 1024 * 1024
"""Multipart part size: a video goes up in parts of this size, never whole in memory."""
READ_CHUNK = 256 * 1024
DELETE_BATCH = 1000
"""Most keys one DeleteObjects request takes."""


@dataclass(frozen=True)
class ObjectInfo:
    """Size and last change of a stored object."""

    size: int
    modified: float


S3_CONNECT_TIMEOUT_S = 3.0
"""Longest wait to connect to the object store."""
S3_READ_TIMEOUT_S = 10.0
"""Longest pause while reading from the object store."""
S3_ATTEMPTS = 2
"""Tries of one request in all (a retry rides over a dropped connection); botocore's own
`max_attempts` counts retries only, so a stalled store cost three timeouts."""


class MissingBucketError(ValueError):
    """The bucket FACECAST_STORAGE_URL names does not exist: a start-up error."""


class ObjectStore(Protocol):
    """Objects by key ("<job id>/<name>"): what the shared artifact storage must offer."""

    def check(self) -> None:
        """Raise MissingBucketError when the store's bucket is missing, another error when
        the store does not answer."""

    def put_file(self, key: str, source: Path, content_type: str | None = None) -> None:
        """Upload a local file, streamed in parts."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object (manifests, markers)."""

    def get_bytes(self, key: str) -> bytes | None:
        """A small object's content, or None when there is none."""

    def get_file(self, key: str, target: Path) -> bool:
        """Download to a local file, streamed; False when there is no such object."""

    def head(self, key: str) -> ObjectInfo | None:
        """Size and modification time, or None when there is no such object."""

    def copy(self, source: str, target: str) -> None:
        """Copy an object inside the store."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix`."""

    def children(self, prefix: str) -> Iterator[str]:
        """Names of the "folders" right under `prefix` (keys up to the next '/')."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix`, relative to it."""

    def modified(self, prefix: str) -> float | None:
        """When an object under `prefix` last changed (None: there is none)."""

    def presign(self, key: str, ttl: int, filename: str | None = None) -> str | None:
        """A SigV4 GET URL that expires after `ttl` seconds, on an endpoint clients can reach;
        None when there is none (the API then streams the object)."""

    def read(self, key: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes start..end (inclusive; None: from the start / to the end)."""


class S3ObjectStore:
    """An S3 bucket (AWS, MinIO, Ceph, rclone serve s3, ...) under a key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: Any | None = None,
        public_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._client = StoreGuard(client if client is not None else s3_client())
        # Presigned URLs name the endpoint they were signed for: sign for the public address
        # when one is set, for AWS itself when no private endpoint is configured, and never
        # for a private endpoint (clients could not reach it, and it would show them the
        # internal host).
        self._signer: Any | None = None
        if public_url:
            self._signer = s3_client(endpoint_url=public_url)
        elif not private_endpoint():
            self._signer = self._client
        from boto3.s3.transfer import TransferConfig

        self._transfer = TransferConfig(
            multipart_threshold=TRANSFER_CHUNK, multipart_chunksize=TRANSFER_CHUNK
        )

    def _key(self, key: str) -> str:
        return self.prefix + key

    def check(self) -> None:
        """Raise MissingBucketError when the bucket is missing, another error when the store
        does not answer (within the client's timeouts)."""
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise MissingBucketError(
                    f"FACECAST_STORAGE_URL names the bucket {self.bucket!r}, which does not "
                    "exist on the object store: create it, or correct the URL."
                ) from exc
            raise

    def put_file(self, key: str, source: Path, content_type: str | None = None) -> None:
        """Upload a local file, streamed in parts."""
        extra = {"ContentType": content_type} if content_type else None
        self._client.upload_file(
            str(source), self.bucket, self._key(key), ExtraArgs=extra, Config=self._transfer
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object."""
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        """A small object's content, or None."""
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._client.exceptions.NoSuchKey:
            return None
        data: bytes = answer["Body"].read()
        return data

    def get_file(self, key: str, target: Path) -> bool:
        """Download to a local file (written next to it, then renamed); False when absent."""
        if self.head(key) is None:
            return False
        partial = target.with_name(f".{target.name}.download")
        self._client.download_file(self.bucket, self._key(key), str(partial), Config=self._transfer)
        os.replace(partial, target)
        return True

    def head(self, key: str) -> ObjectInfo | None:
        """Size and modification time, or None."""
        from botocore.exceptions import ClientError

        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(int(answer["ContentLength"]), answer["LastModified"].timestamp())

    def copy(self, source: str, target: str) -> None:
        """Copy inside the bucket (server side)."""
        self._client.copy_object(
            Bucket=self.bucket,
            Key=self._key(target),
            CopySource={"Bucket": self.bucket, "Key": self._key(source)},
        )

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix`, a thousand per request."""
        batch: list[dict[str, str]] = []
        for key in self.keys(prefix):
            batch.append({"Key": self._key(prefix + key)})
            if len(batch) == DELETE_BATCH:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
                batch = []
        if batch:
            self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def _pages(self, prefix: str, **extra: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix), **extra)

    def children(self, prefix: str) -> Iterator[str]:
        """Names of the "folders" right under `prefix`."""
        start = len(self._key(prefix))
        for page in self._pages(prefix, Delimiter="/"):
            for entry in page.get("CommonPrefixes", []):
                yield entry["Prefix"][start:].rstrip("/")

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix`, relative to it."""
        start = len(self._key(prefix))
        for page in self._pages(prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"][start:]

    def modified(self, prefix: str) -> float | None:
        """When an object under `prefix` last changed (None: there is none)."""
        times = [
            entry["LastModified"].timestamp()
            for page in self._pages(prefix)
            for entry in page.get("Contents", [])
        ]
        return max(times, default=None)

    def presign(self, key: str, ttl: int, filename: str | None = None) -> str | None:
        """A SigV4 GET URL valid for `ttl` seconds (a download name when `filename` is given)
        on the public endpoint; None when the store only has a private one."""
        if self._signer is None:
            return None
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url: str = self._signer.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)
        return url

    def read(self, key: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes start..end (inclusive), streamed."""
        extra = {}
        if start is not None or end is not None:
            extra["Range"] = f"bytes={start or 0}-{'' if end is None else end}"
        answer = self._client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
        yield from answer["Body"].iter_chunks(READ_CHUNK)


MAX_CAUSES = 8
"""How far a wrapped error's causes are followed."""
STORE_BACKOFF_S = 15.0
"""After the store failed to connect or answer in time, how long every call fails at once
(a stalled store would otherwise cost each request the full timeouts, several times over)."""


class StoreGuard:
    """A boto3 client that fails fast while its store is known to be unreachable.

    The first call that cannot connect, or gets no answer within the client's timeouts, opens
    the guard for STORE_BACKOFF_S: until then every call raises at once (the API answers 503
    with Retry-After), and the first call after it tries the store again.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._closed_at = 0.0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            from botocore.exceptions import (
                ConnectionClosedError,
                ConnectTimeoutError,
                EndpointConnectionError,
                ReadTimeoutError,
            )

            if time.monotonic() < self._closed_at:
                raise EndpointConnectionError(endpoint_url=str(self._client.meta.endpoint_url))
            unreachable = (
                ConnectTimeoutError,
                ReadTimeoutError,
                EndpointConnectionError,
                ConnectionClosedError,
            )
            try:
                return attribute(*args, **kwargs)
            except Exception as exc:
                # boto3's transfers wrap the cause (S3UploadFailedError and the like).
                cause: BaseException | None = exc
                for _ in range(MAX_CAUSES):
                    if cause is None or isinstance(cause, unreachable):
                        break
                    cause = cause.__cause__ or cause.__context__
                if isinstance(cause, unreachable):
                    self._closed_at = time.monotonic() + STORE_BACKOFF_S
                raise

        return guarded


def private_endpoint() -> str | None:
    """The store's own endpoint when it is not AWS (AWS_ENDPOINT_URL[_S3])."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client from the standard AWS variables, SigV4, path-style addressing;
    `endpoint_url` overrides AWS_ENDPOINT_URL (the public address presigned URLs name)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise BackendUnavailableError(
            "s3:// storage needs boto3: pip install 'facecast[s3]'"
        ) from exc
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    config = Config(
        signature_version="s3v4",
        # S3-compatible servers differ in checksum support; ask for checksums only when needed
        # (Range GETs fail validation otherwise).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
        # A stalled store must be a quick 503, not a minute-long hang (botocore's defaults:
        # 60 s to connect, 60 s per read, 5 attempts).
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        read_timeout=S3_READ_TIMEOUT_S,
        retries={"total_max_attempts": S3_ATTEMPTS, "mode": "standard"},
    )
    extra = {"endpoint_url": endpoint_url} if endpoint_url else {}
    return boto3.client("s3", region_name=region, config=config, **extra)


class ObjectStorage(Storage):
    """Jobs in a shared object store; the data directory holds this host's working copies.

    Finished files go up with `publish`, files a host needs come down with `local`; manifests,
    the reuse cache, reuse markers and retention read and write the store itself.
    """

    def __init__(self, root: Path, store: ObjectStore) -> None:
        super().__init__(root)
        self.store = store

    def check(self) -> None:
        """Raise MissingBucketError for a missing bucket, another error for no answer."""
        self.store.check()

    def publish(self, job_id: str, name: str) -> None:
        """Upload a finished local file of the job (streamed in parts)."""
        self.store.put_file(f"{job_id}/{name}", self.path(job_id, name))

    def publish_stream(self, job_id: str, path: Path) -> None:
        """Upload one file of the job's live HLS stream."""
        if STREAM_FILE_PATTERN.fullmatch(path.name):
            self.store.put_file(self._stream_key(job_id, path.name), path)

    def _stream_key(self, job_id: str, name: str) -> str:
        return f"{self.job_dir(job_id).name}/{STREAM_DIR}/{name}"

    def local(self, job_id: str, name: str) -> Path:
        """The job's file on this host, fetched from the store when it is not here yet."""
        path = self.path(job_id, name)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.store.get_file(f"{job_id}/{name}", path):
                raise FileNotFoundError(f"job {job_id} has no {name}")
        return path

    def has(self, job_id: str, name: str) -> bool:
        """True when the store holds the downloadable artifact."""
        if name not in DOWNLOADS or not is_job_id(job_id):
            return False
        return self.store.head(f"{job_id}/{name}") is not None

    def drop_local(self, job_id: str) -> None:
        """Forget this host's working copy (the store keeps the job)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def _drop_stream(self, job_id: str) -> None:
        super()._drop_stream(job_id)
        try:
            self.store.delete_prefix(self._stream_key(job_id, ""))
        except Exception:  # the store is down: retention removes them later
            logger.warning("could not remove the stream of job %s", job_id, exc_info=True)

    def link(self, source_job: str, target_job: str, name: str) -> None:
        """Copy the artifact inside the store (fetched by `local` where it is needed)."""
        self.store.copy(f"{source_job}/{name}", f"{target_job}/{name}")

    def fetch(
        self, job_id: str, name: str, presign_ttl: int | None = None, filename: str | None = None
    ) -> Path | RemoteFile | None:
        """The object, with a presigned URL valid `presign_ttl` s when one is asked for."""
        if name not in DOWNLOADS or not is_job_id(job_id):
            return None
        key = f"{job_id}/{name}"
        info = self.store.head(key)
        if info is None:
            return None
        url = None if presign_ttl is None else self.store.presign(key, presign_ttl, filename)
        return RemoteFile(key, info.size, url)

    def fetch_stream(self, job_id: str, name: str) -> Path | RemoteFile | None:
        """A stream file as an object of the store."""
        if STREAM_FILE_PATTERN.fullmatch(name) is None or not is_job_id(job_id):
            return None
        key = self._stream_key(job_id, name)
        info = self.store.head(key)
        return None if info is None else RemoteFile(key, info.size)

    def read_range(self, file: RemoteFile, start: int, end: int) -> Iterator[bytes]:
        """The object's bytes start..end, streamed from the store."""
        yield from self.store.read(file.key, start, end)

    def read_whole(self, file: Path | RemoteFile) -> bytes:
        """A small object's bytes."""
        if isinstance(file, Path):
            return file.read_bytes()
        return self.store.get_bytes(file.key) or b""

    def write_manifest(self, manifest: JobManifest) -> None:
        """The local copy, then the store's."""
        super().write_manifest(manifest)
        data = self.path(manifest.job_id, MANIFEST).read_bytes()
        self.store.put_bytes(f"{manifest.job_id}/{MANIFEST}", data)

    def read_manifest(self, job_id: str) -> JobManifest | None:
        """The store's manifest."""
        self.job_dir(job_id)  # validates the id
        raw = self.store.get_bytes(f"{job_id}/{MANIFEST}")
        return None if raw is None else JobManifest.model_validate_json(raw)

    def touch(self, job_id: str) -> None:
        """A reuse marker object."""
        self.store.put_bytes(f"{self.job_dir(job_id).name}/{USED_MARKER}", b"")

    def cache_get(self, key: str) -> str | None:
        """The job the cache object names, if its manifest is still there."""
        if CACHE_KEY_PATTERN.fullmatch(key) is None:
            return None
        raw = self.store.get_bytes(f"{CACHE_DIR}/{key}")
        job_id = raw.decode().strip() if raw is not None else ""
        return job_id if is_job_id(job_id) and self.read_manifest(job_id) else None

    def cache_put(self, key: str, job_id: str) -> None:
        """A cache object naming `job_id`."""
        if CACHE_KEY_PATTERN.fullmatch(key) is None or not is_job_id(job_id):
            raise ValueError("bad cache key or job id")
        self.store.put_bytes(f"{CACHE_DIR}/{key}", job_id.encode())

    def job_ids(self) -> Iterator[str]:
        """The job "folders" in the store."""
        yield from (name for name in self.store.children("") if is_job_id(name))

    def _activity_times(self, job_id: str, no_manifest: bool) -> tuple[float, float]:
        marker = self.store.head(f"{job_id}/{USED_MARKER}")
        used_at = marker.modified if marker is not None else 0.0
        # No manifest yet: a job still being created counts from its newest object.
        created = (self.store.modified(f"{job_id}/") or 0.0) if no_manifest else 0.0
        return used_at, created

    def remove(self, job_id: str) -> None:
        """The working copy and every object of the job."""
        super().remove(job_id)
        self.store.delete_prefix(f"{job_id}/")

    def _stored_names(self, job_id: str) -> Iterator[str]:
        return self.store.keys(f"{job_id}/")

    def _drop_cache_entry(self, key: str, job_id: str) -> int:
        raw = self.store.get_bytes(f"{CACHE_DIR}/{key}")
        if raw is None or raw.decode(errors="replace").strip() != job_id:
            return 0
        self.store.delete_prefix(f"{CACHE_DIR}/{key}")
        return 1

    def prune_cache(self) -> None:
        """Drop cache objects whose job is gone."""
        for key in list(self.store.keys(f"{CACHE_DIR}/")):
            if CACHE_KEY_PATTERN.fullmatch(key) and self.cache_get(key) is None:
                self.store.delete_prefix(f"{CACHE_DIR}/{key}")

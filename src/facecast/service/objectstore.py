"""Shared artifact storage beyond one disk: any S3-compatible object store, through boto3.

`FACECAST_STORAGE_URL=s3://bucket/prefix` makes every job's artifacts (uploads, audio, video,
stream segments, manifests, the reuse cache) objects under `prefix/`, so the API and workers
on different hosts share nothing but Redis and the bucket; each process keeps only a local
working copy of the jobs it handles in its data directory. Credentials and endpoint come from
the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL,
AWS_REGION). `file:///path` (or nothing) keeps everything in the data directory.

Needs the `s3` extra (`pip install 'facecast[s3]'`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from facecast.config import parse_storage_url
from facecast.errors import BackendUnavailableError

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
"""Tries of one request (a retry rides over a dropped connection)."""


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

    def presign(self, key: str, ttl: int, filename: str | None = None) -> str:
        """A SigV4 GET URL that expires after `ttl` seconds."""

    def read(self, key: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes start..end (inclusive; None: from the start / to the end)."""


class S3ObjectStore:
    """An S3 bucket (AWS, MinIO, Ceph, rclone serve s3, ...) under a key prefix."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._client = client if client is not None else s3_client()
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

    def presign(self, key: str, ttl: int, filename: str | None = None) -> str:
        """A SigV4 GET URL valid for `ttl` seconds (a download name when `filename` is given)."""
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url: str = self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)
        return url

    def read(self, key: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes start..end (inclusive), streamed."""
        extra = {}
        if start is not None or end is not None:
            extra["Range"] = f"bytes={start or 0}-{'' if end is None else end}"
        answer = self._client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
        yield from answer["Body"].iter_chunks(READ_CHUNK)


def s3_client() -> Any:
    """A boto3 S3 client from the standard AWS variables, SigV4, path-style addressing."""
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
        retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"},
    )
    return boto3.client("s3", region_name=region, config=config)


def open_object_store(url: str | None) -> S3ObjectStore | None:
    """The shared store FACECAST_STORAGE_URL names; None for file:// (the data directory)."""
    if not url:
        return None
    scheme, bucket, prefix = parse_storage_url(url)
    return S3ObjectStore(bucket, prefix) if scheme == "s3" else None

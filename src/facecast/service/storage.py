"""Job directories under the data dir: uploads, artifacts, `job.json` manifests, reuse, retention.

Layout::

    <data dir>/<job id>/job.json      manifest (request, consent, final state, result)
    <data dir>/<job id>/source.png    the uploaded photo
    <data dir>/<job id>/audio.wav     speech (TTS jobs, or linked from one)
    <data dir>/<job id>/video.mp4     the rendered video (video.webm when WebM was asked for)
    <data dir>/<job id>/video.vtt     its captions, when asked for (or video.srt)
    <data dir>/<job id>/stream/       live HLS: index.m3u8, init.mp4, seg00000.m4s, ...
    <data dir>/_cache/<sha256>        content hash -> id of the job that made the result

Every id is checked against a strict pattern before it becomes part of a path.

`Storage` is the one interface, with two implementations: this module's (the data directory
is the store) and `ObjectStorage` (objectstore.py, `FACECAST_STORAGE_URL=s3://...`), where the
same layout lives in a bucket that is the truth for every host and the data directory keeps
only this process's working copies. Callers never ask which one they have: `publish` makes a
finished file visible to every host, `local` gives a file on this host, `fetch` what a client
downloads, and manifests, the reuse cache and retention go wherever the store is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from facecast.config import Settings, parse_storage_url
from facecast.service.errors import JobNotFoundError, PayloadTooLargeError
from facecast.service.schemas import JobManifest

logger = logging.getLogger(__name__)

JOB_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""Job ids are uuid4 hex strings; nothing else ever names a job directory."""

CACHE_KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
FILE_NAME_PATTERN = re.compile(r"[a-z0-9_]{1,32}(\.[a-z0-9]{1,8})?")
STREAM_FILE_PATTERN = re.compile(
    r"index\.m3u8|video\.m3u8|captions\.m3u8|captions\.vtt|init\.mp4|seg[0-9]{5}\.m4s"
)
"""The files of a job's HLS stream (see video.hls_target)."""
STREAM_DIR = "stream"

MANIFEST = "job.json"
VIDEO = "video.mp4"
VIDEO_WEBM = "video.webm"
VIDEOS = {"mp4": VIDEO, "webm": VIDEO_WEBM}
"""The rendered video's name for each format (RenderOptions.format)."""
AUDIO = "audio.wav"
CAPTIONS = ("video.vtt", "video.srt")
"""The caption file beside the video (the pipeline names it after the video: WebVTT or SRT)."""
DOWNLOADS = frozenset({*VIDEOS.values(), AUDIO, *CAPTIONS})
"""The only files a client may download; sources and manifests stay private."""

RESERVE = "space_reserve"
RESERVE_BYTES = 64 * 1024
"""Space each unfinished job holds back, so that its final state can be written on a full disk."""
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
TEMP_SUFFIXES = (".tmp", ".partial")
PARTIAL_FILES = frozenset({"audio_partial.wav"})
"""Files a job writes before renaming them into place; gone once the job has ended."""
USED_MARKER = ".used"
CACHE_DIR = "_cache"
BROKER_DIR = "_broker"
STALE_FACTOR = 2.0
"""Unfinished jobs older than this many retention periods are removed as abandoned."""
COPY_CHUNK = 1 << 20


def is_job_id(value: str) -> bool:
    """True when `value` can name a job."""
    return JOB_ID_PATTERN.fullmatch(value) is not None


def content_key(*parts: str | bytes | int | float | bool | None) -> str:
    """A sha256 over typed parts: the same inputs give the same key, in any process."""
    digest = hashlib.sha256()
    for part in parts:
        raw = part if isinstance(part, bytes) else repr(part).encode()
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes, reserve: Path | None = None) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never half of one.

    A failed write leaves no temporary file. On a full disk the `reserve` file, when there is
    one, is given up and the write tried once more: that is what the reserve is kept for.
    """
    for last in (False, True):
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if last or exc.errno not in DISK_FULL or reserve is None or not reserve.exists():
                raise
            reserve.unlink(missing_ok=True)


def check_writable(folder: Path) -> None:
    """Raise when files cannot be written in `folder` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".ping-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if missing) for the block."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RemoteFile:
    """A file a client gets from the shared object store: its key and size, and a presigned
    URL when the client may fetch it there itself."""

    key: str
    size: int
    url: str | None = None


class Storage:
    """Job files in the data directory, which is the store; ids validated before use.

    The interface every storage offers (see objectstore.ObjectStorage for the other one).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    # ------------------------------------------------------------------ the store itself

    def check(self) -> None:
        """Raise when the store cannot take files (here: the data directory is not writable)."""
        check_writable(self.root)

    def publish(self, job_id: str, name: str) -> None:
        """Make a finished local file of the job visible to every host (here: it is)."""

    def publish_stream(self, job_id: str, path: Path) -> None:
        """Make one file of the job's live HLS stream visible to every host (here: it is)."""

    def local(self, job_id: str, name: str) -> Path:
        """The job's file on this host."""
        return self.path(job_id, name)

    def has(self, job_id: str, name: str) -> bool:
        """True when a downloadable artifact of the job is there."""
        if name not in DOWNLOADS or not is_job_id(job_id):
            return False
        return (self.root / job_id / name).is_file()

    def drop_local(self, job_id: str) -> None:
        """Forget this host's working copy of a job (here the copy is the job: kept)."""

    @property
    def broker_dir(self) -> Path:
        """Where the server-less queue keeps its message files."""
        return self.root / BROKER_DIR

    def new_job(self) -> str:
        """Create a job directory holding only its space reserve, and return its id.

        Without room for the reserve there is no room to finish the job cleanly: the OSError
        (ENOSPC) refuses the job before anything else is written.
        """
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir(parents=True)
        try:
            with (folder / RESERVE).open("wb") as out:
                out.write(b"\0" * RESERVE_BYTES)  # written, not sparse: the blocks are held
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return job_id

    def reserve(self, job_id: str) -> Path:
        """The job's space reserve (see `write_atomically`)."""
        return self.path(job_id, RESERVE)

    def settle(self, job_id: str, keep: frozenset[str]) -> None:
        """After a job ended: drop its reserve, temporary and partial files, and every output
        not in `keep` (a failed job keeps no half-made result)."""
        folder = self.job_dir(job_id)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                name = entry.name
                temporary = name.endswith(TEMP_SUFFIXES) or name in PARTIAL_FILES
                dropped = name in DOWNLOADS and name not in keep
                if temporary or dropped or name == RESERVE:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        if VIDEO not in keep:
            self._drop_stream(job_id)

    def _drop_stream(self, job_id: str) -> None:
        """A job that did not end done keeps no HLS segments (they would stay until
        retention, playable by whoever holds the link)."""
        shutil.rmtree(self.stream_dir(job_id), ignore_errors=True)

    def job_dir(self, job_id: str) -> Path:
        """The directory of `job_id`; raises JobNotFoundError for malformed ids."""
        if not is_job_id(job_id):
            raise JobNotFoundError(f"There is no job {job_id[:64]!r}.")
        return self.root / job_id

    def path(self, job_id: str, name: str) -> Path:
        """A file inside the job directory; `name` must be a plain file name."""
        if FILE_NAME_PATTERN.fullmatch(name) is None:
            raise ValueError(f"not a job file name: {name!r}")
        return self.job_dir(job_id) / name

    def stream_dir(self, job_id: str) -> Path:
        """Where the job's HLS stream is written while it renders."""
        return self.job_dir(job_id) / STREAM_DIR

    def exists(self, job_id: str) -> bool:
        """True when the job directory is there."""
        return is_job_id(job_id) and (self.root / job_id).is_dir()

    def save_stream(self, job_id: str, name: str, source: BinaryIO, max_bytes: int) -> str:
        """Copy an upload into the job directory; its sha256. Refuses more than max_bytes."""
        target = self.path(job_id, name)
        digest = hashlib.sha256()
        size = 0
        with target.open("wb") as out:
            while chunk := source.read(COPY_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    out.close()
                    target.unlink(missing_ok=True)
                    raise PayloadTooLargeError(
                        f"The upload is larger than the limit of {max_bytes // (1024 * 1024)} MiB."
                    )
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    def link(self, source_job: str, target_job: str, name: str) -> None:
        """Share an artifact of one job with another (hard link; copy across filesystems)."""
        source, target = self.path(source_job, name), self.path(target_job, name)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)

    def fetch(
        self, job_id: str, name: str, presign_ttl: int | None = None, filename: str | None = None
    ) -> Path | RemoteFile | None:
        """A downloadable artifact (`video.mp4`, `audio.wav`) for a client, or None when it is
        not (or no longer) there. A local file here; `presign_ttl`, a shared store's URL
        lifetime, has nothing to sign."""
        if name not in DOWNLOADS or not is_job_id(job_id):
            return None
        path = self.root / job_id / name
        return path if path.is_file() else None

    def fetch_stream(self, job_id: str, name: str) -> Path | RemoteFile | None:
        """A file of the job's live HLS stream for a client, or None when `name` is not one or
        not there (yet)."""
        if STREAM_FILE_PATTERN.fullmatch(name) is None or not is_job_id(job_id):
            return None
        path = self.stream_dir(job_id) / name
        return path if path.is_file() else None

    def read_range(self, file: RemoteFile, start: int, end: int) -> Iterator[bytes]:
        """Bytes start..end (inclusive) of a file `fetch` answered, streamed."""
        with (self.root / file.key).open("rb") as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0 and (chunk := handle.read(min(COPY_CHUNK, left))):
                left -= len(chunk)
                yield chunk

    def read_whole(self, file: Path | RemoteFile) -> bytes:
        """A small file's bytes (a playlist), wherever `fetch_stream` found it."""
        path = file if isinstance(file, Path) else self.root / file.key
        return path.read_bytes()

    # ------------------------------------------------------------------ manifests

    def write_manifest(self, manifest: JobManifest) -> None:
        """Store `job.json` atomically."""
        data = manifest.model_dump_json(indent=2).encode()
        path = self.path(manifest.job_id, MANIFEST)
        path.parent.mkdir(parents=True, exist_ok=True)
        reserve = self.reserve(manifest.job_id) if manifest.state.status.final else None
        write_atomically(path, data, reserve)

    def read_manifest(self, job_id: str) -> JobManifest | None:
        """The manifest, or None when the job does not exist."""
        try:
            raw = self.path(job_id, MANIFEST).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return JobManifest.model_validate_json(raw)

    def touch(self, job_id: str) -> None:
        """Note that a job's result was reused now, so that retention keeps it longer."""
        (self.job_dir(job_id) / USED_MARKER).touch()

    # ------------------------------------------------------------------ content-hash reuse

    def cache_get(self, key: str) -> str | None:
        """The job that produced the result for `key`, if it is still there."""
        if CACHE_KEY_PATTERN.fullmatch(key) is None:
            return None
        try:
            job_id = (self.root / CACHE_DIR / key).read_text().strip()
        except FileNotFoundError:
            return None
        return job_id if self.exists(job_id) else None

    def cache_put(self, key: str, job_id: str) -> None:
        """Remember that `job_id` holds the result for `key`."""
        if CACHE_KEY_PATTERN.fullmatch(key) is None or not is_job_id(job_id):
            raise ValueError("bad cache key or job id")
        folder = self.root / CACHE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / key, job_id.encode())

    # ------------------------------------------------------------------ retention

    def job_ids(self) -> Iterator[str]:
        """Ids of all jobs in the store."""
        if not self.root.is_dir():
            return
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and is_job_id(entry.name):
                yield entry.name

    def _last_activity(self, job_id: str, manifest: JobManifest | None) -> tuple[bool, float]:
        """(finished?, time of the last activity) of a job."""
        used_at, created = self._activity_times(job_id, manifest is None)
        if manifest is None:
            return True, max(created, used_at)
        state = manifest.state
        if state.status.final:
            return True, max(state.finished_at or manifest.created_at, used_at)
        return False, manifest.created_at

    def _activity_times(self, job_id: str, no_manifest: bool) -> tuple[float, float]:
        """(last reuse, creation) times of a job (0.0 where unknown)."""
        folder = self.root / job_id
        used = folder / USED_MARKER
        return (used.stat().st_mtime if used.exists() else 0.0), folder.stat().st_mtime

    def expired(self, now: float, retention_s: float) -> list[str]:
        """Jobs whose retention has run out (finished) or that were abandoned (unfinished)."""
        old: list[str] = []
        for job_id in self.job_ids():
            try:
                manifest = self.read_manifest(job_id)
                finished, last = self._last_activity(job_id, manifest)
            except (OSError, ValueError):
                continue
            limit = retention_s if finished else retention_s * STALE_FACTOR
            if now - last > limit:
                old.append(job_id)
        return old

    def remove(self, job_id: str) -> None:
        """Delete a job directory and everything in it (and its objects in the shared store)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def erase(self, job_id: str) -> tuple[list[str], int]:
        """Delete a finished job for good (the right to delete): every file of it, here and in
        the shared store, and the reuse-cache entries that point at it. Returns the names of the
        files removed (relative to the job, e.g. `stream/seg00000.m4s`) and the number of cache
        entries dropped. Files other jobs reused are their own copies (hard links, copied
        objects): those stay with their jobs."""
        folder = self.job_dir(job_id)
        names: set[str] = set()
        if folder.is_dir():
            names.update(
                path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()
            )
        names.update(self._stored_names(job_id))
        dropped = self._drop_cache_entries(job_id)
        self.remove(job_id)
        hidden = {MANIFEST, RESERVE, USED_MARKER}
        return sorted(name for name in names if name not in hidden), dropped

    def _stored_names(self, job_id: str) -> Iterator[str]:
        """Names of the job's files kept elsewhere than this host (here: none)."""
        return iter(())

    def _drop_cache_entries(self, job_id: str) -> int:
        """Remove the reuse-cache entry whose result lives in `job_id` (the one its manifest's
        `cache_key` names; only a job's own worker writes an entry for it); how many (0/1)."""
        manifest = self.read_manifest(job_id)
        key = manifest.cache_key if manifest is not None else None
        if key is None or CACHE_KEY_PATTERN.fullmatch(key) is None:
            return 0
        return self._drop_cache_entry(key, job_id)

    def _drop_cache_entry(self, key: str, job_id: str) -> int:
        """Remove cache entry `key` if it names `job_id`; how many (0/1)."""
        entry = self.root / CACHE_DIR / key
        try:
            if entry.read_text().strip() != job_id:
                return 0
        except FileNotFoundError:
            return 0
        entry.unlink(missing_ok=True)
        return 1

    def prune_cache(self) -> None:
        """Drop cache entries whose job is gone."""
        folder = self.root / CACHE_DIR
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if CACHE_KEY_PATTERN.fullmatch(entry.name) and self.cache_get(entry.name) is None:
                entry.unlink(missing_ok=True)


def open_storage(settings: Settings) -> Storage:
    """The storage FACECAST_STORAGE_URL names (the data directory by default)."""
    scheme, bucket, prefix = (
        parse_storage_url(settings.storage_url) if settings.storage_url else ("file", "", "")
    )
    if scheme != "s3":
        return Storage(settings.local_dir)
    from facecast.service.objectstore import ObjectStorage, S3ObjectStore

    return ObjectStorage(
        settings.local_dir, S3ObjectStore(bucket, prefix, public_url=settings.s3_public_url)
    )

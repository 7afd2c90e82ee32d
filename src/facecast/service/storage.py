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

With a shared object store (`FACECAST_STORAGE_URL=s3://...`, see objectstore.py) the same
layout lives in the bucket and is the truth for every host; the data directory keeps only this
process's working copies. `publish` sends a finished file up, `local` fetches one on demand,
manifests, the reuse cache and retention go to the bucket. Without one, the data directory is
the store and those calls cost nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from facecast.config import Settings
from facecast.service.errors import JobNotFoundError, PayloadTooLargeError
from facecast.service.objectstore import ObjectInfo, ObjectStore, open_object_store
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
BROKER_FILE_MAX_AGE_S = 3600.0
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


class Storage:
    """The data directory (and the shared object store, if any), ids validated before use."""

    def __init__(self, root: Path, remote: ObjectStore | None = None) -> None:
        self.root = root.resolve()
        self.remote = remote
        """The shared object store; None: the data directory is the store."""

    # ------------------------------------------------------------------ the shared store

    def publish(self, job_id: str, name: str) -> None:
        """Make a finished local file of the job visible to every host (uploaded, streamed)."""
        if self.remote is not None:
            self.remote.put_file(f"{job_id}/{name}", self.path(job_id, name))

    def publish_stream(self, job_id: str, path: Path) -> None:
        """Upload one file of the job's live HLS stream."""
        if self.remote is not None and STREAM_FILE_PATTERN.fullmatch(path.name):
            self.remote.put_file(f"{self._stream_key(job_id, path.name)}", path)

    def _stream_key(self, job_id: str, name: str) -> str:
        return f"{self.job_dir(job_id).name}/{STREAM_DIR}/{name}"

    def local(self, job_id: str, name: str) -> Path:
        """The job's file on this host, fetched from the shared store when it is not here yet."""
        path = self.path(job_id, name)
        if self.remote is not None and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.remote.get_file(f"{job_id}/{name}", path):
                raise FileNotFoundError(f"job {job_id} has no {name}")
        return path

    def has(self, job_id: str, name: str) -> bool:
        """True when a downloadable artifact of the job is there (here or in the shared store)."""
        if name not in DOWNLOADS or not is_job_id(job_id):
            return False
        if self.remote is not None:
            return self.remote.head(f"{job_id}/{name}") is not None
        return (self.root / job_id / name).is_file()

    def drop_local(self, job_id: str) -> None:
        """Forget this host's working copy of a job (the shared store keeps the job)."""
        if self.remote is not None:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

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
        if self.remote is not None:
            try:
                self.remote.delete_prefix(self._stream_key(job_id, ""))
            except Exception:  # the store is down: retention removes them later
                logger.warning("could not remove the stream of job %s", job_id, exc_info=True)

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

    def stream_file(self, job_id: str, name: str) -> Path | None:
        """A file of the job's HLS stream, or None when `name` is not one or not there (yet)."""
        if STREAM_FILE_PATTERN.fullmatch(name) is None or not is_job_id(job_id):
            return None
        path = self.stream_dir(job_id) / name
        return path if path.is_file() else None

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

    def link(self, source_job: str, target_job: str, name: str) -> Path:
        """Share an artifact of one job with another (hard link; copy across filesystems)."""
        source, target = self.path(source_job, name), self.path(target_job, name)
        if self.remote is not None:
            self.remote.copy(f"{source_job}/{name}", f"{target_job}/{name}")
            return target  # fetched by `local` where it is needed
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return target

    def download(self, job_id: str, name: str) -> Path | None:
        """A downloadable artifact in the data directory, or None when it is not (or no longer)
        there (with a shared store: see `has`, `remote.presign`, `remote.read`)."""
        if name not in DOWNLOADS or not is_job_id(job_id) or self.remote is not None:
            return None
        path = self.root / job_id / name
        return path if path.is_file() else None

    # ------------------------------------------------------------------ manifests

    def write_manifest(self, manifest: JobManifest) -> None:
        """Store `job.json` atomically."""
        data = manifest.model_dump_json(indent=2).encode()
        path = self.path(manifest.job_id, MANIFEST)
        path.parent.mkdir(parents=True, exist_ok=True)
        reserve = self.reserve(manifest.job_id) if manifest.state.status.final else None
        write_atomically(path, data, reserve)
        if self.remote is not None:
            self.remote.put_bytes(f"{manifest.job_id}/{MANIFEST}", data)

    def read_manifest(self, job_id: str) -> JobManifest | None:
        """The manifest, or None when the job does not exist."""
        if self.remote is not None:
            self.job_dir(job_id)  # validates the id
            raw = self.remote.get_bytes(f"{job_id}/{MANIFEST}")
            return None if raw is None else JobManifest.model_validate_json(raw)
        try:
            raw = self.path(job_id, MANIFEST).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return JobManifest.model_validate_json(raw)

    def touch(self, job_id: str) -> None:
        """Note that a job's result was reused now, so that retention keeps it longer."""
        if self.remote is not None:
            self.remote.put_bytes(f"{self.job_dir(job_id).name}/{USED_MARKER}", b"")
            return
        (self.job_dir(job_id) / USED_MARKER).touch()

    # ------------------------------------------------------------------ content-hash reuse

    def cache_get(self, key: str) -> str | None:
        """The job that produced the result for `key`, if it is still there."""
        if CACHE_KEY_PATTERN.fullmatch(key) is None:
            return None
        if self.remote is not None:
            raw = self.remote.get_bytes(f"{CACHE_DIR}/{key}")
            job_id = raw.decode().strip() if raw is not None else ""
            return job_id if is_job_id(job_id) and self.read_manifest(job_id) else None
        try:
            job_id = (self.root / CACHE_DIR / key).read_text().strip()
        except FileNotFoundError:
            return None
        return job_id if self.exists(job_id) else None

    def cache_put(self, key: str, job_id: str) -> None:
        """Remember that `job_id` holds the result for `key`."""
        if CACHE_KEY_PATTERN.fullmatch(key) is None or not is_job_id(job_id):
            raise ValueError("bad cache key or job id")
        if self.remote is not None:
            self.remote.put_bytes(f"{CACHE_DIR}/{key}", job_id.encode())
            return
        folder = self.root / CACHE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / key, job_id.encode())

    # ------------------------------------------------------------------ retention

    def job_ids(self) -> Iterator[str]:
        """Ids of all job directories (in the shared store, when there is one)."""
        if self.remote is not None:
            yield from (name for name in self.remote.children("") if is_job_id(name))
            return
        if not self.root.is_dir():
            return
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and is_job_id(entry.name):
                yield entry.name

    def _last_activity(self, job_id: str, manifest: JobManifest | None) -> tuple[bool, float]:
        """(finished?, time of the last activity) of a job."""
        folder = self.root / job_id
        if self.remote is not None:
            marker: ObjectInfo | None = self.remote.head(f"{job_id}/{USED_MARKER}")
            used_at = marker.modified if marker is not None else 0.0
            # No manifest yet: a job still being created counts from its newest object.
            created = (self.remote.modified(f"{job_id}/") or 0.0) if manifest is None else 0.0
        else:
            used = folder / USED_MARKER
            used_at = used.stat().st_mtime if used.exists() else 0.0
            created = folder.stat().st_mtime
        if manifest is None:
            return True, max(created, used_at)
        state = manifest.state
        if state.status.final:
            return True, max(state.finished_at or manifest.created_at, used_at)
        return False, manifest.created_at

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
        if self.remote is not None:
            self.remote.delete_prefix(f"{job_id}/")

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
        if self.remote is not None:
            names.update(self.remote.keys(f"{job_id}/"))
        dropped = self._drop_cache_entries(job_id)
        self.remove(job_id)
        hidden = {MANIFEST, RESERVE, USED_MARKER}
        return sorted(name for name in names if name not in hidden), dropped

    def _drop_cache_entries(self, job_id: str) -> int:
        """Remove the reuse-cache entry whose result lives in `job_id` (the one its manifest's
        `cache_key` names; only a job's own worker writes an entry for it); how many (0/1)."""
        manifest = self.read_manifest(job_id)
        key = manifest.cache_key if manifest is not None else None
        if key is None or CACHE_KEY_PATTERN.fullmatch(key) is None:
            return 0
        if self.remote is not None:
            raw = self.remote.get_bytes(f"{CACHE_DIR}/{key}")
            if raw is None or raw.decode(errors="replace").strip() != job_id:
                return 0
            self.remote.delete_prefix(f"{CACHE_DIR}/{key}")
            return 1
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
        if self.remote is not None:
            for key in list(self.remote.keys(f"{CACHE_DIR}/")):
                if CACHE_KEY_PATTERN.fullmatch(key) and self.cache_get(key) is None:
                    self.remote.delete_prefix(f"{CACHE_DIR}/{key}")
            return
        folder = self.root / CACHE_DIR
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if CACHE_KEY_PATTERN.fullmatch(entry.name) and self.cache_get(entry.name) is None:
                entry.unlink(missing_ok=True)

    def prune_broker_files(self, now: float | None = None) -> None:
        """Drop old processed message files of the server-less queue."""
        folder = self.broker_dir / "processed"
        if not folder.is_dir():
            return
        now = time.time() if now is None else now
        for entry in folder.iterdir():
            if now - entry.stat().st_mtime > BROKER_FILE_MAX_AGE_S:
                entry.unlink(missing_ok=True)


def open_storage(settings: Settings) -> Storage:
    """The storage FACECAST_STORAGE_URL names (the data directory by default)."""
    return Storage(settings.local_dir, open_object_store(settings.storage_url))

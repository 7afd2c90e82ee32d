"""What clients read of a job: its view with download links, its files and its live stream.

Files are open without API keys; with keys, to the job's owner or to a signed link. A file is a
local path, or an object of the shared store (`RemoteFile`, with a presigned URL unless
downloads are proxied); the storage decides which.
"""

from __future__ import annotations

import time
from pathlib import Path

from facecast.config import Settings
from facecast.service.access import (
    Principal,
    download_path,
    keys_configured,
    link_is_valid,
    stream_path,
)
from facecast.service.errors import JobNotFoundError
from facecast.service.lookup import JobLookup
from facecast.service.schemas import JobManifest, JobState, JobStatus, JobView, iso
from facecast.service.storage import AUDIO, CAPTIONS, VIDEO, VIDEOS, RemoteFile, Storage

STREAMED = frozenset({JobStatus.RUNNING, JobStatus.DONE})
"""Statuses whose view links the live stream (once it has a segment)."""
STREAM_LINK = "stream"
"""The name download links of a job's HLS stream are signed for (every file under stream/)."""


class Downloads:
    """Views, downloads and stream files of jobs, for whoever may see them."""

    def __init__(self, settings: Settings, storage: Storage, lookup: JobLookup) -> None:
        self.settings = settings
        self.storage = storage
        self.lookup = lookup

    def view(self, state: JobState, base_url: str) -> JobView:
        """The client's view of a job, with absolute download links."""
        base = (self.settings.public_url or base_url).rstrip("/")
        settings = self.settings
        manifest = self.storage.read_manifest(state.job_id)
        name = VIDEOS[manifest.request.options.format] if manifest is not None else VIDEO
        video = state.status is JobStatus.DONE and self.storage.has(state.job_id, name)
        audio = state.status is JobStatus.DONE and self.storage.has(state.job_id, AUDIO)
        stream = state.streaming and state.status in STREAMED
        captions = self._captions(state, manifest)
        return JobView(
            job_id=state.job_id,
            kind=state.kind,
            status=state.status,
            progress=state.progress,
            stage=state.stage,
            video_url=base + download_path(settings, state.job_id, name) if video else None,
            audio_url=base + download_path(settings, state.job_id, AUDIO) if audio else None,
            stream_url=base + stream_path(settings, state.job_id) if stream else None,
            captions_url=base + download_path(settings, state.job_id, captions)
            if captions
            else None,
            error=state.error,
            attempt=state.attempts,
            reused_from=state.reused_from,
            client_ref=manifest.request.client_ref if manifest is not None else None,
            warnings=manifest.result.warnings if manifest and manifest.result else [],
            created_at=iso(state.created_at),
            started_at=iso(state.started_at),
            finished_at=iso(state.finished_at),
        )

    def _captions(self, state: JobState, manifest: JobManifest | None) -> str | None:
        """The caption file of a done job that asked for captions, if it is there."""
        if state.status is not JobStatus.DONE or manifest is None:
            return None
        if not manifest.request.options.captions:
            return None
        return next((n for n in CAPTIONS if self.storage.has(state.job_id, n)), None)

    def _allowed(
        self,
        state: JobState,
        job_id: str,
        link: str,
        caller: Principal | None,
        sig: str | None,
        exp: int | None,
    ) -> bool:
        """Files are open without keys; with keys, to the job's owner or an unexpired signed
        link (an expired one raises LinkExpiredError)."""
        return (
            not keys_configured(self.settings)
            or (caller is not None and caller.may_see(state.owner))
            or link_is_valid(self.settings, job_id, link, sig, exp)
        )

    def stream_file(
        self,
        job_id: str,
        name: str,
        caller: Principal | None = None,
        sig: str | None = None,
        exp: int | None = None,
    ) -> Path | RemoteFile:
        """A file of the job's live HLS stream (there while it renders); JobNotFoundError if not
        (also for other tenants: no existence oracle)."""
        missing = JobNotFoundError(f"Job {job_id[:64]!r} has no stream file {name[:32]!r} (yet).")
        state = self.lookup.state_of(job_id)
        if (
            state is None
            or state.status not in STREAMED
            or not self._allowed(state, job_id, STREAM_LINK, caller, sig, exp)
        ):
            raise missing
        found = self.storage.fetch_stream(job_id, name)
        if found is None:
            raise missing
        return found

    def download(
        self,
        job_id: str,
        name: str,
        caller: Principal | None = None,
        sig: str | None = None,
        exp: int | None = None,
    ) -> Path | RemoteFile:
        """A finished job's video or audio for a signed link or the job's owner: a local file,
        or an object of the shared store (with a presigned URL unless downloads are proxied);
        JobNotFoundError otherwise (also for other tenants: no existence oracle)."""
        missing = JobNotFoundError(f"Job {job_id[:64]!r} has no {name[:32]!r} (yet).")
        state = self.lookup.state_of(job_id)
        if (
            state is None
            or state.status is not JobStatus.DONE
            or not self._allowed(state, job_id, name, caller, sig, exp)
        ):
            raise missing
        ttl: int | None = None
        if not self.settings.proxy_downloads:
            # A signed link's presigned URL ends no later than the link itself.
            ttl = self.settings.url_ttl
            if exp is not None and sig:
                ttl = max(1, min(ttl, exp - int(time.time())))
        found = self.storage.fetch(job_id, name, ttl, f"{job_id}-{name}")
        if found is None:
            raise missing
        return found

"""The job service: what the routes call. It assembles the service's parts and answers for them.

    intake      submissions -> stored inputs, a manifest, a queued task (or a reused result)
    uploads     photo and voice-sample checks and face searches, in bounded decode slots
    admission   queue choice, cost estimates, per-job and per-owner CPU limits
    downloads   job views with links, video/audio downloads, live stream files
    operations  readiness, metrics, start-up, retention sweep, backend catalogue
    lifecycle   the one place a job ends (status, manifest, files, webhook, metrics)

Below them: storage (files: local disk or object store), the four stores (job state,
idempotency keys, heartbeats, metrics) and the task queue. The web process never renders.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool

from facecast.config import Settings
from facecast.options import RenderOptions
from facecast.service.access import Principal
from facecast.service.admission import Admission
from facecast.service.downloads import Downloads
from facecast.service.errors import NotCancelableError
from facecast.service.intake import Intake
from facecast.service.lifecycle import Ending, Lifecycle, Outcome
from facecast.service.lookup import JobLookup
from facecast.service.metrics import Snapshot
from facecast.service.operations import Operations
from facecast.service.queueing import TaskQueue, webhook_sender
from facecast.service.schemas import (
    BackendList,
    FacesResult,
    JobDeleted,
    JobState,
    JobStatus,
    JobView,
    Readiness,
)
from facecast.service.storage import RemoteFile, Storage
from facecast.service.stores import Stores
from facecast.service.submission import AnimateSubmission, Submitted, TtsSubmission
from facecast.service.transitions import request_cancel
from facecast.service.uploads import Uploads
from facecast.service.watch import StateWatch

logger = logging.getLogger(__name__)

WAIT_POLL_S = 0.05


class JobService:
    """Create, inspect, cancel and clean up jobs: the parts above, behind one object."""

    def __init__(
        self, settings: Settings, storage: Storage, stores: Stores, queue: TaskQueue
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.stores = stores
        self.queue = queue
        self.lookup = JobLookup(storage, stores.jobs)
        self.lifecycle = Lifecycle(
            storage, stores.jobs, stores.metrics, webhook_sender(lambda: self.queue)
        )
        self.uploads = Uploads(settings, storage)
        self.admission = Admission(settings, storage, stores.jobs, stores.heartbeats)
        self.intake = Intake(
            settings,
            storage,
            stores,
            queue,
            (self.lookup, self.uploads, self.admission, self.lifecycle),
        )
        self.downloads = Downloads(settings, storage, self.lookup)
        self.operations = Operations(settings, storage, stores, queue)
        self.watcher = StateWatch(self.lookup.get_many, settings.stream_poll_seconds)

    # ------------------------------------------------------------------ submitting

    def submit_animate(self, submission: AnimateSubmission) -> Submitted:
        """POST /animate (see Intake)."""
        return self.intake.submit_animate(submission)

    def submit_tts(self, submission: TtsSubmission) -> Submitted:
        """POST /tts (see Intake)."""
        return self.intake.submit_tts(submission)

    def find_faces(self, upload: BinaryIO) -> FacesResult:
        """POST /faces (see Uploads)."""
        return self.uploads.find_faces(upload)

    def preview(self, upload: BinaryIO, options: RenderOptions) -> bytes:
        """POST /preview (see Uploads)."""
        return self.uploads.preview(upload, options)

    def cloning_available(self) -> bool:
        """True when a voice-cloning backend is installed here."""
        return self.uploads.cloning_available()

    def cpu_cost(self, job_id: str) -> tuple[float | None, float | None]:
        """A job's CPU seconds per second of video and wall seconds (see Admission)."""
        return self.admission.cpu_cost(job_id)

    # ------------------------------------------------------------------ reading

    def get(self, job_id: str, caller: Principal | None = None) -> JobState:
        """The job's state (see JobLookup.get)."""
        return self.lookup.get(job_id, caller)

    def view(self, state: JobState, base_url: str) -> JobView:
        """The client's view of a job (see Downloads)."""
        return self.downloads.view(state, base_url)

    def download(
        self,
        job_id: str,
        name: str,
        caller: Principal | None = None,
        sig: str | None = None,
        exp: int | None = None,
    ) -> Path | RemoteFile:
        """A finished job's video or audio (see Downloads)."""
        return self.downloads.download(job_id, name, caller, sig, exp)

    def stream_file(
        self,
        job_id: str,
        name: str,
        caller: Principal | None = None,
        sig: str | None = None,
        exp: int | None = None,
    ) -> Path | RemoteFile:
        """A file of the job's live stream (see Downloads)."""
        return self.downloads.stream_file(job_id, name, caller, sig, exp)

    async def wait(self, job_id: str, timeout: float) -> JobState:
        """The job's state once it is final, or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            state = await run_in_threadpool(self.get, job_id)
            if state.status.final or time.monotonic() >= deadline:
                return state
            await asyncio.sleep(WAIT_POLL_S)

    def watch(self, job_id: str, keepalive: float) -> AsyncIterator[JobState | None]:
        """Yield the state whenever it changes, until it is final; None every `keepalive` s idle.

        All followers in this process share one store read per `stream_poll_seconds`.
        """
        return self.watcher.follow(job_id, keepalive)

    # ------------------------------------------------------------------ changing

    def delete(self, job_id: str, caller: Principal | None = None) -> JobState | JobDeleted:
        """DELETE /jobs/{id}: cancel a queued or running job (its new state); erase a finished
        one with all its files and reuse entries (what was removed). A deleted job is unknown
        afterwards (404), like one that never existed."""
        state = self.get(job_id, caller)
        if not state.status.final:
            return self.cancel(job_id, caller)
        # Marked first: an Idempotency-Key retry from now on starts a new job.
        self.intake.keys.mark_deleted(job_id)
        removed, dropped = self.storage.erase(job_id)
        self.stores.jobs.forget(job_id)
        logger.info("job deleted: %d files", len(removed), extra={"job_id": job_id})
        return JobDeleted(
            job_id=job_id,
            status=state.status,
            removed_files=removed,
            removed_cache_entries=dropped,
        )

    def cancel(self, job_id: str, caller: Principal | None = None) -> JobState:
        """Cancel a queued job at once; flag a running one so its worker stops rendering.

        A flagged job is never started, so a queued one ends here (or, if a worker's delivery
        comes first, there): either way through the lifecycle, once.
        """
        state = self.get(job_id, caller)
        if state.status.final:
            raise NotCancelableError(f"Job {job_id} is already {state.status.value}.")
        flagged = self.stores.jobs.update(job_id, request_cancel())
        if (flagged or state).status is JobStatus.QUEUED:
            self.lifecycle.conclude(job_id, Outcome(Ending.CANCELED))
        logger.info("cancel requested", extra={"job_id": job_id})
        return self.get(job_id)

    # ------------------------------------------------------------------ operations

    def readiness(self) -> Readiness:
        """GET /ready (see Operations)."""
        return self.operations.readiness()

    def snapshot(self) -> Snapshot:
        """GET /metrics (see Operations)."""
        return self.operations.snapshot()

    def backends(self) -> BackendList:
        """GET /backends (see Operations)."""
        return self.operations.backends()

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove jobs past their retention (see Operations)."""
        return self.operations.sweep(now)

    def requeue_orphans(self) -> list[str]:
        """Queue again running jobs no live worker runs (see Operations)."""
        return self.operations.requeue_orphans()

    def warm_up(self) -> None:
        """Connect and load decoders before the first request (see Operations)."""
        self.operations.warm_up()

    def close(self) -> None:
        """Release connections and the face search helper."""
        self.queue.close()
        self.uploads.close()

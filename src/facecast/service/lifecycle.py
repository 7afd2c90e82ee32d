"""How a job ends: one place for every ending, and one mapping from exceptions to errors.

A job ends done, with an error, canceled, rejected (the photo screen refused it) or reused (an
identical earlier result answered it at once). Wherever that happens (a worker's run, the API's
cancel of a queued job, the API finding a result to reuse, a broker that refused the job),
`Lifecycle.conclude` does the same five things, once: sets the final status, writes the
manifest, settles the job's files (keeps the downloads only when done), queues the webhook and
counts the ending in `jobs_finished_total{kind,status}` (cog's runner.py
`PredictTask.succeeded/failed/canceled` is the model).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from facecast.errors import CanceledError, ErrorCode, FacecastError
from facecast.safety import ExplicitImageError
from facecast.service.metrics import MetricsStore, label
from facecast.service.schemas import ErrorInfo, JobManifest, JobResult, JobState, JobStatus
from facecast.service.state import JobStore
from facecast.service.storage import DISK_FULL, DOWNLOADS, Storage
from facecast.service.transitions import finish

logger = logging.getLogger(__name__)

STORAGE_ERRNOS = DISK_FULL | {errno.EACCES, errno.EROFS, errno.EPERM}
"""OS errors that mean the data directory, not the job, is at fault."""
FINISHED_METRIC = "jobs_finished_total"
NOTHING: frozenset[str] = frozenset()


def kept(status: JobStatus) -> frozenset[str]:
    """The outputs a job keeps once it has ended: all when done, none otherwise."""
    return DOWNLOADS if status is JobStatus.DONE else NOTHING


class Ending(StrEnum):
    """How a job ended (the `status` label of `jobs_finished_total`)."""

    DONE = "done"
    ERROR = "error"
    CANCELED = "canceled"
    REJECTED = "rejected"
    REUSED = "reused"

    @property
    def status(self) -> JobStatus:
        """The job's final status: a reused job is done."""
        return JobStatus.DONE if self is Ending.REUSED else JobStatus(self.value)


@dataclass(frozen=True)
class Outcome:
    """An ending and, unless the job is done or canceled, its error."""

    ending: Ending
    error: ErrorInfo | None = None


def storage_error(exc: OSError) -> ErrorInfo:
    """The error for a failed write to the data directory: full (`storage_full`) or not
    writable (`storage_unavailable`). The path and errno stay in the operator's log."""
    if exc.errno in DISK_FULL:
        return ErrorInfo(
            code=ErrorCode.STORAGE_FULL, message="The server's storage is full; try again later."
        )
    return ErrorInfo(
        code=ErrorCode.STORAGE_UNAVAILABLE,
        message="The server cannot store files right now; try again later.",
    )


def is_storage_failure(exc: BaseException) -> bool:
    """True for a full, read-only or forbidden data directory."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def outcome_of(exc: BaseException, time_limit: float = 0.0) -> Outcome:
    """The one mapping from what stopped a job to how it ends.

    CanceledError -> canceled; ExplicitImageError -> rejected; another FacecastError -> error
    with its own code (bad input); a time limit -> `timeout` (`time_limit`: the soft limit,
    for the message); a full or read-only disk ->
    `storage_full` / `storage_unavailable`; anything else (a bug) -> `internal_error`.
    """
    from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

    if isinstance(exc, CanceledError):
        return Outcome(Ending.CANCELED)
    if isinstance(exc, ExplicitImageError):
        return Outcome(Ending.REJECTED, ErrorInfo(code=exc.code, message=exc.message))
    if isinstance(exc, FacecastError):
        return Outcome(Ending.ERROR, ErrorInfo(code=exc.code, message=exc.message))
    if isinstance(exc, SoftTimeLimitExceeded):
        message = f"The job ran longer than {time_limit:g} s."
        return Outcome(Ending.ERROR, ErrorInfo(code=ErrorCode.TIMEOUT, message=message))
    if isinstance(exc, TimeLimitExceeded):
        message = "The job ran past the hard time limit and was stopped."
        return Outcome(Ending.ERROR, ErrorInfo(code=ErrorCode.TIMEOUT, message=message))
    if isinstance(exc, OSError) and is_storage_failure(exc):
        return Outcome(Ending.ERROR, storage_error(exc))
    message = "The job failed inside the service; try again later."
    return Outcome(Ending.ERROR, ErrorInfo(code=ErrorCode.INTERNAL_ERROR, message=message))


@dataclass(frozen=True)
class Ended:
    """What a finished run adds to its manifest (the worker's side)."""

    result: JobResult | None = None
    stages: Mapping[str, float] = field(default_factory=dict)
    remember: bool = False
    """Record the result in the reuse cache (a worker's own render)."""


class Lifecycle:
    """Ends jobs: the one place that makes a job final (see the module's docstring)."""

    def __init__(
        self,
        storage: Storage,
        jobs: JobStore,
        metrics: MetricsStore,
        notify: Callable[[str], None],
    ) -> None:
        self.storage = storage
        self.jobs = jobs
        self.metrics = metrics
        self.notify = notify
        """Queues the webhook task of a job."""

    def conclude(
        self,
        job_id: str,
        outcome: Outcome,
        manifest: JobManifest | None = None,
        ended: Ended = Ended(),
        reused_from: str | None = None,
    ) -> JobState | None:
        """End job `job_id` as `outcome` says; its final state, or None for a job that is gone.

        A job that is final already stays as it is (the first ending wins: a cancel and a
        finishing worker may race) and nothing else happens. A render that finished just as
        its cancel came is canceled. `manifest` is read from storage when not given.
        """
        ending, error = outcome.ending, outcome.error
        current = self.jobs.get(job_id)
        if current is None:
            return None
        if current.status.final:
            return current
        if ending is Ending.DONE and current.cancel_requested:
            ending, error = Ending.CANCELED, None  # honour the cancel
        if ending is Ending.DONE and ended.remember:
            self._remember(job_id, manifest)
        final = self.jobs.update(job_id, finish(ending.status, time.time(), error, reused_from))
        if final is None:  # another ending won the race
            return self.jobs.get(job_id)
        manifest = manifest if manifest is not None else self.storage.read_manifest(job_id)
        if manifest is not None:
            self._write_manifest(manifest, final, ended)
        self.storage.settle(job_id, kept(final.status))
        if manifest is not None and manifest.request.webhook:
            try:
                self.notify(job_id)
            except Exception:
                logger.exception("could not queue the webhook", extra={"job_id": job_id})
        try:
            self._count(final, ending, ended)
        except OSError:  # metrics on a full disk: the ending above is what matters
            logger.warning("could not count the job's ending", exc_info=True)
        code = error.code if error is not None else "ok"
        logger.info("job %s: %s", ending.value, code, extra={"job_id": job_id})
        return final

    def _remember(self, job_id: str, manifest: JobManifest | None) -> None:
        """Point the reuse cache at this job's result (an optimisation: failures are logged)."""
        if manifest is None or not manifest.cache_key:
            return
        try:
            self.storage.cache_put(manifest.cache_key, job_id)
        except OSError:
            logger.warning("could not record the result for reuse", exc_info=True)

    def _write_manifest(self, manifest: JobManifest, final: JobState, ended: Ended) -> None:
        update: dict[str, object] = {"state": final}
        if ended.result is not None:
            update["result"] = ended.result
        if ended.stages:
            update["stages"] = dict(ended.stages)
        try:
            self.storage.write_manifest(manifest.model_copy(update=update))
        except OSError:  # a full disk: the job store has the outcome already
            logger.warning("could not write the manifest", extra={"job_id": final.job_id})

    def _count(self, final: JobState, ending: Ending, ended: Ended) -> None:
        kind = final.kind.value
        for stage, seconds in ended.stages.items():
            self.metrics.observe("stage_duration_seconds", label(stage=stage), seconds)
        if final.started_at is not None and final.finished_at is not None:
            duration = final.finished_at - final.started_at
            self.metrics.observe("job_duration_seconds", label(kind=kind), duration)
        self.metrics.increment(FINISHED_METRIC, label(kind=kind, status=ending.value))

"""The worker's side of a job: mark it running, forward progress, watch for cancel, record the end.

`running_job(job_id)` wraps one task run. It turns the pipeline's exceptions into final states
(CanceledError -> canceled, ExplicitImageError -> rejected, other FacecastError -> error with its
code, time limit -> error `timeout`, a full or read-only disk -> error `storage_full` /
`storage_unavailable`, a bug -> error `internal_error`), so a Celery task stays a few lines that
call the pipeline. Every final state also queues the job's webhook, when it has one.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from facecast.config import Settings, get_settings
from facecast.errors import CanceledError, FacecastError
from facecast.safety import ExplicitImageError, NudityScreen, bundled_model
from facecast.service.logs import job_context
from facecast.service.queueing import TASK_WEBHOOK, WEBHOOK_QUEUE, TaskQueue
from facecast.service.schemas import (
    ErrorInfo,
    JobManifest,
    JobResult,
    JobState,
    JobStatus,
    WorkerInfo,
)
from facecast.service.state import (
    StateStore,
    advance,
    back_to_queue,
    finish,
    open_state_store,
    start_attempt,
)
from facecast.service.storage import AUDIO, DOWNLOADS, VIDEOS, Storage, open_storage

logger = logging.getLogger(__name__)

CANCEL_CHECK_S = 0.1
"""Least time between two looks at a job's cancel flag."""
HEARTBEAT_TTL_FACTOR = 3.0
"""A heartbeat is valid for this many heartbeat intervals."""
LABEL_VALUE = re.compile(r"[^a-z0-9_]+")
UNTIMED_STAGES = frozenset({"queued", "starting", "done"})
"""Stage names that mark a moment, not work worth a duration."""
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
STORAGE_ERRNOS = DISK_FULL | {errno.EACCES, errno.EROFS, errno.EPERM}
TIMEOUT = "timeout"
KEPT: dict[JobStatus, frozenset[str]] = {s: frozenset() for s in JobStatus} | {
    JobStatus.DONE: DOWNLOADS
}
"""Outputs a job keeps once it has ended: all when done, none otherwise."""


def storage_error(exc: OSError) -> ErrorInfo:
    """The job error for a failed write to the data directory."""
    if exc.errno in DISK_FULL:
        return ErrorInfo(
            code="storage_full", message="The server's storage is full; try again later."
        )
    # The path and errno stay in the operator's log, not in what clients see.
    return ErrorInfo(
        code="storage_unavailable", message="The server cannot store results; try again later."
    )


def label(**values: str) -> str:
    """A metric label set as `k=v,k=v` with values reduced to [a-z0-9_]."""
    return ",".join(f"{k}={LABEL_VALUE.sub('_', v.lower())}" for k, v in values.items())


@dataclass(frozen=True)
class WorkerContext:
    """What a worker process needs to run jobs (built once per process)."""

    settings: Settings
    storage: Storage
    store: StateStore
    screen: NudityScreen
    notify: Callable[[str], None] = lambda job_id: None
    """Queues the webhook of a job that just ended (set by the worker)."""


@lru_cache(maxsize=1)
def worker_context() -> WorkerContext:
    """This process's settings, storage, state store and photo screen."""
    settings = get_settings()
    storage = open_storage(settings)
    store = open_state_store(settings.redis_url, storage, state_ttl(settings))
    screen = NudityScreen(settings.nudity_model or bundled_model(), settings.nudity_threshold)
    return WorkerContext(settings, storage, store, screen, webhook_sender(settings, storage))


def webhook_sender(settings: Settings, storage: Storage) -> Callable[[str], None]:
    """A function that queues the webhook task of a job (its broker connection made on use)."""
    queues: list[TaskQueue] = []

    def send(job_id: str) -> None:
        if not queues:
            queues.append(TaskQueue(settings, storage))
        queues[0].send(TASK_WEBHOOK, job_id, WEBHOOK_QUEUE, task_id=f"{job_id}-webhook")

    return send


def state_ttl(settings: Settings) -> float:
    """How long the state store keeps a job: a while beyond its retention."""
    return settings.retention_hours * 3600 * 2 + 86400


class JobRun:
    """One job being executed: the inputs, and callbacks for the pipeline."""

    def __init__(self, context: WorkerContext, manifest: JobManifest, state: JobState) -> None:
        self.context = context
        self.manifest = manifest
        self.state = state
        self.result: JobResult | None = None
        self.final: JobState | None = None
        self.stages: dict[str, float] = {}
        self._stage = state.stage
        self._stage_started = time.monotonic()
        self._last_write = 0.0
        self._last_progress = state.progress
        self._last_cancel_check = 0.0
        self._cancel_seen = False

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.manifest.job_id

    @property
    def status(self) -> str:
        """The job's status: final once the run has ended."""
        return (self.final or self.state).status.value

    def file(self, name: str | None) -> Path | None:
        """A file of the job's request on this host (None stays None)."""
        return None if name is None else self.context.storage.local(self.job_id, name)

    @property
    def video_path(self) -> Path:
        """Where the rendered video goes."""
        return self.context.storage.path(self.job_id, VIDEOS[self.manifest.request.options.format])

    @property
    def audio_path(self) -> Path:
        """Where synthesised speech goes."""
        return self.context.storage.path(self.job_id, AUDIO)

    def progress(self, stage: str, fraction: float) -> None:
        """Pipeline progress callback; written at a stage change or after the interval."""
        now = time.monotonic()
        percent = int(min(max(fraction, 0.0), 1.0) * 100)
        if stage != self._stage:
            self._close_stage(now)
            self._stage, self._stage_started = stage, now
        else:
            too_soon = now - self._last_write < self.context.settings.progress_interval_seconds
            if too_soon or percent <= self._last_progress:
                return
        self._last_write, self._last_progress = now, percent
        self.context.store.update(self.job_id, advance(stage, percent))

    def canceled(self) -> bool:
        """Pipeline cancel callback: True once DELETE /jobs/{id} flagged the job (or it is gone)."""
        if self._cancel_seen:
            return True
        now = time.monotonic()
        if now - self._last_cancel_check >= CANCEL_CHECK_S:
            self._last_cancel_check = now
            state = self.context.store.get(self.job_id)
            self._cancel_seen = state is None or state.cancel_requested
        return self._cancel_seen

    def complete(self, result: JobResult) -> None:
        """Note what the job produced; `running_job` marks it done when the block ends."""
        self.result = result

    def _close_stage(self, now: float) -> None:
        if self._stage not in UNTIMED_STAGES:
            self.stages[self._stage] = self.stages.get(self._stage, 0.0) + now - self._stage_started

    def end(self, status: JobStatus, error: ErrorInfo | None = None) -> JobState:
        """Record the final state in the store, the manifest and the metrics."""
        store, storage = self.context.store, self.context.storage
        self._close_stage(time.monotonic())
        current = store.get(self.job_id)
        if status is JobStatus.DONE and current is not None and current.cancel_requested:
            status = JobStatus.CANCELED  # finished just as the cancel came: honour the cancel
            for artifact in (self.video_path, self.audio_path):
                artifact.unlink(missing_ok=True)
        if status is JobStatus.DONE and self.manifest.cache_key:
            try:
                storage.cache_put(self.manifest.cache_key, self.job_id)
            except OSError:  # reuse is an optimisation; the job itself is done
                logger.warning("could not record the result for reuse", exc_info=True)
        changed = store.update(self.job_id, finish(status, time.time(), error))
        final = changed or store.get(self.job_id)
        if final is None:
            return self.state
        self.final = final
        try:
            storage.write_manifest(
                self.manifest.model_copy(
                    update={"state": final, "result": self.result, "stages": self.stages}
                )
            )
        except OSError:  # a full disk: the state store still has the outcome
            logger.warning("could not write the manifest", exc_info=True)
        storage.settle(self.job_id, KEPT[final.status])
        if changed is not None and self.manifest.request.webhook:
            try:
                self.context.notify(self.job_id)
            except Exception:
                logger.exception("could not queue the webhook")
        try:
            self._record_metrics(final)
        except OSError:  # metrics on a full disk: the outcome above is what matters
            logger.warning("could not record the job's metrics", exc_info=True)
        logger.info("job %s: %s", final.status.value, error.code if error else "ok")
        return final

    def _record_metrics(self, final: JobState) -> None:
        store, kind = self.context.store, self.manifest.kind.value
        for stage, seconds in self.stages.items():
            store.observe("stage_duration_seconds", label(stage=stage), seconds)
        if final.started_at is not None and final.finished_at is not None:
            store.observe(
                "job_duration_seconds", label(kind=kind), final.finished_at - final.started_at
            )
        store.increment("jobs_finished_total", label(kind=kind, status=final.status.value))


def _begin(context: WorkerContext, job_id: str) -> JobRun | None:
    """Mark the job running; None when it must not run (canceled, final, too many attempts)."""
    manifest = context.storage.read_manifest(job_id)
    if manifest is None:
        logger.warning("job has no manifest; skipped")
        return None
    now = time.time()
    state = context.store.update(job_id, start_attempt(now, context.settings.job_max_attempts))
    if state is None:
        _settle_refused(context, manifest)
        return None
    if state.attempts > 1:
        logger.warning("job delivered again (attempt %d)", state.attempts)
    wait = now - manifest.created_at
    context.store.observe("queue_wait_seconds", label(kind=manifest.kind.value), max(wait, 0.0))
    logger.info("job started after %.2f s in the queue", wait)
    return JobRun(context, manifest, state)


def _settle_refused(context: WorkerContext, manifest: JobManifest) -> None:
    """A delivery that must not run: record why, unless the job has ended already."""
    current = context.store.get(manifest.job_id)
    if current is None or current.status.final:
        logger.info("job not run: %s", current.status.value if current else "unknown")
        return
    run = JobRun(context, manifest, current)
    if current.cancel_requested:
        run.end(JobStatus.CANCELED)
    else:  # redelivered after its worker died too often
        message = "The job stopped its worker more than once; it was given up."
        run.end(JobStatus.ERROR, ErrorInfo(code="worker_lost", message=message))


@contextmanager
def running_job(job_id: str) -> Iterator[JobRun | None]:
    """Run the block as job `job_id`; yields None when the job must not run."""
    context = worker_context()
    with job_context(job_id):
        run = _begin(context, job_id)
        if run is None:
            yield None
            return
        try:
            yield run
        except CanceledError:
            run.end(JobStatus.CANCELED)
        except ExplicitImageError as exc:
            run.end(JobStatus.REJECTED, ErrorInfo(code=exc.code, message=exc.message))
        except FacecastError as exc:
            logger.warning("job refused: %s (%s)", exc.code, exc.message)
            run.end(JobStatus.ERROR, ErrorInfo(code=exc.code, message=exc.message))
        except SoftTimeLimitExceeded:
            limit = context.settings.job_soft_time_limit
            run.end(
                JobStatus.ERROR,
                ErrorInfo(code=TIMEOUT, message=f"The job ran longer than {limit} s."),
            )
        except Exception as exc:
            logger.exception("job failed")
            if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
                run.end(JobStatus.ERROR, storage_error(exc))
            else:
                message = "The job failed inside the service; try again later."
                run.end(JobStatus.ERROR, ErrorInfo(code="internal_error", message=message))
        else:
            run.end(JobStatus.DONE)
        finally:
            context.storage.drop_local(job_id)  # with a shared store, this host keeps no copy


def requeue_lost_job(job_id: str) -> None:
    """Show a job whose worker process died as `queued` again: its message goes back to the
    queue (acks_late) and the next delivery runs it as its next attempt."""
    context = worker_context()
    with job_context(job_id):
        if context.store.update(job_id, back_to_queue()) is not None:
            logger.warning("worker process lost; job back in the queue")


def fail_lost_job(job_id: str, code: str, message: str) -> None:
    """Mark a job failed from outside its run (the hard time limit killed its process)."""
    context = worker_context()
    with job_context(job_id):
        manifest = context.storage.read_manifest(job_id)
        state = context.store.get(job_id)
        if manifest is not None and state is not None and not state.status.final:
            JobRun(context, manifest, state).end(
                JobStatus.ERROR, ErrorInfo(code=code, message=message)
            )


class Heartbeat:
    """A daemon thread that tells the state store this worker process is alive (and warmed up)."""

    def __init__(self, context: WorkerContext, queues: list[str]) -> None:
        self.context = context
        self.warmed = threading.Event()
        self._stop = threading.Event()
        from facecast.backends import gpu_class_here, offered_here

        hostname = socket.gethostname()
        self.info = WorkerInfo(
            worker_id=f"{hostname}-{os.getpid()}",
            hostname=hostname,
            pid=os.getpid(),
            queues=queues,
            backends=offered_here(),
            gpu_backends=gpu_class_here(),
        )
        self._thread = threading.Thread(target=self._run, name="facecast-heartbeat", daemon=True)

    def start(self) -> None:
        """Begin beating."""
        self._thread.start()

    def beat(self) -> None:
        """Write one heartbeat now."""
        interval = self.context.settings.worker_heartbeat_seconds
        from facecast.rates import host_rates

        rates = {key: asdict(rate) for key, rate in host_rates().as_dict().items()}
        update = {"warmed": self.warmed.is_set(), "seen_at": time.time(), "rates": rates}
        info = self.info.model_copy(update=update)
        self.context.store.heartbeat(info, interval * HEARTBEAT_TTL_FACTOR)

    def _run(self) -> None:
        interval = self.context.settings.worker_heartbeat_seconds
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:
                logger.warning("heartbeat failed", exc_info=True)
            self._stop.wait(interval)

    def stop(self) -> None:
        """Stop beating and withdraw the heartbeat."""
        self._stop.set()
        try:
            self.context.store.drop_worker(self.info.worker_id)
        except Exception:
            logger.warning("could not withdraw the heartbeat", exc_info=True)

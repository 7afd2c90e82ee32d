"""The worker's side of a job: mark it running, forward progress, watch for cancel, end it.

`running_job(job_id)` wraps one task run. Whatever stops the block is turned into the job's
ending by `lifecycle.outcome_of` and recorded by `Lifecycle.conclude` (status, manifest, files,
webhook, metrics), so a Celery task stays a few lines that call the pipeline.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from facecast.config import Settings, get_settings
from facecast.errors import CanceledError, ErrorCode
from facecast.safety import NudityScreen, bundled_model
from facecast.service.dependencies import is_dependency_failure
from facecast.service.lifecycle import Ended, Ending, Lifecycle, Outcome, outcome_of
from facecast.service.logs import job_context
from facecast.service.metrics import label
from facecast.service.queueing import TaskQueue, webhook_sender
from facecast.service.schemas import (
    ErrorInfo,
    JobManifest,
    JobResult,
    JobState,
    WorkerInfo,
)
from facecast.service.storage import AUDIO, VIDEOS, Storage, open_storage
from facecast.service.stores import Stores, stores_for
from facecast.service.transitions import advance, back_to_queue, start_attempt

logger = logging.getLogger(__name__)

CANCEL_CHECK_S = 0.1
"""Least time between two looks at a job's cancel flag."""
HEARTBEAT_TTL_FACTOR = 3.0
"""A heartbeat is valid for this many heartbeat intervals."""
UNTIMED_STAGES = frozenset({"queued", "starting", "done"})
"""Stage names that mark a moment, not work worth a duration."""
PUBLISH_FIRST_WAIT_S = 1.0
PUBLISH_MAX_WAIT_S = 15.0
"""Waits between tries of an upload to a store that is down: doubling, up to this."""
PUBLISHING = "publishing"


@dataclass(frozen=True)
class WorkerContext:
    """What a worker process needs to run jobs (built once per process)."""

    settings: Settings
    storage: Storage
    stores: Stores
    screen: NudityScreen
    notify: Callable[[str], None] = lambda job_id: None
    """Queues the webhook of a job that just ended (set by the worker)."""
    running: set[str] = field(default_factory=set)
    """The jobs this process runs; its heartbeat lists them (Operations.requeue_orphans)."""

    @property
    def lifecycle(self) -> Lifecycle:
        """Ends this process's jobs."""
        stores = self.stores
        return Lifecycle(self.storage, stores.jobs, stores.metrics, self.notify)


@lru_cache(maxsize=1)
def worker_context() -> WorkerContext:
    """This process's settings, storage, stores and photo screen."""
    settings = get_settings()
    storage = open_storage(settings)
    stores = stores_for(settings, storage)
    screen = NudityScreen(settings.nudity_model or bundled_model(), settings.nudity_threshold)
    queues: list[TaskQueue] = []

    def queue() -> TaskQueue:  # the broker connection is made on first use
        if not queues:
            queues.append(TaskQueue(settings, storage))
        return queues[0]

    return WorkerContext(settings, storage, stores, screen, webhook_sender(queue))


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
        try:
            self.context.stores.jobs.update(self.job_id, advance(stage, percent))
        except Exception as exc:  # progress is a courtesy: a Redis blip must not stop a render
            if not is_dependency_failure(exc):
                raise
            logger.warning("could not record progress: %s", exc)

    def canceled(self) -> bool:
        """Pipeline cancel callback: True once DELETE /jobs/{id} flagged the job (or it is gone)."""
        if self._cancel_seen:
            return True
        now = time.monotonic()
        if now - self._last_cancel_check >= CANCEL_CHECK_S:
            self._last_cancel_check = now
            try:
                state = self.context.stores.jobs.get(self.job_id)
            except Exception as exc:  # the store is down: keep going, look again later
                if not is_dependency_failure(exc):
                    raise
                return False
            self._cancel_seen = state is None or state.cancel_requested
        return self._cancel_seen

    def publish(self, name: str) -> None:
        """Make a finished output visible to every host (see `until_stored`)."""
        self.until_stored(lambda: self.context.storage.publish(self.job_id, name), name)

    def until_stored(self, store: Callable[[], None], what: str) -> None:
        """Run `store` (an upload) until the store takes it. A store that is down is tried
        again, waiting longer each time, for as long as the job may run: a finished render is
        kept (not thrown away) while the store comes back; a cancel or the time limit ends it."""
        wait = PUBLISH_FIRST_WAIT_S
        while True:
            try:
                store()
                return
            except Exception as exc:
                if not is_dependency_failure(exc):
                    raise
                logger.warning("could not store %s (%s); trying again in %.0f s", what, exc, wait)
            self.progress(PUBLISHING, self._last_progress / 100)
            if self.canceled():
                raise CanceledError("The job was canceled.")
            time.sleep(wait)
            wait = min(wait * 2, PUBLISH_MAX_WAIT_S)

    def complete(self, result: JobResult) -> None:
        """Note what the job produced; `running_job` ends it done when the block ends."""
        self.result = result

    def _close_stage(self, now: float) -> None:
        if self._stage not in UNTIMED_STAGES:
            self.stages[self._stage] = self.stages.get(self._stage, 0.0) + now - self._stage_started

    def end(self, outcome: Outcome) -> JobState:
        """End the job (see Lifecycle.conclude) with what this run measured and produced."""
        self._close_stage(time.monotonic())
        ended = Ended(self.result, self.stages, remember=True)
        final = self.context.lifecycle.conclude(self.job_id, outcome, self.manifest, ended)
        self.final = final
        return final or self.state


def _begin(context: WorkerContext, job_id: str) -> JobRun | None:
    """Mark the job running; None when it must not run (canceled, final, too many attempts)."""
    manifest = context.storage.read_manifest(job_id)
    if manifest is None:
        logger.warning("job has no manifest; skipped")
        return None
    now = time.time()
    attempt = start_attempt(now, context.settings.job_max_attempts)
    state = context.stores.jobs.update(job_id, attempt)
    if state is None:
        _settle_refused(context, manifest)
        return None
    if state.attempts > 1:
        logger.warning("job delivered again (attempt %d)", state.attempts)
    wait = now - manifest.created_at
    kind = label(kind=manifest.kind.value)
    context.stores.metrics.observe("queue_wait_seconds", kind, max(wait, 0.0))
    logger.info("job started after %.2f s in the queue", wait)
    return JobRun(context, manifest, state)


def _settle_refused(context: WorkerContext, manifest: JobManifest) -> None:
    """A delivery that must not run: record why, unless the job has ended already."""
    current = context.stores.jobs.get(manifest.job_id)
    if current is None or current.status.final:
        logger.info("job not run: %s", current.status.value if current else "unknown")
        return
    run = JobRun(context, manifest, current)
    if current.cancel_requested:
        run.end(Outcome(Ending.CANCELED))
    else:  # redelivered after its worker died too often
        message = "The job stopped its worker more than once; it was given up."
        run.end(Outcome(Ending.ERROR, ErrorInfo(code=ErrorCode.WORKER_LOST, message=message)))


@contextmanager
def running_job(job_id: str) -> Iterator[JobRun | None]:
    """Run the block as job `job_id`; yields None when the job must not run."""
    context = worker_context()
    with job_context(job_id):
        run = _begin(context, job_id)
        if run is None:
            yield None
            return
        context.running.add(job_id)
        try:
            yield run
        except Exception as exc:
            outcome = outcome_of(exc, context.settings.job_soft_time_limit)
            if outcome.error is not None and outcome.error.code is ErrorCode.INTERNAL_ERROR:
                logger.exception("job failed")
            elif outcome.error is not None:
                logger.warning("job refused: %s (%s)", outcome.error.code, outcome.error.message)
            run.end(outcome)
        else:
            run.end(Outcome(Ending.DONE))
        finally:
            context.running.discard(job_id)
            context.storage.drop_local(job_id)  # with a shared store, this host keeps no copy


def requeue_lost_job(job_id: str) -> None:
    """Show a job whose worker process died as `queued` again: its message goes back to the
    queue (acks_late) and the next delivery runs it as its next attempt."""
    context = worker_context()
    with job_context(job_id):
        if context.stores.jobs.update(job_id, back_to_queue()) is not None:
            logger.warning("worker process lost; job back in the queue")


def fail_lost_job(job_id: str, exc: BaseException) -> None:
    """End a job from outside its run (the hard time limit killed its process)."""
    context = worker_context()
    with job_context(job_id):
        outcome = outcome_of(exc, context.settings.job_time_limit)
        context.lifecycle.conclude(job_id, outcome)


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
        update = {
            "warmed": self.warmed.is_set(),
            "seen_at": time.time(),
            "rates": rates,
            "jobs": sorted(self.context.running),
        }
        info = self.info.model_copy(update=update)
        self.context.stores.heartbeats.heartbeat(info, interval * HEARTBEAT_TTL_FACTOR)

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
            self.context.stores.heartbeats.drop_worker(self.info.worker_id)
        except Exception:
            logger.warning("could not withdraw the heartbeat", exc_info=True)

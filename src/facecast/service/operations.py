"""Running the service: readiness, metrics, start-up, retention and the backend catalogue."""

from __future__ import annotations

import logging
import time

from facecast.config import Settings
from facecast.service.inputs import warm_up_image_decoding
from facecast.service.metrics import Snapshot
from facecast.service.objectstore import MissingBucketError
from facecast.service.queueing import (
    QUEUES,
    TASK_ANIMATE,
    TASK_TTS,
    TaskQueue,
    prune_broker_files,
)
from facecast.service.schemas import (
    BackendList,
    BackendView,
    Check,
    JobKind,
    JobStatus,
    Readiness,
)
from facecast.service.storage import Storage
from facecast.service.stores import Stores
from facecast.service.transitions import back_to_queue

logger = logging.getLogger(__name__)

WARM_CONNECTIONS = 8
"""Job-store connections opened at start-up: enough for a burst of concurrent requests."""
ORPHAN_GRACE_BEATS = 4
"""Heartbeat intervals a running job may go unlisted by every live worker before it is queued
again (first the worker's own recovery, a pool process replaced, has its turn)."""
ORPHAN_MIN_GRACE_S = 30.0
"""At least this long: a worker starved of CPU (renders run at idle priority beside a busy
host) misses heartbeats without being gone, and its job must not run twice."""
TASKS = {JobKind.ANIMATE: TASK_ANIMATE, JobKind.TTS: TASK_TTS}


class Operations:
    """What operators and the app's lifespan ask of the service."""

    def __init__(
        self, settings: Settings, storage: Storage, stores: Stores, queue: TaskQueue
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.stores = stores
        self.queue = queue
        self._unlisted: dict[str, float] = {}
        """Running jobs no live worker listed, and since when (this process's view)."""

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove jobs older than the retention; returns their ids."""
        now = time.time() if now is None else now
        removed = self.storage.expired(now, self.settings.retention_hours * 3600)
        for job_id in removed:
            self.stores.jobs.forget(job_id)
            self.storage.remove(job_id)
        self.storage.prune_cache()
        prune_broker_files(self.storage, now)
        if removed:
            logger.info("retention removed %d jobs", len(removed))
        return removed

    def requeue_orphans(self, now: float | None = None) -> list[str]:
        """Queue again the running jobs that no live worker runs; their ids.

        A job's message can be lost while it runs (the broker restarted, its whole worker was
        killed): Celery would hand it out again only after the visibility timeout, half an hour
        or more, and until then the job shows `running`. Every worker process lists its jobs in
        its heartbeat, so a job that has run for a few heartbeats without being listed by any
        live worker, for a few heartbeats in a row, is orphaned: it goes back to `queued` (once,
        atomically, whichever API process sees it first) and its task is sent again. A late
        redelivery of the old message finds the job finished, or runs it as its next attempt.
        """
        now = time.time() if now is None else now
        grace = max(self.settings.worker_heartbeat_seconds * ORPHAN_GRACE_BEATS, ORPHAN_MIN_GRACE_S)
        jobs = self.stores.jobs
        running = jobs.ids_with(JobStatus.RUNNING)
        listed = {job_id for worker in self.stores.heartbeats.workers() for job_id in worker.jobs}
        unlisted = {job_id: self._unlisted.get(job_id, now) for job_id in running}
        self._unlisted = {job_id: t for job_id, t in unlisted.items() if job_id not in listed}
        requeued = []
        for job_id, state in zip(running, jobs.get_many(running), strict=True):
            since = self._unlisted.get(job_id)
            # A flagged job goes back too: its redelivery ends it canceled.
            if since is None or now - since < grace or state is None:
                continue
            manifest = self.storage.read_manifest(job_id)
            if manifest is None or jobs.update(job_id, back_to_queue(state.started_at)) is None:
                continue
            logger.warning(
                "job orphaned (no worker runs it); queued again", extra={"job_id": job_id}
            )
            self.queue.send(TASKS[manifest.kind], job_id, manifest.queue)
            requeued.append(job_id)
        return requeued

    def readiness(self) -> Readiness:
        """Broker reachable, a worker alive, its engine warmed up."""
        checks: dict[str, Check] = {}
        try:
            self.queue.ping()
            self.stores.jobs.ping()
            checks["broker"] = Check(ok=True, detail="reachable")
        except Exception:
            # The reason (addresses, errors) goes to the operator's log, not to any caller.
            logger.warning("broker or state store unreachable", exc_info=True)
            checks["broker"] = Check(ok=False, detail="unreachable")
        try:
            workers = self.stores.heartbeats.workers()
        except Exception:
            logger.warning("state store unreachable", exc_info=True)
            workers = []
            checks["broker"] = Check(ok=False, detail="unreachable")
        try:
            self.storage.check()
            checks["storage"] = Check(ok=True, detail="reachable")
        except Exception:
            logger.warning("storage unreachable", exc_info=True)
            checks["storage"] = Check(ok=False, detail="unreachable")
        warmed = [w for w in workers if w.warmed]
        checks["workers"] = Check(
            ok=bool(workers), detail=f"{len(workers)} worker process(es) alive"
        )
        checks["engine"] = Check(
            ok=bool(warmed), detail=f"{len(warmed)} worker process(es) warmed up"
        )
        return Readiness(ready=all(check.ok for check in checks.values()), checks=checks)

    def snapshot(self) -> Snapshot:
        """The numbers GET /metrics shows."""
        workers = self.stores.heartbeats.workers()
        return Snapshot(
            jobs=self.stores.jobs.count_by_status(),
            queue_depth={queue: self.queue.depth(queue) for queue in QUEUES},
            workers_alive=len(workers),
            workers_warmed=sum(1 for worker in workers if worker.warmed),
            histograms=self.stores.metrics.histograms(),
            counters=self.stores.metrics.counters(),
        )

    def warm_up(self) -> None:
        """Connect to the store and broker and load decoders before the first request.

        Best effort: an unreachable broker is logged here and reported by /ready.
        """
        warm_up_image_decoding()
        try:
            self.storage.check()
        except MissingBucketError:
            raise  # a configuration error: the API must not start
        except Exception as exc:
            logger.warning("storage not reachable at start-up: %s", exc)
        try:
            self.stores.jobs.warm_up(WARM_CONNECTIONS)
            self.queue.warm_up()
        except Exception as exc:
            logger.warning("broker or state store not reachable at start-up: %s", exc)

    def backends(self) -> BackendList:
        """The backend catalogue, with what live workers offer."""
        from facecast.backends import catalogue

        try:
            workers = self.stores.heartbeats.workers()
        except Exception:
            logger.warning("cannot read worker heartbeats", exc_info=True)
            workers = []
        offered = {name for w in workers for name in w.backends}
        views = [
            BackendView.model_validate(entry.fields() | {"offered": entry.name in offered})
            for entry in catalogue()
        ]
        return BackendList(backends=views)

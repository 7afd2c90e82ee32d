"""Admission: which queue a job goes to, and whether it may go at all.

A job whose backends no live worker offers is refused (400); so is one above the per-job CPU
limit (`job_too_costly`), and one that its owner's budget of queued and running CPU-seconds
cannot take (429 `cpu_budget_exceeded`, with Retry-After). The estimates come from facecast.cost
and the render rates the workers report in their heartbeats.
"""

from __future__ import annotations

import logging
import math
import threading

from facecast.config import Settings
from facecast.cost import JobCost, job_cost
from facecast.errors import FacecastError
from facecast.options import RenderOptions
from facecast.service.access import ANONYMOUS
from facecast.service.errors import CpuBudgetExceededError, JobTooCostlyError
from facecast.service.heartbeats import HeartbeatStore
from facecast.service.inputs import check_audio
from facecast.service.schemas import JobKind, JobManifest, JobRequest
from facecast.service.state import JobStore
from facecast.service.storage import Storage
from facecast.speech import script

logger = logging.getLogger(__name__)

MAX_BUDGET_RETRY_S = 300
"""Longest Retry-After a refused job is told (the budget drains at about 2 CPU-s a second)."""


class Admission:
    """Queue choice, cost estimates and the per-owner CPU budget of this API process."""

    def __init__(
        self, settings: Settings, storage: Storage, jobs: JobStore, heartbeats: HeartbeatStore
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.jobs = jobs
        self.heartbeats = heartbeats
        # Estimated CPU-seconds of each owner's unfinished jobs, by job id (this API process's
        # submissions; entries leave once their job is final or gone).
        self._ledger: dict[str, dict[str, float]] = {}
        self._ledger_lock = threading.Lock()

    def check_backends(self, request: JobRequest) -> str:
        """400 unless the job's backends can run on some live worker; the queue it goes to.

        The default engine runs on every worker. For anything else, the workers' heartbeats
        say which backends they offer on which queue; before any worker has reported, this
        server's own installation stands in.
        """
        from facecast.backends import GPU_QUEUE, check_options, queue_for, wanted

        options = request.options
        default = self.settings.animate_queue
        if options.renderer == RenderOptions().renderer and not (options.refine or options.upscale):
            return default  # the default engine runs on every worker
        try:
            workers = [w for w in self.heartbeats.workers() if w.backends]
        except Exception:
            logger.warning("cannot read worker heartbeats", exc_info=True)
            workers = []
        if not workers:
            check_options(options)
            return queue_for(options, default)
        everything = {name for w in workers for name in w.backends}
        check_options(options, everything)
        queue = (
            GPU_QUEUE
            if any(name in w.gpu_backends for w in workers for _, name in wanted(options))
            else default
        )
        able = {name for w in workers if queue in w.queues for name in w.backends}
        check_options(options, able)
        return queue

    def cpu_cost(self, job_id: str) -> tuple[float | None, float | None]:
        """CPU seconds per second of video and wall seconds for the whole job (from the
        upload's declared length, or the text's typical spoken length), from the rates the
        live workers measured (their heartbeats), else the backends' declared cost;
        (None, None) when nothing is known."""
        from facecast.backends import job_estimate
        from facecast.rates import Rate, rate_key

        manifest = self.storage.read_manifest(job_id)
        if manifest is None:
            return None, None
        request = manifest.request
        key = rate_key(request.options)
        try:
            reported = [w.rates[key] for w in self.heartbeats.workers() if key in w.rates]
        except Exception:  # the estimate is a courtesy: no store, no measured rate
            logger.warning("cannot read worker heartbeats", exc_info=True)
            reported = []
        measured: dict[str, Rate] = {}
        if reported:
            # Workers on different machines differ: the slowest is the honest promise.
            slowest = max(reported, key=lambda r: r.get("wall_per_frame", 0.0))
            try:
                measured = {key: Rate(**slowest)}
            except TypeError:  # a worker of another version
                measured = {}
        seconds: float | None = None
        if request.audio is not None:
            try:
                seconds = check_audio(
                    self.storage.path(job_id, request.audio), self.settings.max_audio_seconds
                )
            except FacecastError:
                seconds = None
        elif request.text:
            options = request.options
            seconds = (
                script.typical_seconds(script.prepare(request.text, options.lang, options.lexicon))
                / options.rate
            )
        cost = job_estimate(request.options, seconds, measured)
        if cost is None:
            return None, None
        total = None if cost.seconds is None else round(cost.seconds, 1)
        return round(cost.cpu_per_video_second, 2), total

    def estimate(self, job_id: str, kind: JobKind, request: JobRequest) -> JobCost:
        """The job's length and CPU cost (facecast.cost), from what it will do."""
        seconds: float | None = None
        if request.audio is not None:
            try:
                seconds = check_audio(
                    self.storage.path(job_id, request.audio), self.settings.max_audio_seconds
                )
            except (FacecastError, OSError):
                seconds = None
            if seconds is None:  # a length the file does not state: the cap bounds it
                seconds = self.settings.max_audio_seconds
        elif request.text:
            options = request.options
            seconds = script.typical_seconds(
                script.prepare(request.text, options.lang, options.lexicon)
            )
        return job_cost(
            request.options,
            seconds or 0.0,
            renders=kind is JobKind.ANIMATE,
            speaks=request.audio is None,
        )

    def admit(self, manifest: JobManifest) -> None:
        """Refuse a job above the per-job CPU limit (400), or one its owner's budget of queued
        and running CPU-seconds cannot take (429 with Retry-After); else book it."""
        cost = self.estimate(manifest.job_id, manifest.kind, manifest.request).cpu_seconds
        limit = self.settings.max_job_cpu_seconds
        if cost > limit:
            raise JobTooCostlyError(
                f"This job would take about {cost:,.0f} CPU-seconds; the limit is {limit:,.0f}. "
                "Send shorter speech, a smaller size or no upscaling."
            )
        owner = manifest.state.owner or ANONYMOUS
        budget = self.settings.key_cpu_budget_seconds
        with self._ledger_lock:
            booked = self._ledger.setdefault(owner, {})
            ids = list(booked)
            for job_id, state in zip(ids, self.jobs.get_many(ids), strict=True):
                if state is None or state.status.final:
                    del booked[job_id]
            in_use = sum(booked.values())
            if in_use + cost > budget:
                wait = min(MAX_BUDGET_RETRY_S, max(1, math.ceil((in_use + cost - budget) / 2)))
                raise CpuBudgetExceededError(
                    f"Your queued and running jobs already take about {in_use:,.0f} of your "
                    f"{budget:,.0f} CPU-seconds; this one needs {cost:,.0f}. Retry when some "
                    "have finished.",
                    retry_after=wait,
                )
            booked[manifest.job_id] = cost

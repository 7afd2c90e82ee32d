"""The job service: what the routes call. Create jobs, look them up, cancel, wait, watch, sweep.

It stores uploads and manifests (storage), keeps live state (state store) and hands work to
Celery (task queue). It never renders anything itself; the web process stays light.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool

from facecast import __version__
from facecast.config import Settings
from facecast.errors import BackendUnavailableError
from facecast.service import webhooks
from facecast.service.access import (
    ANONYMOUS,
    Principal,
    download_path,
    keys_configured,
    link_is_valid,
)
from facecast.service.errors import (
    AudioNotReadyError,
    ConsentRequiredError,
    InvalidRequestError,
    JobNotFoundError,
    NotCancelableError,
    ServiceError,
    StorageFullError,
    StorageUnavailableError,
)
from facecast.service.inputs import (
    audio_file_name,
    check_audio,
    check_image,
    clean_text,
    even,
    warm_up_image_decoding,
)
from facecast.service.metrics import Snapshot
from facecast.service.queueing import QUEUES, TASK_ANIMATE, TASK_TTS, TASK_WEBHOOK, TaskQueue
from facecast.service.schemas import (
    Check,
    ErrorInfo,
    JobKind,
    JobManifest,
    JobRequest,
    JobState,
    JobStatus,
    JobView,
    Readiness,
    iso,
)
from facecast.service.state import Mutation, StateStore, finish, request_cancel
from facecast.service.storage import (
    AUDIO,
    DISK_FULL,
    DOWNLOADS,
    VIDEO,
    Storage,
    content_key,
    is_job_id,
)
from facecast.service.watch import StateWatch

logger = logging.getLogger(__name__)

IMAGE_UPLOAD = "source_upload"
VOICE_SAMPLE = "voice_sample.wav"
CLONE_BACKEND = "xtts"
DEFAULT_BACKEND = "espeak"
WAIT_POLL_S = 0.05
STORAGE_ERRNOS = DISK_FULL | {errno.EACCES, errno.EROFS, errno.EPERM}
NONE: frozenset[str] = frozenset()
WARM_CONNECTIONS = 8
"""State-store connections opened at start-up: enough for a burst of concurrent requests."""


def storage_failure(exc: OSError) -> ServiceError:
    """The API error for a data directory that is full (507) or not writable (503)."""
    if exc.errno in DISK_FULL:
        return StorageFullError("The server's storage is full; try again later.")
    return StorageUnavailableError("The server cannot store uploads right now; try again later.")


def idempotency_scope(principal: str, route: str, key: str | None) -> str | None:
    """The stored form of an Idempotency-Key: per caller and route, hashed."""
    return None if key is None else content_key("idempotency", principal, route, key)


ANONYMOUS_CALLER = Principal(ANONYMOUS)


def done_by_reuse(state: JobState, earlier: JobManifest, owner: str) -> JobState:
    """`state` finished at once with the result of `earlier`; it names the earlier job only
    when that job is the same tenant's (another tenant's job id would leak)."""
    now = time.time()
    same = (earlier.state.owner or ANONYMOUS) == owner
    return state.model_copy(
        update={
            "status": JobStatus.DONE,
            "progress": 100,
            "stage": JobStatus.DONE.value,
            "finished_at": now,
            "reused_from": earlier.job_id if same else None,
        }
    )


@dataclass(frozen=True)
class AnimateSubmission:
    """A parsed POST /animate: streams for the uploads, plain values for the rest."""

    image: BinaryIO
    consent: bool
    audio: BinaryIO | None = None
    audio_filename: str | None = None
    audio_id: str | None = None
    text: str | None = None
    lang: str | None = None
    voice: str | None = None
    fps: int | None = None
    size: int | None = None
    full_frame: bool = False
    webhook: str | None = None
    client_ref: str | None = None
    idempotency: str | None = None
    """The scoped Idempotency-Key (see `idempotency_scope`)."""
    owner: Principal = ANONYMOUS_CALLER
    """The caller: the job's owner, and whose TTS audio it may use."""


@dataclass(frozen=True)
class TtsSubmission:
    """A parsed POST /tts."""

    text: str
    lang: str | None = None
    voice: str | None = None
    voice_sample: BinaryIO | None = None
    webhook: str | None = None
    client_ref: str | None = None
    idempotency: str | None = None
    owner: Principal = ANONYMOUS_CALLER


@dataclass(frozen=True)
class Submitted:
    """A job the service accepted, and whether an earlier result answered it at once."""

    state: JobState
    reused: bool = False


class JobService:
    """Create, inspect, cancel and clean up jobs."""

    def __init__(
        self, settings: Settings, storage: Storage, store: StateStore, queue: TaskQueue
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.store = store
        self.queue = queue
        self.watcher = StateWatch(self.get_many, settings.stream_poll_seconds)

    # ------------------------------------------------------------------ creating

    def submit_animate(self, submission: AnimateSubmission) -> Submitted:
        """Store the inputs and queue a render, or answer from an identical earlier render."""
        if not submission.consent:
            raise ConsentRequiredError(
                "Set consent=true to confirm that the person in the photo agreed to be animated."
            )
        sources = [
            submission.audio is not None,
            submission.audio_id is not None,
            submission.text is not None,
        ]
        if sum(sources) != 1:
            raise InvalidRequestError("Send exactly one of: audio (a file), audio_id, or text.")
        text = (
            None
            if submission.text is None
            else clean_text(submission.text, self.settings.max_text_chars)
        )
        if submission.webhook is not None:
            webhooks.check_url(submission.webhook, self.settings)
        return self._create(
            lambda job_id: self._create_animate(job_id, submission, text),
            submission.idempotency,
            JobKind.ANIMATE,
        )

    def _create(
        self, build: Callable[[str], Submitted], idempotency: str | None, kind: JobKind
    ) -> Submitted:
        """A new job directory filled by `build`; removed again when that fails.

        With an idempotency key the first request binds it to its job; a retry gets that job.
        """
        try:
            job_id = self.storage.new_job()
        except OSError as exc:
            raise storage_failure(exc) from exc
        if idempotency is not None:
            bound = self.store.claim(idempotency, job_id, self.settings.idempotency_hours * 3600)
            if bound != job_id:
                self.storage.remove(job_id)
                return Submitted(self._state_or_queued(bound, kind))
        try:
            submitted = build(job_id)
        except BaseException as exc:
            self.storage.remove(job_id)
            if idempotency is not None:
                self.store.release(idempotency, job_id)
            if isinstance(exc, OSError) and exc.errno is not None:
                raise storage_failure(exc) from exc
            raise
        if idempotency is not None and submitted.state.job_id != job_id:  # answered by reuse
            self.store.release(idempotency, job_id)
            self.store.claim(
                idempotency, submitted.state.job_id, self.settings.idempotency_hours * 3600
            )
        return submitted

    def _state_or_queued(self, job_id: str, kind: JobKind) -> JobState:
        """A job bound to an idempotency key; `queued` while its first request still uploads."""
        try:
            return self.get(job_id)
        except JobNotFoundError:
            return JobState(job_id=job_id, kind=kind, created_at=time.time())

    def _create_animate(
        self, job_id: str, submission: AnimateSubmission, text: str | None
    ) -> Submitted:
        settings = self.settings
        upload = self.storage.save_stream(
            job_id, IMAGE_UPLOAD, submission.image, settings.max_upload_bytes
        )
        extension = check_image(self.storage.path(job_id, IMAGE_UPLOAD), settings.max_image_pixels)
        image_name = f"source.{extension}"
        self.storage.path(job_id, IMAGE_UPLOAD).rename(self.storage.path(job_id, image_name))
        request = JobRequest(
            image=image_name,
            text=text,
            lang=submission.lang or settings.default_lang,
            voice=submission.voice,
            fps=submission.fps or settings.default_fps,
            size=even(submission.size or settings.default_size),
            full_frame=submission.full_frame,
            watermark=settings.watermark,
            webhook=submission.webhook,
            client_ref=submission.client_ref,
        )
        if submission.audio is not None:
            name = audio_file_name(submission.audio_filename)
            voice_key = self.storage.save_stream(
                job_id, name, submission.audio, settings.max_upload_bytes
            )
            check_audio(self.storage.path(job_id, name), settings.max_audio_seconds)
            request = request.model_copy(update={"audio": name})
        elif submission.audio_id is not None:
            voice_key = self._link_tts_audio(submission.audio_id, job_id, submission.owner)
            request = request.model_copy(update={"audio": AUDIO, "audio_id": submission.audio_id})
        else:
            voice_key = content_key("text", text, request.lang, request.voice)
        cache_key = content_key(
            "animate",
            __version__,
            upload,
            voice_key,
            request.fps,
            request.size,
            request.full_frame,
            request.seed,
            request.watermark,
        )
        owner = submission.owner.tenant
        reused = self._reuse(job_id, cache_key, VIDEO)
        now = time.time()
        state = JobState(job_id=job_id, kind=JobKind.ANIMATE, created_at=now, owner=owner)
        if reused is not None:
            state = done_by_reuse(state, reused, owner)
        manifest = JobManifest(
            job_id=job_id,
            kind=JobKind.ANIMATE,
            created_at=state.created_at,
            queue=settings.animate_queue,
            request=request,
            cache_key=cache_key,
            consent=True,
            state=state,
        )
        return self._launch(manifest, TASK_ANIMATE)

    def _link_tts_audio(self, audio_id: str, job_id: str, caller: Principal) -> str:
        """Share a finished TTS job's audio with a new job; returns the audio's content key."""
        manifest = self.storage.read_manifest(audio_id) if is_job_id(audio_id) else None
        if (
            manifest is None
            or manifest.kind is not JobKind.TTS
            or not caller.may_see(manifest.state.owner)
        ):
            raise InvalidRequestError(
                f"There is no audio {audio_id[:64]!r}; create one with POST /tts."
            )
        state = self.store.get(audio_id) or manifest.state
        if state.status is not JobStatus.DONE or self.storage.download(audio_id, AUDIO) is None:
            raise AudioNotReadyError(f"The audio {audio_id} is {state.status.value}, not done.")
        self.storage.link(audio_id, job_id, AUDIO)
        self.storage.touch(audio_id)
        return manifest.cache_key or content_key("audio-job", audio_id)

    def _reuse(self, job_id: str, cache_key: str, name: str) -> JobManifest | None:
        """Link artifact `name` of an identical finished job into `job_id`; its manifest."""
        earlier = self.storage.cache_get(cache_key)
        if earlier is None or self.storage.download(earlier, name) is None:
            return None
        manifest = self.storage.read_manifest(earlier)
        if manifest is None:
            return None
        self.storage.link(earlier, job_id, name)
        self.storage.touch(earlier)
        logger.info("reusing the %s of job %s", name, earlier, extra={"job_id": job_id})
        return manifest

    def submit_tts(self, submission: TtsSubmission) -> Submitted:
        """Queue speech synthesis, or answer with identical speech made before."""
        settings = self.settings
        text = clean_text(submission.text, settings.max_text_chars)
        lang = submission.lang or settings.default_lang
        if submission.voice_sample is not None and not self.cloning_available():
            raise BackendUnavailableError(
                "Voice cloning is not available on this server: no cloning backend (XTTS) is "
                "configured. Send the request without voice_clone_wav to use a built-in voice."
            )
        if submission.webhook is not None:
            webhooks.check_url(submission.webhook, settings)
        return self._create(
            lambda job_id: self._create_tts(job_id, submission, text, lang),
            submission.idempotency,
            JobKind.TTS,
        )

    def _create_tts(
        self, job_id: str, submission: TtsSubmission, text: str, lang: str
    ) -> Submitted:
        request = JobRequest(
            text=text,
            lang=lang,
            voice=submission.voice,
            speech_backend=DEFAULT_BACKEND,
            webhook=submission.webhook,
            client_ref=submission.client_ref,
        )
        sample_key = None
        if submission.voice_sample is not None:
            sample_key = self.storage.save_stream(
                job_id, VOICE_SAMPLE, submission.voice_sample, self.settings.max_upload_bytes
            )
            request = request.model_copy(
                update={"voice_sample": VOICE_SAMPLE, "speech_backend": CLONE_BACKEND}
            )
        cache_key = content_key(
            "tts", __version__, text, lang, request.voice, request.speech_backend, sample_key
        )
        owner = submission.owner.tenant
        earlier = self.storage.cache_get(cache_key)
        if earlier is not None and self.storage.download(earlier, AUDIO) is not None:
            mine = self._state_of(earlier)
            ours = mine is not None and (mine.owner or ANONYMOUS) == owner
            if mine is not None and ours and mine.status is JobStatus.DONE:
                # The caller's own speech: answer with that job, as before.
                self.storage.remove(job_id)
                self.storage.touch(earlier)
                self.store.increment("jobs_reused_total", f"kind={JobKind.TTS.value}")
                return Submitted(mine, reused=True)
        state = JobState(job_id=job_id, kind=JobKind.TTS, created_at=time.time(), owner=owner)
        # Another tenant's speech: reuse the audio in a job of the caller's own, which names
        # neither the other job nor anything of its request.
        reused = self._reuse(job_id, cache_key, AUDIO)
        if reused is not None:
            state = done_by_reuse(state, reused, owner)
        manifest = JobManifest(
            job_id=job_id,
            kind=JobKind.TTS,
            created_at=state.created_at,
            queue=self.settings.tts_queue,
            request=request,
            cache_key=cache_key,
            state=state,
        )
        return self._launch(manifest, TASK_TTS)

    def _launch(self, manifest: JobManifest, task: str) -> Submitted:
        """Write manifest and state; queue the task unless the job is already done."""
        self.storage.write_manifest(manifest)
        self.store.create(manifest.state)
        if manifest.state.status.final:
            self.storage.settle(manifest.job_id, DOWNLOADS)
            self.store.increment("jobs_reused_total", f"kind={manifest.kind.value}")
            self._notify(manifest)
            return Submitted(manifest.state, reused=True)
        self.store.increment("jobs_submitted_total", f"kind={manifest.kind.value}")
        try:
            self.queue.send(task, manifest.job_id, manifest.queue)
        except Exception:
            error = ErrorInfo(code="queue_unavailable", message="The job queue was unreachable.")
            self._finish(manifest.job_id, finish(JobStatus.ERROR, time.time(), error))
            raise
        logger.info(
            "queued %s job on %s",
            manifest.kind.value,
            manifest.queue,
            extra={"job_id": manifest.job_id},
        )
        return Submitted(manifest.state)

    def cloning_available(self) -> bool:
        """True when a voice-cloning backend is configured."""
        return self.settings.xtts_model_dir is not None

    # ------------------------------------------------------------------ reading

    def get(self, job_id: str, caller: Principal | None = None) -> JobState:
        """The job's state; JobNotFoundError for unknown or malformed ids, and for jobs of
        another tenant when `caller` is given (404, not 403: ids must not be an oracle)."""
        state = self._state_of(job_id)
        if state is None or (caller is not None and not caller.may_see(state.owner)):
            raise JobNotFoundError(f"There is no job {job_id[:64]!r}.")
        return state

    def _state_of(self, job_id: str) -> JobState | None:
        if not is_job_id(job_id):
            return None
        state = self.store.get(job_id)
        return state if state is not None else self._manifest_state(job_id)

    def _manifest_state(self, job_id: str) -> JobState | None:
        """The state kept in the manifest, for jobs the state store has forgotten (expired)."""
        manifest = self.storage.read_manifest(job_id) if is_job_id(job_id) else None
        return None if manifest is None else manifest.state

    def view(self, state: JobState, base_url: str) -> JobView:
        """The client's view of a job, with absolute download links."""
        base = (self.settings.public_url or base_url).rstrip("/")
        settings = self.settings
        video = (
            state.status is JobStatus.DONE
            and self.storage.download(state.job_id, VIDEO) is not None
        )
        audio = (
            state.status is JobStatus.DONE
            and self.storage.download(state.job_id, AUDIO) is not None
        )
        return JobView(
            job_id=state.job_id,
            kind=state.kind,
            status=state.status,
            progress=state.progress,
            stage=state.stage,
            video_url=base + download_path(settings, state.job_id, VIDEO) if video else None,
            audio_url=base + download_path(settings, state.job_id, AUDIO) if audio else None,
            error=state.error,
            attempt=state.attempts,
            reused_from=state.reused_from,
            client_ref=self._client_ref(state.job_id),
            created_at=iso(state.created_at),
            started_at=iso(state.started_at),
            finished_at=iso(state.finished_at),
        )

    def _client_ref(self, job_id: str) -> str | None:
        manifest = self.storage.read_manifest(job_id)
        return manifest.request.client_ref if manifest is not None else None

    def download(
        self, job_id: str, name: str, caller: Principal | None, signature: str | None
    ) -> Path:
        """Path of a finished job's video or audio for a signed link or the job's owner;
        JobNotFoundError otherwise (also for other tenants: no existence oracle)."""
        path = self.storage.download(job_id, name)
        state = None if path is None else self._state_of(job_id)
        allowed = state is not None and (
            not keys_configured(self.settings)
            or link_is_valid(self.settings, job_id, name, signature)
            or (caller is not None and caller.may_see(state.owner))
        )
        if path is None or state is None or state.status is not JobStatus.DONE or not allowed:
            raise JobNotFoundError(f"Job {job_id[:64]!r} has no {name[:32]!r} (yet).")
        return path

    async def wait(self, job_id: str, timeout: float) -> JobState:
        """The job's state once it is final, or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            state = await run_in_threadpool(self.get, job_id)
            if state.status.final or time.monotonic() >= deadline:
                return state
            await asyncio.sleep(WAIT_POLL_S)

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobState | None]:
        """The states of several jobs in one store read; None for jobs that are gone."""
        return {
            job_id: state if state is not None else self._manifest_state(job_id)
            for job_id, state in zip(job_ids, self.store.get_many(job_ids), strict=True)
        }

    def watch(self, job_id: str, keepalive: float) -> AsyncIterator[JobState | None]:
        """Yield the state whenever it changes, until it is final; None every `keepalive` s idle.

        All followers in this process share one store read per `stream_poll_seconds`.
        """
        return self.watcher.follow(job_id, keepalive)

    # ------------------------------------------------------------------ changing

    def cancel(self, job_id: str, caller: Principal | None = None) -> JobState:
        """Cancel a queued job at once; flag a running one so its worker stops rendering."""
        state = self.get(job_id, caller)
        if state.status.final:
            raise NotCancelableError(f"Job {job_id} is already {state.status.value}.")
        self._finish(job_id, request_cancel(time.time()))
        logger.info("cancel requested", extra={"job_id": job_id})
        return self.get(job_id)

    def _finish(self, job_id: str, mutate: Mutation) -> None:
        """Apply a transition and, when it made the job final, record that in the manifest."""
        new = self.store.update(job_id, mutate)
        if new is not None and new.status.final:
            manifest = self.storage.read_manifest(job_id)
            if manifest is not None:
                try:
                    self.storage.write_manifest(manifest.model_copy(update={"state": new}))
                except OSError:  # a full disk: the state store has the outcome already
                    logger.warning("could not write the manifest", extra={"job_id": job_id})
                self.storage.settle(job_id, DOWNLOADS if new.status is JobStatus.DONE else NONE)
                self._notify(manifest)

    def _notify(self, manifest: JobManifest) -> None:
        """Queue the webhook of a job that became final here (not in a worker)."""
        if manifest.request.webhook:
            try:
                self.queue.send(
                    TASK_WEBHOOK, manifest.job_id, QUEUES[0], task_id=f"{manifest.job_id}-webhook"
                )
            except Exception:
                logger.exception("could not queue the webhook", extra={"job_id": manifest.job_id})

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove jobs older than the retention; returns their ids."""
        now = time.time() if now is None else now
        removed = self.storage.expired(now, self.settings.retention_hours * 3600)
        for job_id in removed:
            self.store.forget(job_id)
            self.storage.remove(job_id)
        self.storage.prune_cache()
        self.storage.prune_broker_files(now)
        if removed:
            logger.info("retention removed %d jobs", len(removed))
        return removed

    # ------------------------------------------------------------------ operations

    def readiness(self) -> Readiness:
        """Broker reachable, a worker alive, its engine warmed up."""
        checks: dict[str, Check] = {}
        try:
            self.queue.ping()
            self.store.ping()
            checks["broker"] = Check(ok=True, detail="reachable")
        except Exception:
            # The reason (addresses, errors) goes to the operator's log, not to any caller.
            logger.warning("broker or state store unreachable", exc_info=True)
            checks["broker"] = Check(ok=False, detail="unreachable")
        try:
            workers = self.store.workers()
        except Exception:
            logger.warning("state store unreachable", exc_info=True)
            workers = []
            checks["broker"] = Check(ok=False, detail="unreachable")
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
        workers = self.store.workers()
        return Snapshot(
            jobs=self.store.count_by_status(),
            queue_depth={queue: self.queue.depth(queue) for queue in QUEUES},
            workers_alive=len(workers),
            workers_warmed=sum(1 for worker in workers if worker.warmed),
            histograms=self.store.histograms(),
            counters=self.store.counters(),
        )

    def warm_up(self) -> None:
        """Connect to the store and broker and load decoders before the first request.

        Best effort: an unreachable broker is logged here and reported by /ready.
        """
        warm_up_image_decoding()
        try:
            self.store.warm_up(WARM_CONNECTIONS)
            self.queue.warm_up()
        except Exception as exc:
            logger.warning("broker or state store not reachable at start-up: %s", exc)

    def close(self) -> None:
        """Release connections."""
        self.queue.close()

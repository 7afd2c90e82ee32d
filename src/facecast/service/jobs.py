"""The job service: what the routes call. Create jobs, look them up, cancel, wait, watch, sweep.

It stores uploads and manifests (storage), keeps live state (state store) and hands work to
Celery (task queue). It never renders anything itself; the web process stays light.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import io
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool

from facecast import __version__
from facecast.config import Settings
from facecast.cost import JobCost, job_cost
from facecast.errors import BackendUnavailableError, FacecastError, UnsupportedLanguageError
from facecast.image import PhotoInfo
from facecast.options import (
    DEFAULT_PITCH,
    DEFAULT_RATE,
    DEFAULT_VOLUME,
    CaptionMode,
    Framing,
    RenderOptions,
    VideoFormat,
)
from facecast.service import webhooks
from facecast.service.access import (
    ANONYMOUS,
    Principal,
    download_path,
    keys_configured,
    link_is_valid,
    stream_path,
)
from facecast.service.errors import (
    AudioNotReadyError,
    ConsentRequiredError,
    CpuBudgetExceededError,
    IdempotencyConflictError,
    InvalidRequestError,
    JobNotFoundError,
    JobTooCostlyError,
    NotCancelableError,
    PayloadTooLargeError,
    ServiceBusyError,
    ServiceError,
    StorageFullError,
    StorageUnavailableError,
)
from facecast.service.facefinder import FaceFinder
from facecast.service.inputs import (
    audio_file_name,
    check_audio,
    check_image,
    check_point_in,
    clean_text,
    even,
    inspect_image,
    warm_up_image_decoding,
)
from facecast.service.metrics import Snapshot
from facecast.service.objectstore import MissingBucketError
from facecast.service.queueing import (
    QUEUES,
    TASK_ANIMATE,
    TASK_TTS,
    TASK_WEBHOOK,
    WEBHOOK_QUEUE,
    TaskQueue,
)
from facecast.service.schemas import (
    BackendList,
    BackendView,
    Check,
    ErrorInfo,
    FacesResult,
    JobDeleted,
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
    CAPTIONS,
    DISK_FULL,
    DOWNLOADS,
    STREAM_DIR,
    STREAM_FILE_PATTERN,
    VIDEO,
    VIDEOS,
    Storage,
    content_key,
    is_job_id,
)
from facecast.service.watch import StateWatch
from facecast.speech import registry as speech_registry
from facecast.speech import script
from facecast.speech.cloning import check_voice_sample_header, read_voice_sample
from facecast.speech.limits import check_estimate
from facecast.speech.registry import choose_voice

logger = logging.getLogger(__name__)

IMAGE_UPLOAD = "source_upload"
VOICE_SAMPLE = "voice_sample.wav"
WAIT_POLL_S = 0.05
STREAMED = frozenset({JobStatus.RUNNING, JobStatus.DONE})
"""Statuses whose view links the live stream (once it has a segment)."""
STREAM_LINK = "stream"
"""The name download links of a job's HLS stream are signed for (every file under stream/)."""
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


BINDING_SEPARATOR = ":"
"""An idempotency key is bound to `<job id>:<request digest>` (job ids are hex)."""
DIGEST_CHUNK = 1 << 20


def request_digest(fields: Sequence[object], uploads: Sequence[BinaryIO | None], limit: int) -> str:
    """A hash of a request's fields and uploads (each read up to `limit` + 1 bytes, then
    rewound): a retry under the same Idempotency-Key must send the same request."""
    parts: list[str | bytes | int | float | bool | None] = [repr(f) for f in fields]
    for upload in uploads:
        if upload is None or not upload.seekable():
            parts.append(None)
            continue
        start, left, digest = upload.tell(), limit + 1, hashlib.sha256()
        while left > 0 and (chunk := upload.read(min(DIGEST_CHUNK, left))):
            digest.update(chunk)
            left -= len(chunk)
        upload.seek(start)
        parts.append(digest.hexdigest())
    return content_key("request", *parts)[:32]


def deletion_marker(job_id: str) -> str:
    """The idempotency-store key that says `job_id` was deleted (so that a retry of the
    request that made it starts a new job instead of naming the deleted one)."""
    return content_key("deleted-job", job_id)


def build_options(
    settings: Settings,
    *,
    speaks: bool,
    lang: str | None = None,
    voice: str | None = None,
    rate: float | None = None,
    pitch: float | None = None,
    volume: float | None = None,
    fps: int | None = None,
    size: int | None = None,
    full_frame: bool = False,
    framing: Framing = "square",
    face_index: int | None = None,
    face_at: tuple[float, float] | None = None,
    renderer: str = "warp",
    refine: str | None = None,
    upscale: int | None = None,
    force_cpu: bool = False,
    expression: str = "keep",
    lexicon: str | None = None,
    seed: int = 0,
    restore: bool = True,
    captions: CaptionMode | None = None,
    caption_highlight: bool = True,
    format: VideoFormat = "mp4",
) -> RenderOptions:
    """The job's render options from a request's fields and the server's defaults.

    When the job speaks text, the voice is resolved here (an unknown voice or language is a
    400 listing the valid ones), so the worker never meets a voice it cannot use. Rate, pitch
    and volume change synthesised speech only: a job with a recording drops them, as it
    drops the voice.
    """
    options = RenderOptions(
        fps=fps or settings.default_fps,
        size=even(size or settings.default_size),
        full_frame=full_frame,
        framing=framing,
        lang=lang or settings.default_lang,
        voice=voice,
        watermark=settings.watermark,
        face_index=face_index,
        face_at=face_at,
        renderer=renderer,
        refine=refine,
        upscale=upscale,
        force_cpu=force_cpu,
        expression=expression,
        lexicon=lexicon or None,
        seed=seed,
        restore=restore,
        rate=DEFAULT_RATE if rate is None else rate,
        pitch=DEFAULT_PITCH if pitch is None else pitch,
        volume=DEFAULT_VOLUME if volume is None else volume,
        captions=captions,
        caption_highlight=caption_highlight,
        format=format,
    )
    if lexicon:
        script.parse_lexicon(lexicon)  # a broken lexicon is the caller's 400, before any work
    if speaks:
        return choose_voice(options)
    return dataclasses.replace(
        options, voice=None, rate=DEFAULT_RATE, pitch=DEFAULT_PITCH, volume=DEFAULT_VOLUME
    )


ANONYMOUS_CALLER = Principal(ANONYMOUS)
MAX_BUDGET_RETRY_S = 300
"""Longest Retry-After a refused job is told (the budget drains at about 2 CPU-s a second)."""


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
    options: RenderOptions = RenderOptions()
    """Built by the route with `build_options`."""
    voice_sample: BinaryIO | None = None
    """A recording to clone the voice of `text` from (needs a cloning backend)."""
    webhook: str | None = None
    client_ref: str | None = None
    idempotency: str | None = None
    """The scoped Idempotency-Key (see `idempotency_scope`)."""
    owner: Principal = ANONYMOUS_CALLER
    """The caller: the job's owner, and whose TTS audio it may use."""
    transcript: str | None = None
    """The words of the recording (`audio`, `audio_id`): its captions are aligned from it."""


@dataclass(frozen=True)
class TtsSubmission:
    """A parsed POST /tts."""

    text: str
    options: RenderOptions = RenderOptions()
    """Built by the route with `build_options`."""
    voice_sample: BinaryIO | None = None
    webhook: str | None = None
    client_ref: str | None = None
    idempotency: str | None = None
    owner: Principal = ANONYMOUS_CALLER


@dataclass(frozen=True)
class RemoteFile:
    """An artifact in the shared object store: its key and size, and a presigned URL if any."""

    key: str
    size: int
    url: str | None = None


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
        # Photo checks and face searches hold a file in memory and take CPU: a few at a time
        # keep the API's memory under its ceiling and leave cores for everything else.
        self._decoding = threading.BoundedSemaphore(settings.decode_concurrency)
        # Face searches run in one helper process: callers take turns.
        self._searching = threading.BoundedSemaphore(1)
        self.face_finder = FaceFinder(settings.max_image_pixels)
        # Estimated CPU-seconds of each owner's unfinished jobs, by job id (this API process's
        # submissions; entries leave once their job is final or gone).
        self._ledger: dict[str, dict[str, float]] = {}
        self._ledger_lock = threading.Lock()

    @contextmanager
    def _decode_slot(self, slots: threading.BoundedSemaphore | None = None) -> Iterator[None]:
        """A slot for photo work (`decode_concurrency` of them); 503 when none frees in time."""
        wait = self.settings.decode_wait_seconds
        slots = self._decoding if slots is None else slots
        if not slots.acquire(timeout=wait):
            raise ServiceBusyError(
                "The server is busy checking other photos; try again shortly.",
                retry_after=max(1, math.ceil(wait / 4)),
            )
        try:
            yield
        finally:
            slots.release()

    def check_photo(self, path: Path) -> PhotoInfo:
        """Check a stored upload (see inputs.check_image) in a decode slot; what it declares."""
        with self._decode_slot():
            return inspect_image(path, self.settings.max_image_pixels)

    def find_faces(self, upload: BinaryIO) -> FacesResult:
        """The faces in an uploaded photo with their boxes, largest first (POST /faces)."""
        limit = self.settings.max_upload_bytes
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLargeError(f"The photo is larger than {limit} bytes.")
        with self._decode_slot():
            check_image(io.BytesIO(data), self.settings.max_image_pixels)
        with self._decode_slot(self._searching):
            return self.face_finder.find(data)

    def preview(self, upload: BinaryIO, options: RenderOptions) -> bytes:
        """The first frame of the video `options` would make of the photo, as PNG (POST
        /preview); made in the face finder's helper, which keeps the rigged photo warm."""
        limit = self.settings.max_upload_bytes
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLargeError(f"The photo is larger than {limit} bytes.")
        with self._decode_slot():
            check_image(io.BytesIO(data), self.settings.max_image_pixels)
        with self._decode_slot(self._searching):
            return self.face_finder.preview(data, options)

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
        if submission.voice_sample is not None and submission.text is None:
            raise InvalidRequestError("voice_clone_wav clones the voice of text: send text too.")
        self._check_transcript(submission)
        text = self._checked_intake(submission.text, submission.options, submission.webhook)
        digest = self._digest(
            submission.idempotency,
            (
                submission.consent,
                submission.audio_filename,
                submission.audio_id,
                submission.text,
                submission.options,
                submission.webhook,
                submission.client_ref,
                submission.transcript,
            ),
            (submission.image, submission.audio, submission.voice_sample),
        )
        return self._create(
            lambda job_id: self._create_animate(job_id, submission, text),
            submission.idempotency,
            JobKind.ANIMATE,
            digest,
        )

    def _check_transcript(self, submission: AnimateSubmission) -> None:
        """A transcript belongs to a recording, and a recording's captions need one."""
        if submission.transcript is not None:
            if submission.text is not None:
                raise InvalidRequestError("transcript belongs to a recording; text is its own.")
            script.check_length(submission.transcript, self.settings.max_text_chars)
        elif submission.options.captions and submission.text is None:
            raise InvalidRequestError(
                "Captions for a recording need its transcript: send transcript too."
            )

    def _checked_intake(
        self, text: str | None, options: RenderOptions, webhook: str | None
    ) -> str | None:
        """The text cleaned and its spoken length checked, and the webhook URL checked: what
        every submission refuses before a job exists."""
        cleaned = None if text is None else clean_text(text, self.settings.max_text_chars)
        if cleaned is not None:
            self._check_spoken_length(cleaned, options)
        if webhook is not None:
            webhooks.check_url(webhook, self.settings)
        return cleaned

    def _digest(
        self,
        idempotency: str | None,
        fields: tuple[object, ...],
        uploads: tuple[BinaryIO | None, ...],
    ) -> str | None:
        """What an Idempotency-Key is bound to: the request's fields and uploads (None
        without a key)."""
        if idempotency is None:
            return None
        return request_digest(fields, uploads, self.settings.max_upload_bytes)

    def _create(
        self,
        build: Callable[[str], Submitted],
        idempotency: str | None,
        kind: JobKind,
        digest: str | None = None,
    ) -> Submitted:
        """A new job directory filled by `build`; removed again when that fails.

        With an idempotency key the first request binds it to its job and its `digest`; a
        retry with the same digest gets that job, one with another digest is refused (422).
        """
        try:
            job_id = self.storage.new_job()
        except OSError as exc:
            raise storage_failure(exc) from exc
        ttl = self.settings.idempotency_hours * 3600

        def binding(job: str) -> str:
            return job if digest is None else f"{job}{BINDING_SEPARATOR}{digest}"

        if idempotency is not None:
            bound = self.store.claim(idempotency, binding(job_id), ttl)
            bound_job = bound.partition(BINDING_SEPARATOR)[0]
            if bound != binding(job_id) and self.store.bound(deletion_marker(bound_job), ttl):
                # The key's job was deleted since: this request starts afresh.
                self.store.release(idempotency, bound)
                bound = self.store.claim(idempotency, binding(job_id), ttl)
            if bound != binding(job_id):
                self.storage.remove(job_id)
                bound_job, _, bound_digest = bound.partition(BINDING_SEPARATOR)
                if digest is not None and bound_digest and bound_digest != digest:
                    raise IdempotencyConflictError(
                        "This Idempotency-Key was used for a request with other fields or "
                        "files; send the same request again, or use a new key."
                    )
                return Submitted(self._state_or_queued(bound_job, kind))
        try:
            submitted = build(job_id)
        except BaseException as exc:
            self.storage.remove(job_id)
            if idempotency is not None:
                self.store.release(idempotency, binding(job_id))
            if isinstance(exc, OSError) and exc.errno is not None:
                raise storage_failure(exc) from exc
            raise
        if idempotency is not None and submitted.state.job_id != job_id:  # answered by reuse
            self.store.release(idempotency, binding(job_id))
            self.store.claim(idempotency, binding(submitted.state.job_id), ttl)
        self.storage.drop_local(job_id)  # with a shared store the uploads are in the bucket now
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
        photo = self.check_photo(self.storage.path(job_id, IMAGE_UPLOAD))
        check_point_in(submission.options.face_at, photo.upright_size)
        image_name = f"source.{photo.extension}"
        self.storage.path(job_id, IMAGE_UPLOAD).rename(self.storage.path(job_id, image_name))
        self.storage.publish(job_id, image_name)
        request = JobRequest(
            image=image_name,
            text=text,
            options=submission.options,
            webhook=submission.webhook,
            client_ref=submission.client_ref,
            transcript=submission.transcript,
        )
        queue = self.check_backends(request)
        if submission.audio is not None:
            name = audio_file_name(submission.audio_filename)
            voice_key = self.storage.save_stream(
                job_id, name, submission.audio, settings.max_upload_bytes
            )
            with self._decode_slot():  # FFmpeg's probing decodes a little: bounded like photos
                check_audio(self.storage.path(job_id, name), settings.max_audio_seconds)
            self.storage.publish(job_id, name)
            request = request.model_copy(update={"audio": name})
        elif submission.audio_id is not None:
            voice_key = self._link_tts_audio(submission.audio_id, job_id, submission.owner)
            request = request.model_copy(update={"audio": AUDIO, "audio_id": submission.audio_id})
        else:
            request, sample_key = self._with_voice_sample(job_id, request, submission.voice_sample)
            voice_key = content_key("text", text, sample_key)
        # The whole options object: two voices (or any other choice) never share a video. The
        # tenant too: reuse across tenants answers at once, an oracle that this face was filmed.
        owner = submission.owner.tenant
        transcript = (request.transcript,) if request.transcript is not None else ()
        cache_key = content_key(
            "animate",
            __version__,
            owner,
            upload,
            voice_key,
            request.options.fingerprint(),
            *transcript,
        )
        reused = self._reuse(job_id, cache_key, VIDEOS[request.options.format])
        if reused is not None:
            for name in CAPTIONS:  # the captions come with the video they belong to
                if self.storage.has(reused.job_id, name):
                    self.storage.link(reused.job_id, job_id, name)
        now = time.time()
        state = JobState(job_id=job_id, kind=JobKind.ANIMATE, created_at=now, owner=owner)
        if reused is not None:
            state = done_by_reuse(state, reused, owner)
        manifest = JobManifest(
            job_id=job_id,
            kind=JobKind.ANIMATE,
            created_at=state.created_at,
            queue=queue,
            request=request,
            cache_key=cache_key,
            consent=True,
            state=state,
        )
        return self._launch(manifest, TASK_ANIMATE)

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
            workers = [w for w in self.store.workers() if w.backends]
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
            reported = [w.rates[key] for w in self.store.workers() if key in w.rates]
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

    def backends(self) -> BackendList:
        """The backend catalogue, with what live workers offer."""
        from facecast.backends import catalogue

        try:
            workers = self.store.workers()
        except Exception:
            logger.warning("cannot read worker heartbeats", exc_info=True)
            workers = []
        offered = {name for w in workers for name in w.backends}
        views = []
        for entry in catalogue():
            caps = entry.capabilities
            views.append(
                BackendView(
                    kind=entry.kind,
                    name=entry.name,
                    available=entry.available,
                    offered=entry.name in offered,
                    device=caps.device if caps else None,
                    batch_size=caps.batch_size if caps else None,
                    seconds_per_frame_cpu=caps.seconds_per_frame_cpu if caps else None,
                    licence=caps.licence if caps else None,
                    commercial_use=caps.commercial_use if caps else None,
                    missing=list(entry.missing),
                    how_to_get=entry.how_to_get,
                    source=entry.source,
                )
            )
        return BackendList(backends=views)

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
        if state.status is not JobStatus.DONE or not self.storage.has(audio_id, AUDIO):
            raise AudioNotReadyError(f"The audio {audio_id} is {state.status.value}, not done.")
        self.storage.link(audio_id, job_id, AUDIO)
        self.storage.touch(audio_id)
        return manifest.cache_key or content_key("audio-job", audio_id)

    def _reuse(self, job_id: str, cache_key: str, name: str) -> JobManifest | None:
        """Link artifact `name` of an identical finished job into `job_id`; its manifest."""
        earlier = self.storage.cache_get(cache_key)
        if earlier is None or not self.storage.has(earlier, name):
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
        text = self._checked_intake(submission.text, submission.options, submission.webhook)
        assert text is not None  # a TtsSubmission always carries text
        digest = self._digest(
            submission.idempotency,
            (submission.text, submission.options, submission.webhook, submission.client_ref),
            (submission.voice_sample,),
        )
        return self._create(
            lambda job_id: self._create_tts(job_id, submission, text),
            submission.idempotency,
            JobKind.TTS,
            digest,
        )

    def _create_tts(self, job_id: str, submission: TtsSubmission, text: str) -> Submitted:
        request = JobRequest(
            text=text,
            options=submission.options,
            webhook=submission.webhook,
            client_ref=submission.client_ref,
        )
        request, sample_key = self._with_voice_sample(job_id, request, submission.voice_sample)
        owner = submission.owner.tenant
        # Per tenant, like videos: another tenant's identical speech is never reused.
        cache_key = content_key(
            "tts", __version__, owner, text, request.options.fingerprint(), sample_key
        )
        earlier = self.storage.cache_get(cache_key)
        if earlier is not None and self.storage.has(earlier, AUDIO):
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

    def _admit(self, manifest: JobManifest) -> None:
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
            for job_id, state in zip(ids, self.store.get_many(ids), strict=True):
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

    def _launch(self, manifest: JobManifest, task: str) -> Submitted:
        """Write manifest and state; queue the task unless the job is already done."""
        if not manifest.state.status.final:
            self._admit(manifest)
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
        """True when a voice-cloning backend is installed, with its weights, on this server."""
        return speech_registry.cloning_backend() is not None

    def _cloner(self, lang: str) -> str:
        """Name of the backend that clones voices in `lang`; BackendUnavailableError when there
        is none, UnsupportedLanguageError when it does not speak `lang`."""
        name = speech_registry.cloning_backend()
        backend = speech_registry.REGISTRY.peek(name) if name is not None else None
        if name is None or backend is None:
            raise BackendUnavailableError(
                "Voice cloning is not available on this server: no cloning backend (XTTS with "
                "its weights) is installed. Send the request without voice_clone_wav to use a "
                "built-in voice."
            )
        spoken = backend.languages()
        code = lang.lower().replace("_", "-")
        if code not in spoken and code.split("-")[0] not in {s.split("-")[0] for s in spoken}:
            raise UnsupportedLanguageError(
                f"Voice cloning ({name}) does not speak {lang!r}. It speaks: {', '.join(spoken)}."
            )
        return name

    def _with_voice_sample(
        self, job_id: str, request: JobRequest, sample: BinaryIO | None
    ) -> tuple[JobRequest, str | None]:
        """`request` speaking in the voice of `sample` (stored, checked, published, and the
        cloning backend chosen), with the sample's content key; unchanged without a sample."""
        if sample is None:
            return request, None
        # Refused before a byte is stored or decoded where no backend could use it.
        cloner = self._cloner(request.options.lang)
        sample_key = self._save_voice_sample(job_id, sample)
        self.storage.publish(job_id, VOICE_SAMPLE)
        options = dataclasses.replace(request.options, speech_backend=cloner, voice=None)
        return request.model_copy(
            update={"voice_sample": VOICE_SAMPLE, "options": options}
        ), sample_key

    def _save_voice_sample(self, job_id: str, sample: BinaryIO) -> str:
        """Store a voice sample and check it is 3-30 s of audio; its content key.

        The header is checked first (rate, channels, stated length: nothing decoded), then the
        decode runs in a decode slot like a photo's, so a few at a time bound the API's memory.
        """
        key = self.storage.save_stream(job_id, VOICE_SAMPLE, sample, self.settings.max_upload_bytes)
        path = self.storage.path(job_id, VOICE_SAMPLE)
        check_voice_sample_header(path)
        with self._decode_slot():
            read_voice_sample(path)
        return key

    def _check_spoken_length(self, text: str, options: RenderOptions) -> None:
        """Refuse text whose estimated spoken length passes the audio cap, before any work
        (at rate r the speech lasts 1/r as long: the pipeline's own check)."""
        prepared = script.prepare(text, options.lang, options.lexicon)
        cap = self.settings.max_audio_seconds * options.rate
        check_estimate(script.estimated_seconds(prepared), cap)

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
        state = self._state_of(job_id)
        if (
            state is None
            or state.status not in STREAMED
            or not self._allowed(state, job_id, STREAM_LINK, caller, sig, exp)
        ):
            raise missing
        remote = self.storage.remote
        if remote is not None and STREAM_FILE_PATTERN.fullmatch(name):
            key = f"{job_id}/{STREAM_DIR}/{name}"
            info = remote.head(key)
            if info is None:
                raise missing
            return RemoteFile(key, info.size)
        path = self.storage.stream_file(job_id, name)
        if path is None:
            raise missing
        return path

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
        state = self._state_of(job_id)
        if (
            state is None
            or state.status is not JobStatus.DONE
            or not self._allowed(state, job_id, name, caller, sig, exp)
        ):
            raise missing
        remote = self.storage.remote
        if remote is not None and name in DOWNLOADS:
            key = f"{job_id}/{name}"
            info = remote.head(key)
            if info is None:
                raise missing
            url = None
            if not self.settings.proxy_downloads:
                # A signed link's presigned URL ends no later than the link itself.
                ttl = self.settings.url_ttl
                if exp is not None and sig:
                    ttl = max(1, min(ttl, exp - int(time.time())))
                url = remote.presign(key, ttl, f"{job_id}-{name}")
            return RemoteFile(key, info.size, url)
        path = self.storage.download(job_id, name)
        if path is None:
            raise missing
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

    def delete(self, job_id: str, caller: Principal | None = None) -> JobState | JobDeleted:
        """DELETE /jobs/{id}: cancel a queued or running job (its new state); erase a finished
        one with all its files and reuse entries (what was removed). A deleted job is unknown
        afterwards (404), like one that never existed."""
        state = self.get(job_id, caller)
        if not state.status.final:
            return self.cancel(job_id, caller)
        # Marked first: an Idempotency-Key retry from now on starts a new job.
        self.store.claim(deletion_marker(job_id), job_id, self.settings.idempotency_hours * 3600)
        removed, dropped = self.storage.erase(job_id)
        self.store.forget(job_id)
        logger.info("job deleted: %d files", len(removed), extra={"job_id": job_id})
        return JobDeleted(
            job_id=job_id,
            status=state.status,
            removed_files=removed,
            removed_cache_entries=dropped,
        )

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
                    TASK_WEBHOOK,
                    manifest.job_id,
                    WEBHOOK_QUEUE,
                    task_id=f"{manifest.job_id}-webhook",
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
        if self.storage.remote is not None:
            try:
                self.storage.remote.check()
                checks["storage"] = Check(ok=True, detail="reachable")
            except Exception:
                logger.warning("object store unreachable", exc_info=True)
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
        if self.storage.remote is not None:
            try:
                self.storage.remote.check()
            except MissingBucketError:
                raise  # a configuration error: the API must not start
            except Exception as exc:
                logger.warning("object store not reachable at start-up: %s", exc)
        try:
            self.store.warm_up(WARM_CONNECTIONS)
            self.queue.warm_up()
        except Exception as exc:
            logger.warning("broker or state store not reachable at start-up: %s", exc)

    def close(self) -> None:
        """Release connections and the face search helper."""
        self.queue.close()
        self.face_finder.close()

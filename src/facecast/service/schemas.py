"""Every job schema in one place: the stored job record, its manifest and the API's messages
(the request forms are derived from the options in facecast.service.forms).

Times inside the service are UNIX seconds (floats); the API shows them as ISO 8601 datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from facecast.errors import ErrorCode
from facecast.options import LANG_PATTERN, LEXICON_HELP, LEXICON_MAX_CHARS, RenderOptions


class JobStatus(StrEnum):
    """Where a job is in its life.

    `rejected` means the safety screen refused the photo (explicit content): do not retry.
    `error` means the job could not be made; `error.code` says why: bad input the caller can
    fix (no_face, invalid_audio, ...) or a failure of the service (timeout, worker_lost,
    storage_full, internal_error) worth a retry.
    """

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELED = "canceled"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        """True once the job can no longer change."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELED, JobStatus.REJECTED}
)


class JobKind(StrEnum):
    """What a job makes."""

    ANIMATE = "animate"
    TTS = "tts"


class ErrorInfo(BaseModel):
    """A stable machine-readable code and a message for people."""

    code: ErrorCode = Field(
        description="Stable error code, e.g. no_face, invalid_audio, not_found."
    )
    message: str = Field(description="What went wrong and how to fix it.")


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx response."""

    error: ErrorInfo


# --------------------------------------------------------------------------- stored records


class JobState(BaseModel):
    """The live record of a job, as the state store keeps it (Redis or a state.json file)."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    kind: JobKind
    status: JobStatus = JobStatus.QUEUED
    progress: int = Field(0, ge=0, le=100)
    stage: str = "queued"
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: ErrorInfo | None = None
    attempts: int = 0
    cancel_requested: bool = False
    reused_from: str | None = None
    owner: str | None = None
    """The tenant that created the job (see service/access.py); never shown to clients."""
    streaming: bool = False
    """The job's HLS stream has its first segment (it plays while the job renders)."""


class JobRequest(BaseModel):
    """What the caller asked for; file names are relative to the job directory.

    `options` is built once by the route (voice resolved) and handed to the pipeline as is.
    """

    image: str | None = None
    audio: str | None = None
    audio_id: str | None = None
    text: str | None = None
    voice_sample: str | None = None
    options: RenderOptions = RenderOptions()
    webhook: str | None = None
    client_ref: str | None = None
    transcript: str | None = None
    """The recording's words, for its captions."""


class JobResult(BaseModel):
    """What a finished job produced."""

    duration: float = 0.0
    frames: int = 0
    elapsed: float = 0.0
    warnings: list[str] = Field(default_factory=list)


class JobManifest(BaseModel):
    """`<data dir>/<job id>/job.json`: the durable record of a job (request, consent, outcome)."""

    job_id: str
    kind: JobKind
    created_at: float
    queue: str = "default"
    request: JobRequest
    cache_key: str | None = None
    consent: bool = False
    state: JobState
    result: JobResult | None = None
    stages: dict[str, float] = Field(default_factory=dict)


class WorkerInfo(BaseModel):
    """What a worker process reports in its heartbeat."""

    worker_id: str
    hostname: str
    pid: int
    queues: list[str] = Field(default_factory=list)
    warmed: bool = False
    seen_at: float = 0.0
    backends: list[str] = Field(default_factory=list)
    """Renderers and post-processors this worker process can run."""
    gpu_backends: list[str] = Field(default_factory=list)
    """Those of `backends` that want a GPU (their jobs go to the `gpu` queue)."""
    rates: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Render rates measured by this process (facecast.rates.Rate fields, by rate_key)."""
    jobs: list[str] = Field(default_factory=list)
    """The jobs this process is running now (a running job no live worker lists is orphaned
    and queued again)."""


# --------------------------------------------------------------------------- API messages


def iso(timestamp: float | None) -> datetime | None:
    """UNIX seconds -> an aware UTC datetime (None stays None)."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


class JobCreated(BaseModel):
    """Answer to POST /animate."""

    job_id: str
    status: JobStatus
    client_ref: str | None = Field(None, description="The `client_ref` sent with the request.")
    cpu_seconds_per_video_second: float | None = Field(
        None,
        description="CPU seconds (all threads) each second of video takes, from the rate the "
        "workers measured for this job's configuration (renderer, refiner, upscale) at "
        "warm-up and on finished jobs; before any was measured, the backends' declared cost "
        "on a 2-core CPU (none for the cheap default).",
    )
    estimated_seconds: float | None = Field(
        None,
        description="About how many seconds the job takes once a worker starts it (the "
        "recording's length, or the text's typical spoken length, at the measured rate).",
    )


class JobDeleted(BaseModel):
    """The answer to DELETE /jobs/{id} on a finished job: what was removed for good."""

    job_id: str
    deleted: bool = True
    status: JobStatus
    """The state the job was in when it was deleted."""
    removed_files: list[str]
    """The job's files removed from the data directory and the object store (photo, audio,
    voice sample, video, stream segments, captions, ...), relative to the job."""
    removed_cache_entries: int
    """Result-reuse entries that pointed at this job, dropped with it."""


class JobView(BaseModel):
    """A job as clients see it (GET /jobs/{id}, and every WebSocket/SSE message)."""

    job_id: str
    kind: JobKind
    status: JobStatus
    progress: int = Field(ge=0, le=100, description="0-100.")
    stage: str = Field(description="queued, speech, audio, face, motion, render, done, ...")
    video_url: str | None = None
    audio_url: str | None = None
    stream_url: str | None = Field(
        None,
        description="HLS playlist (fMP4, EVENT) that plays while the video renders; set once "
        "its first segment exists. Switch to video_url when the job is done.",
    )
    captions_url: str | None = Field(
        None,
        description="The captions (WebVTT, or SRT when asked for) of a done job that asked "
        "for `captions`.",
    )
    error: ErrorInfo | None = Field(
        None, description="Why a job failed: a stable code and a message (internals stay in logs)."
    )
    attempt: int = Field(
        0,
        ge=0,
        description="Deliveries to a worker so far; a job whose worker was lost is "
        "`queued` again with the next attempt.",
    )
    reused_from: str | None = Field(
        None, description="Your earlier job whose result was reused, if any."
    )
    client_ref: str | None = Field(None, description="The `client_ref` sent with the request.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What to know about the result, e.g. a face enlarged so much it blurs.",
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class FaceBoxView(BaseModel):
    """One face POST /faces found: its number and its outline box."""

    index: int = Field(description="Pass as `face_index` to POST /animate (0: largest).")
    x0: int
    y0: int
    x1: int
    y1: int


class FacesResult(BaseModel):
    """Answer to POST /faces: the faces in the photo, largest first."""

    width: int = Field(description="Width of the upright photo in pixels.")
    height: int = Field(description="Height of the upright photo in pixels.")
    rotation: int = Field(
        description="Degrees the photo (after its EXIF orientation) was turned clockwise to "
        "stand the faces upright; boxes and `face_at` use the turned photo."
    )
    faces: list[FaceBoxView]


class WebhookEvent(BaseModel):
    """Body of the POST a job's `webhook` URL gets once the job is final."""

    event: str = "job.finished"
    job_id: str
    kind: JobKind
    status: JobStatus
    error: ErrorInfo | None = None
    client_ref: str | None = None
    video_url: str | None = Field(None, description="Absolute when FACECAST_PUBLIC_URL is set.")
    audio_url: str | None = None
    finished_at: datetime | None = None


class NormalizeRequest(BaseModel):
    """JSON body of POST /text/normalize."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The text as a job would be given it.")
    lang: str | None = Field(
        None, pattern=LANG_PATTERN, description="Language code; default FACECAST_DEFAULT_LANG (de)."
    )
    lexicon: str | None = Field(None, max_length=LEXICON_MAX_CHARS, description=LEXICON_HELP)


class NormalizeResult(BaseModel):
    """What a voice will say for a text."""

    spoken: str = Field(
        description="The words as spoken, with `[pause Nms]` where the text asks for silence."
    )
    estimated_seconds: float = Field(description="About how long it takes to say.")


class TtsResult(BaseModel):
    """Answer to POST /tts: the audio (200) or, when synthesis outlasts the wait, a job (202)."""

    job_id: str
    status: JobStatus
    audio_id: str | None = Field(None, description="Pass as `audio_id` to POST /animate.")
    audio_url: str | None = None
    reused: bool = Field(False, description="True when the same speech existed already.")


class Health(BaseModel):
    """Liveness."""

    status: str = "ok"
    version: str


class Check(BaseModel):
    """One readiness check."""

    ok: bool
    detail: str


class VoiceView(BaseModel):
    """One voice of GET /voices."""

    id: str = Field(description="`backend:voice`: what `voice` accepts (a plain name works too).")
    backend: str
    voice: str
    languages: list[str] = Field(description="Language codes it speaks, most specific first.")
    gender: Literal["male", "female", "neutral"] = Field(
        description="Gender presentation of the voice (metadata of the voice, never a guess "
        "about a person); `voice=male` / `voice=female` picks the best of that kind."
    )
    natural: bool = Field(
        description="Sounds like a person (neural, unit-selection, HMM); false: synthetic "
        "(espeak-ng formant speech)."
    )
    cloning: bool = Field(description="Clones a voice from a sample (voice_clone_wav).")
    phoneme_timings: bool = Field(description="Drives the mouth from phonemes, not the signal.")
    licence: str
    commercial_use: bool = Field(description="False: the terms forbid or leave it unclear.")
    default_for: list[str] = Field(description="Languages this voice is the default for.")


class VoiceList(BaseModel):
    """GET /voices."""

    voices: list[VoiceView]


class LanguageView(BaseModel):
    """One language of GET /languages."""

    code: str
    default_voice: str = Field(description="`backend:voice` used when a request names none.")
    voices: int = Field(description="How many voices speak it.")


class LanguageList(BaseModel):
    """GET /languages."""

    languages: list[LanguageView]


class Readiness(BaseModel):
    """GET /ready: is the broker reachable, is a warmed-up worker alive?"""

    ready: bool
    checks: dict[str, Check]
    error: ErrorInfo | None = None


class BackendView(BaseModel):
    """A renderer or post-processor: what it needs and offers, or what this server lacks."""

    kind: str = Field(description="renderer, upscale or refine.")
    name: str
    available: bool = Field(description="This server can run it (weights present, opted in).")
    offered: bool = Field(description="A live worker offers it now, so jobs can use it.")
    device: str | None = Field(None, description="cpu, gpu or any; gpu jobs go to `gpu`.")
    batch_size: int | None = None
    seconds_per_frame_cpu: float | None = Field(
        None, description="Measured CPU cost per 512 px frame on 2 cores."
    )
    licence: str | None = None
    commercial_use: bool | None = None
    missing: list[str] = Field(default_factory=list, description="What the server lacks.")
    how_to_get: str = ""
    source: str = Field("", description="Where `facecast models fetch` downloads its weights.")


class BackendList(BaseModel):
    """Answer to GET /backends."""

    backends: list[BackendView]

"""Every job schema in one place: the stored job record, its manifest and the API's messages.

Times inside the service are UNIX seconds (floats); the API shows them as ISO 8601 datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

LANG_PATTERN = r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"
"""Language codes as the speech backends name them: de, en-us, pt_BR, cmn, ..."""


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

    code: str = Field(description="Stable error code, e.g. no_face, invalid_audio, not_found.")
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


class JobRequest(BaseModel):
    """What the caller asked for; file names are relative to the job directory."""

    image: str | None = None
    audio: str | None = None
    audio_id: str | None = None
    text: str | None = None
    lang: str = "de"
    voice: str | None = None
    voice_sample: str | None = None
    speech_backend: str = "espeak"
    fps: int = 25
    size: int = 512
    full_frame: bool = False
    seed: int = 0
    watermark: str | None = None
    webhook: str | None = None
    client_ref: str | None = None


class JobResult(BaseModel):
    """What a finished job produced."""

    duration: float = 0.0
    frames: int = 0
    elapsed: float = 0.0


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


# --------------------------------------------------------------------------- API messages


def iso(timestamp: float | None) -> datetime | None:
    """UNIX seconds -> an aware UTC datetime (None stays None)."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


class JobCreated(BaseModel):
    """Answer to POST /animate."""

    job_id: str
    status: JobStatus
    client_ref: str | None = Field(None, description="The `client_ref` sent with the request.")


class JobView(BaseModel):
    """A job as clients see it (GET /jobs/{id}, and every WebSocket/SSE message)."""

    job_id: str
    kind: JobKind
    status: JobStatus
    progress: int = Field(ge=0, le=100, description="0-100.")
    stage: str = Field(description="queued, speech, audio, face, motion, render, done, ...")
    video_url: str | None = None
    audio_url: str | None = None
    error: ErrorInfo | None = None
    log_tail: list[str] | None = Field(None, description="Last worker log lines of a failed job.")
    reused_from: str | None = Field(None, description="Job whose result was reused, if any.")
    client_ref: str | None = Field(None, description="The `client_ref` sent with the request.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


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


class TtsRequest(BaseModel):
    """JSON body of POST /tts."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="What to say.")
    lang: str | None = Field(
        None, pattern=LANG_PATTERN, description="Language code; default FACECAST_DEFAULT_LANG (de)."
    )
    voice: str | None = Field(None, max_length=64, description="Backend voice name.")
    webhook: str | None = Field(
        None, max_length=2048, description="URL that gets a signed POST when the job ends."
    )
    client_ref: str | None = Field(
        None, max_length=256, description="Your reference; returned in views and webhooks."
    )


class TtsForm(TtsRequest):
    """Multipart body of POST /tts (adds a voice sample for cloning backends)."""

    voice_clone_wav: bytes | None = Field(
        None,
        description="3-30 s recording (any audio format) of the voice to clone; needs a "
        "cloning backend (XTTS).",
    )


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


class Readiness(BaseModel):
    """GET /ready: is the broker reachable, is a warmed-up worker alive?"""

    ready: bool
    checks: dict[str, Check]
    error: ErrorInfo | None = None

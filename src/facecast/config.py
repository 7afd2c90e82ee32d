"""The one settings class: every knob is a FACECAST_* environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import platformdirs
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
"""A list setting written as `a,b,c` in the environment."""


def parse_storage_url(url: str) -> tuple[str, str, str]:
    """(scheme, bucket or folder, prefix) of FACECAST_STORAGE_URL; ValueError when malformed."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if not parsed.path:
            raise ValueError(f"FACECAST_STORAGE_URL {url!r} names no folder")
        return "file", parsed.path, ""
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"FACECAST_STORAGE_URL {url!r} names no bucket")
        return "s3", parsed.netloc, parsed.path.strip("/")
    raise ValueError(f"FACECAST_STORAGE_URL must be file:///path or s3://bucket/prefix: {url!r}")


class Settings(BaseSettings):
    """facecast settings, read from the environment (prefix FACECAST_) or a .env file."""

    model_config = SettingsConfigDict(env_prefix="FACECAST_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where jobs keep their artifacts.")
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("FACECAST_REDIS_URL", "REDIS_URL"),
        description="Celery broker and result store; unset means a server-less local queue.",
    )
    default_lang: str = Field("de", description="Speech language when a request names none.")
    default_fps: int = Field(25, ge=1, le=60, description="Output frames per second.")
    default_size: int = Field(512, ge=128, le=2048, description="Output square edge in pixels.")
    max_audio_seconds: float = Field(600.0, gt=0, description="Longest accepted speech.")
    max_text_chars: int = Field(5000, gt=0, description="Longest accepted text.")
    max_upload_bytes: int = Field(15 * 1024 * 1024, gt=0, description="Largest accepted upload.")
    max_image_pixels: int = Field(
        200_000_000, gt=0, description="Largest photo in pixels (JPEG is decoded reduced)."
    )
    decode_concurrency: int = Field(
        2, ge=1, description="Photos the API checks or searches for faces at the same time."
    )
    decode_wait_seconds: float = Field(
        20.0, gt=0, description="How long an upload waits for a free photo-checking slot (503)."
    )
    max_job_cpu_seconds: float = Field(
        1800.0,
        gt=0,
        description="Largest estimated CPU cost of one job (facecast.cost: speech, frames, "
        "size, upscaling); more is refused at submit with 400 job_too_costly.",
    )
    key_cpu_budget_seconds: float = Field(
        7200.0,
        gt=0,
        description="Estimated CPU-seconds one API key (or, without keys, all clients) may "
        "have queued and running at once; more is refused with 429 and Retry-After.",
    )
    retention_hours: float = Field(72.0, gt=0, description="Finished jobs are removed after this.")
    job_soft_time_limit: int = Field(600, gt=0, description="Seconds before a job is stopped.")
    job_time_limit: int = Field(660, gt=0, description="Seconds before a worker kills a job.")
    tts_wait_seconds: float = Field(20.0, ge=0, description="How long POST /tts waits inline.")
    xtts_model_dir: Path | None = Field(
        None,
        description="XTTS-v2 weights (config.json, model.pth, vocab.json), if the operator has "
        "them; may be read-only. Non-commercial licence (Coqui Public Model Licence).",
    )
    voice_cache_dir: Path | None = Field(
        None,
        description="Where cloned voices (XTTS conditioning latents) are cached per sample; "
        "unset means <data dir>/voice-cache.",
    )
    voices_dir: Path | None = Field(
        None,
        description="Folder of Piper voices (NAME.onnx + NAME.onnx.json) offered besides the "
        "built-in ones.",
    )
    noncommercial_voices: bool = Field(
        False,
        description="Let voices whose terms forbid or leave unclear commercial use (the "
        "[voices] extra's en_US-joe-medium) be a language's default voice; off, they are used "
        "only when asked for by name.",
    )
    rates_file: Path | None = Field(
        None,
        description="Where this host's measured render rates (for time estimates) are kept; "
        "unset means ~/.cache/facecast/rates-<host name>.json.",
    )
    models_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("facecast")) / "models",
        description="Operator model files (liveportrait/, wav2lip/) and converted ONNX caches; "
        "default: the user's data folder (~/.local/share/facecast/models on Linux), the same "
        "from every working directory. The service images set /models.",
    )
    allow_noncommercial: bool = Field(
        False, description="Enable backends whose weights forbid commercial use (Wav2Lip)."
    )
    cpu_max_gpu_seconds: float = Field(
        10.0,
        ge=0,
        description="Longest clip a GPU-class renderer (LivePortrait) renders on the CPU "
        "unless the job forces it.",
    )
    # Job service (API + workers).
    public_url: str | None = Field(
        None, description="Base URL put in download links; unset means the URL the client called."
    )
    animate_queue: str = Field("default", description="Celery queue for renders (gpu: GPU hosts).")
    tts_queue: str = Field("default", description="Celery queue for speech synthesis.")
    broker_poll_seconds: float = Field(
        0.1, gt=0, description="Polling interval of the server-less (filesystem) queue."
    )
    progress_interval_seconds: float = Field(
        0.2, ge=0, description="Least time between two progress updates a worker writes."
    )
    stream_poll_seconds: float = Field(
        0.2, gt=0, description="How often WebSocket and SSE streams look for new progress."
    )
    worker_heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a worker process says it is alive."
    )
    worker_warmup: bool = Field(True, description="Load the engine when a worker process starts.")
    job_max_attempts: int = Field(
        2, ge=1, description="Deliveries of one job (a lost worker requeues it) before it fails."
    )
    sweep_interval_seconds: float = Field(
        3600.0, gt=0, description="How often the API removes jobs older than the retention."
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="How long `facecast serve` lets workers finish on Ctrl-C."
    )
    # Safety and access.
    nudity_screen: bool = Field(
        True, description="Screen source photos for explicit content before rendering."
    )
    nudity_model: Path | None = Field(
        None,
        description="The screening ONNX model; unset means `320n.onnx` of the installed "
        "nudenet package (installed with --no-deps, see deploy/README.md).",
    )
    nudity_threshold: float = Field(
        0.5, gt=0, le=1, description="Detector score above which a photo counts as explicit."
    )
    api_keys: CommaList = Field(
        default_factory=list,
        description="Accepted `Authorization: Bearer` keys (comma-separated); empty: no keys.",
    )
    admin_keys: CommaList = Field(
        default_factory=list,
        description="Keys with the admin role (comma-separated): they see and cancel every job; "
        "keys in FACECAST_API_KEYS see only the jobs they created.",
    )
    link_secret: str | None = Field(
        None,
        description="HMAC key that signs download links; unset means one derived from the keys.",
    )
    anonymous_access: bool | None = Field(
        None,
        description="Serve without API keys; unset means only when `facecast serve` binds a "
        "loopback address.",
    )
    cors_origins: CommaList = Field(
        default_factory=list, description="Browser origins allowed to call the API (CORS)."
    )
    allowed_hosts: CommaList = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="`Host` header values the API answers (no port; `*`: any). The host of "
        "FACECAST_PUBLIC_URL is added; `facecast serve --host X` adds X.",
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: none (forwarded headers are ignored).",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A client must send its request headers within this time."
    )
    read_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest pause while a client sends its request body."
    )
    body_timeout_seconds: float = Field(
        300.0, gt=0, description="A client must send its whole request body within this time."
    )
    rate_limit_per_minute: int = Field(
        60, ge=0, description="Job submissions per minute per API key (or client); 0: no limit."
    )
    idempotency_hours: float = Field(
        24.0, gt=0, description="How long an Idempotency-Key keeps answering with its job."
    )
    webhook_secret: str | None = Field(
        None, description="HMAC-SHA256 key that signs webhooks; unset means webhooks are refused."
    )
    webhook_max_attempts: int = Field(5, ge=1, description="Deliveries tried per webhook.")
    webhook_backoff_seconds: float = Field(
        2.0, ge=0, description="Wait before the first webhook retry; doubles each time."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest pause while connecting to or reading from a receiver."
    )
    webhook_deadline_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest one webhook delivery may take in all (connect, send, the whole "
        "answer); a slower receiver counts as failed and is retried later.",
    )
    webhook_allow_private: bool = Field(
        False, description="Allow webhook URLs on loopback and private networks."
    )
    # Storage beyond one disk.
    storage_url: str | None = Field(
        None,
        description="Where artifacts live: file:///path (the data directory; the default) or "
        "s3://bucket/prefix (any S3-compatible store; AWS_* variables for credentials and "
        "endpoint; the data directory then only holds working copies).",
    )
    lost_job_seconds: int | None = Field(
        None,
        gt=0,
        description="How long a job whose worker host vanished (no acknowledgement) waits "
        "before another worker takes it over; unset: twice the hard time limit plus 5 minutes. "
        "Must exceed the longest job, or a running job is started twice.",
    )
    url_ttl: int = Field(
        3600,
        gt=0,
        description="Seconds a signed download link (`?sig=...&exp=...`) and a presigned "
        "download URL (s3:// storage) stay valid.",
    )
    s3_public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#@\s]+(/[^?#\s]*)?$",
        description="s3:// storage: the store's address as clients reach it (e.g. "
        "https://media.example.com); presigned download URLs are signed for it. Unset with "
        "AWS_ENDPOINT_URL set (a private store): downloads are streamed through the API, so "
        "the internal endpoint is never shown.",
    )
    proxy_downloads: bool = Field(
        False,
        description="s3:// storage: stream downloads through the API (with Range) "
        "instead of redirecting to presigned URLs.",
    )
    # Live sessions (POST /live): WebRTC, one rendering process per session.
    live_capacity: int = Field(
        3,
        ge=0,
        description="Live sessions this API host runs at once (each renders in a process of "
        "its own); more answer 503 with Retry-After. A 512 px session at 25 fps costs about "
        "a third of a core (bench/live.py, README): 3 held 24 fps on a shared 2-core host.",
    )
    live_idle_seconds: float = Field(
        300.0, gt=0, description="A live session with nothing said for this long ends."
    )
    live_max_seconds: float = Field(
        1800.0, gt=0, description="A live session ends this long after it started."
    )
    live_start_seconds: float = Field(
        60.0,
        gt=0,
        description="How long POST /live waits for its session process to rig the photo and "
        "answer the offer.",
    )
    watermark: str | None = Field(
        None, max_length=64, description="Visible text drawn into every video, e.g. 'AI'."
    )

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        if value:
            parse_storage_url(value)
        return value

    @model_validator(mode="after")
    def _s3_needs_redis(self) -> Settings:
        if self.storage_url and self.storage_url.startswith("s3:") and not self.redis_url:
            raise ValueError("s3:// storage is shared by several hosts: set FACECAST_REDIS_URL too")
        return self

    @property
    def local_dir(self) -> Path:
        """This process's data directory: the file:// storage URL's folder, else data_dir."""
        if self.storage_url and self.storage_url.startswith("file:"):
            return Path(parse_storage_url(self.storage_url)[1])
        return self.data_dir

    @field_validator(
        "api_keys",
        "admin_keys",
        "cors_origins",
        "allowed_hosts",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings built once per process; tests call get_settings.cache_clear() after changing env."""
    return Settings()

"""Errors a user can cause and fix. Each carries a stable code for the API and a plain message.

`ErrorCode` is the one list of those codes: the engine's errors, the service's refusals and the
ways a job can fail. The API, the worker, the OpenAPI schema and the Python client all use it.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every error code the engine, the API or a job can answer with (the wire values)."""

    # Bad input the engine finds.
    INVALID_INPUT = "invalid_input"
    INVALID_IMAGE = "invalid_image"
    NO_FACE = "no_face"
    INVALID_FACE_CHOICE = "invalid_face_choice"
    INVALID_AUDIO = "invalid_audio"
    AUDIO_TOO_LONG = "audio_too_long"
    INVALID_TEXT = "invalid_text"
    INVALID_LEXICON = "invalid_lexicon"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    UNKNOWN_VOICE = "unknown_voice"
    SPEECH_TOO_LONG = "speech_too_long"
    INVALID_VOICE_SAMPLE = "invalid_voice_sample"
    VOICE_SAMPLE_MISSING = "voice_sample_missing"
    VOICE_SAMPLE_TOO_SHORT = "voice_sample_too_short"
    VOICE_SAMPLE_TOO_LONG = "voice_sample_too_long"
    INVALID_MANIFEST = "invalid_manifest"
    EXPLICIT_IMAGE = "explicit_image"
    # Features this installation lacks.
    BACKEND_UNAVAILABLE = "backend_unavailable"
    MODEL_UNAVAILABLE = "model_unavailable"
    SCREENING_UNAVAILABLE = "screening_unavailable"
    # Requests the API refuses.
    BAD_REQUEST = "bad_request"
    INVALID_REQUEST = "invalid_request"
    CONSENT_REQUIRED = "consent_required"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    NOT_FOUND = "not_found"
    NOT_CANCELABLE = "not_cancelable"
    AUDIO_NOT_READY = "audio_not_ready"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    INVALID_HOST = "invalid_host"
    ADMIN_ONLY = "admin_only"
    LINK_EXPIRED = "link_expired"
    RATE_LIMITED = "rate_limited"
    JOB_TOO_COSTLY = "job_too_costly"
    CPU_BUDGET_EXCEEDED = "cpu_budget_exceeded"
    HTTP_ERROR = "http_error"
    INVALID_OFFER = "invalid_offer"
    INVALID_MESSAGE = "invalid_message"
    # The service's own trouble.
    BUSY = "busy"
    NOT_READY = "not_ready"
    QUEUE_UNAVAILABLE = "queue_unavailable"
    DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
    STORAGE_FULL = "storage_full"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    INTERNAL_ERROR = "internal_error"
    LIVE_FAILED = "live_failed"
    # How a job can end other than done.
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker_lost"


SERVICE_FAULTS = frozenset(
    {
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.TIMEOUT,
        ErrorCode.WORKER_LOST,
        ErrorCode.QUEUE_UNAVAILABLE,
        ErrorCode.DEPENDENCY_UNAVAILABLE,
        ErrorCode.STORAGE_UNAVAILABLE,
        ErrorCode.STORAGE_FULL,
        ErrorCode.BUSY,
    }
)
"""Codes that are the service's fault, not the input's: retrying later may succeed."""


class FacecastError(Exception):
    """Base class: bad input or an unavailable feature; never a bug."""

    code: ErrorCode = ErrorCode.INVALID_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImageError(FacecastError):
    code = ErrorCode.INVALID_IMAGE


class NoFaceError(FacecastError):
    code = ErrorCode.NO_FACE


class FaceChoiceError(FacecastError):
    """The chosen face (`face_index`, `face_at`) is not in the photo."""

    code = ErrorCode.INVALID_FACE_CHOICE


class InvalidAudioError(FacecastError):
    code = ErrorCode.INVALID_AUDIO


class AudioTooLongError(FacecastError):
    code = ErrorCode.AUDIO_TOO_LONG


class InvalidTextError(FacecastError):
    code = ErrorCode.INVALID_TEXT


class UnsupportedLanguageError(FacecastError):
    code = ErrorCode.UNSUPPORTED_LANGUAGE


class BackendUnavailableError(FacecastError):
    code = ErrorCode.BACKEND_UNAVAILABLE


class CanceledError(FacecastError):
    code = ErrorCode.CANCELED


class SpeechTooLongError(FacecastError):
    """The text would take longer to say than FACECAST_MAX_AUDIO_SECONDS."""

    code = ErrorCode.SPEECH_TOO_LONG


class VoiceSampleError(FacecastError):
    """A voice sample for cloning that is missing, unreadable, too short or too long."""

    code = ErrorCode.INVALID_VOICE_SAMPLE

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

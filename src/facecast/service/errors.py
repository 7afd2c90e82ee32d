"""Errors of the job service itself, each with the HTTP status it answers with."""

from __future__ import annotations

from facecast.errors import ErrorCode, FacecastError


class ServiceError(FacecastError):
    """A request the service refuses; `status` is the HTTP status code, `headers` go along."""

    code = ErrorCode.BAD_REQUEST
    status = 400
    headers: dict[str, str] | None = None


class JobNotFoundError(ServiceError):
    code = ErrorCode.NOT_FOUND
    status = 404


class ConsentRequiredError(ServiceError):
    code = ErrorCode.CONSENT_REQUIRED
    status = 400


class InvalidRequestError(ServiceError):
    code = ErrorCode.INVALID_REQUEST
    status = 422


class IdempotencyConflictError(ServiceError):
    """An Idempotency-Key sent again with other fields or uploads than its first request."""

    code = ErrorCode.IDEMPOTENCY_CONFLICT
    status = 422


class NotCancelableError(ServiceError):
    code = ErrorCode.NOT_CANCELABLE
    status = 409


class AudioNotReadyError(ServiceError):
    code = ErrorCode.AUDIO_NOT_READY
    status = 409


class PayloadTooLargeError(ServiceError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    status = 413


class LinkExpiredError(ServiceError):
    """A genuine signed download link whose `exp` has passed."""

    code = ErrorCode.LINK_EXPIRED
    status = 403


class AdminOnlyError(ServiceError):
    """A tenant key asked for something only admin keys may see (every tenant's numbers)."""

    code = ErrorCode.ADMIN_ONLY
    status = 403


class UnauthorizedError(ServiceError):
    code = ErrorCode.UNAUTHORIZED
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class RateLimitedError(ServiceError):
    """Too many submissions; `Retry-After` says when the next one is accepted."""

    code = ErrorCode.RATE_LIMITED
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class StorageFullError(ServiceError):
    code = ErrorCode.STORAGE_FULL
    status = 507


class StorageUnavailableError(ServiceError):
    code = ErrorCode.STORAGE_UNAVAILABLE
    status = 503


class ServiceBusyError(ServiceError):
    """Every photo-checking slot stayed taken for too long; `Retry-After` says when to retry."""

    code = ErrorCode.BUSY
    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class QueueUnavailableError(ServiceError):
    code = ErrorCode.QUEUE_UNAVAILABLE
    status = 503


class JobFailedError(ServiceError):
    """A job the request waited for ended without a result; carries the job's own error."""

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class JobTooCostlyError(ServiceError):
    """The job's estimated CPU cost is above FACECAST_MAX_JOB_CPU_SECONDS."""

    code = ErrorCode.JOB_TOO_COSTLY
    status = 400


class CpuBudgetExceededError(ServiceError):
    """The key's queued and running jobs already use its CPU budget; retry after some end."""

    code = ErrorCode.CPU_BUDGET_EXCEEDED
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class DependencyUnavailableError(ServiceError):
    """Redis, the broker or the object store did not answer in time; retry shortly."""

    code = ErrorCode.DEPENDENCY_UNAVAILABLE
    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}

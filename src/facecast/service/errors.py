"""Errors of the job service itself, each with the HTTP status it answers with."""

from __future__ import annotations

from facecast.errors import FacecastError


class ServiceError(FacecastError):
    """A request the service refuses; `status` is the HTTP status code, `headers` go along."""

    code = "bad_request"
    status = 400
    headers: dict[str, str] | None = None


class JobNotFoundError(ServiceError):
    code = "not_found"
    status = 404


class ConsentRequiredError(ServiceError):
    code = "consent_required"
    status = 400


class InvalidRequestError(ServiceError):
    code = "invalid_request"
    status = 422


class IdempotencyConflictError(ServiceError):
    """An Idempotency-Key sent again with other fields or uploads than its first request."""

    code = "idempotency_conflict"
    status = 422


class NotCancelableError(ServiceError):
    code = "not_cancelable"
    status = 409


class AudioNotReadyError(ServiceError):
    code = "audio_not_ready"
    status = 409


class PayloadTooLargeError(ServiceError):
    code = "payload_too_large"
    status = 413


class LinkExpiredError(ServiceError):
    """A genuine signed download link whose `exp` has passed."""

    code = "link_expired"
    status = 403


class AdminOnlyError(ServiceError):
    """A tenant key asked for something only admin keys may see (every tenant's numbers)."""

    code = "admin_only"
    status = 403


class UnauthorizedError(ServiceError):
    code = "unauthorized"
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class RateLimitedError(ServiceError):
    """Too many submissions; `Retry-After` says when the next one is accepted."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class StorageFullError(ServiceError):
    code = "storage_full"
    status = 507


class StorageUnavailableError(ServiceError):
    code = "storage_unavailable"
    status = 503


class ServiceBusyError(ServiceError):
    """Every photo-checking slot stayed taken for too long; `Retry-After` says when to retry."""

    code = "busy"
    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class QueueUnavailableError(ServiceError):
    code = "queue_unavailable"
    status = 503


class JobFailedError(ServiceError):
    """A job the request waited for ended without a result; carries the job's own error."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class JobTooCostlyError(ServiceError):
    """The job's estimated CPU cost is above FACECAST_MAX_JOB_CPU_SECONDS."""

    code = "job_too_costly"
    status = 400


class CpuBudgetExceededError(ServiceError):
    """The key's queued and running jobs already use its CPU budget; retry after some end."""

    code = "cpu_budget_exceeded"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class DependencyUnavailableError(ServiceError):
    """Redis, the broker or the object store did not answer in time; retry shortly."""

    code = "dependency_unavailable"
    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}

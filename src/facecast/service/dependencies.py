"""Failures of the services the API depends on (Redis, the broker, the object store), told
apart from bugs: they answer 503 with Retry-After, never 500."""

from __future__ import annotations

import redis
from kombu.exceptions import OperationalError

from facecast.service.errors import DependencyUnavailableError

RETRY_AFTER_S = 5
"""What a client is told to wait when a dependency is down (Redis restarts in seconds)."""
MAX_CAUSES = 8
"""How far the chain of causes is followed."""
S3_UNAVAILABLE_CODES = frozenset(
    {"NoSuchBucket", "ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"}
)
"""Object-store error codes that say the store, not the request, is at fault."""


def _is_store_failure(exc: BaseException) -> bool:
    try:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
    except ImportError:  # no s3 extra: no object store to fail
        return False
    if isinstance(
        exc,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in S3_UNAVAILABLE_CODES or int(status or 0) >= 500
    return False


def dependency_exception_types() -> tuple[type[Exception], ...]:
    """The exception types a dependency raises (botocore's only with the s3 extra)."""
    types: list[type[Exception]] = [redis.exceptions.RedisError, OperationalError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return tuple(types)
    return (*types, BotoCoreError, ClientError)


def is_dependency_failure(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a dependency that failed or timed out."""
    seen: BaseException | None = exc
    for _ in range(MAX_CAUSES):
        if seen is None:
            return False
        if isinstance(
            seen,
            redis.exceptions.ConnectionError
            | redis.exceptions.TimeoutError
            | redis.exceptions.BusyLoadingError
            | OperationalError,
        ) or _is_store_failure(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unavailable(exc: BaseException) -> DependencyUnavailableError:
    """The 503 a client gets for `exc`; the detail stays in the operator's log."""
    return DependencyUnavailableError(
        "A service the API depends on is not answering; try again shortly.",
        retry_after=RETRY_AFTER_S,
    )

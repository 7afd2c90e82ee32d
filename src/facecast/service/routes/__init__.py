"""HTTP routes: each parses a request, calls the job service, returns a schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header

from facecast.service.schemas import ErrorResponse

IDEMPOTENCY_KEY = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string; a retry with the same key returns the same job.",
    ),
]

ERROR_DESCRIPTIONS = {
    400: "Bad input (the error code says what: invalid_image, consent_required, ...).",
    401: "An API key is required (`Authorization: Bearer <key>`).",
    403: "Not allowed: an expired download link, or a route for admin keys only.",
    404: "No such job or file.",
    409: "The job is in the wrong state for this.",
    413: "The upload is too large.",
    415: "Unsupported content type.",
    416: "The requested byte range is not satisfiable.",
    422: "A field is missing, unknown, repeated or out of range.",
    429: "Too many submissions; `Retry-After` says when to try again.",
    500: "The job failed inside the service.",
    503: "The queue or the storage cannot be reached.",
    507: "The server's storage is full.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all with the `{"error": {code, message}}` body."""
    return {s: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}

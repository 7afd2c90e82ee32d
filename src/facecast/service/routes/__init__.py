"""HTTP routes: each parses a request, calls the job service, returns a schema."""

from __future__ import annotations

from typing import Any

from facecast.service.schemas import ErrorResponse

ERROR_DESCRIPTIONS = {
    400: "Bad input (the error code says what: invalid_image, consent_required, ...).",
    404: "No such job or file.",
    409: "The job is in the wrong state for this.",
    413: "The upload is too large.",
    415: "Unsupported content type.",
    422: "A field is missing or out of range.",
    500: "The job failed inside the service.",
    503: "The queue cannot be reached.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all with the `{"error": {code, message}}` body."""
    return {s: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}

"""A Python client for the facecast API (httpx), sync and async.

    with FacecastClient("http://127.0.0.1:8000", api_key=None) as client:
        job = client.submit_text("photo.jpg", "Hallo!", RenderOptions(size=256), consent=True)
        for view in client.follow(job.job_id):
            print(view.stage, view.progress)
        client.download(job.job_id, "out.mp4")

`AsyncFacecastClient` has the same methods as coroutines (and `follow` as an async iterator).
Progress comes over the WebSocket, with server-sent events as the fallback (and polling when
neither is let through). Downloads resume where a previous attempt stopped (HTTP Range) and
follow the redirect to a presigned URL when the server stores results in S3. Every error the
API answers is raised as `FacecastAPIError` with the API's error code.
"""

from facecast.client.aio import AsyncFacecastClient
from facecast.client.sync import FacecastClient
from facecast.client.wire import (
    API_KEY_VARIABLE,
    FINAL_STATUSES,
    FacecastAPIError,
    Job,
    Voice,
    error_code,
    form_fields,
)
from facecast.errors import ErrorCode

__all__ = [
    "API_KEY_VARIABLE",
    "FINAL_STATUSES",
    "AsyncFacecastClient",
    "ErrorCode",
    "FacecastAPIError",
    "FacecastClient",
    "Job",
    "Voice",
    "error_code",
    "form_fields",
]

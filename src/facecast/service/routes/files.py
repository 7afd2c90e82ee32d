"""GET /files/{job_id}/{name}: finished videos and audio, with HTTP Range so players can seek.

With API keys configured a file is served for a signed link (`?sig=`, as `video_url` gives it)
or to the job's owner (and admins) by `Authorization`; anyone else gets 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from facecast.service.access import SIGNATURE_PARAM, authenticate
from facecast.service.deps import ServiceDep, app_settings
from facecast.service.routes import error_responses
from facecast.service.storage import AUDIO, VIDEO

router = APIRouter(tags=["files"])

MEDIA_TYPES = {VIDEO: "video/mp4", AUDIO: "audio/wav"}


@router.head("/files/{job_id}/{name}", include_in_schema=False)
@router.get(
    "/files/{job_id}/{name}",
    response_class=FileResponse,
    responses={
        200: {"description": "The file.", "content": {t: {} for t in MEDIA_TYPES.values()}},
        206: {"description": "The requested byte range."},
        **error_responses(401, 404, 416),
    },
)
def download(
    job_id: str,
    name: str,
    service: ServiceDep,
    request: Request,
    sig: Annotated[
        str | None,
        Query(alias=SIGNATURE_PARAM, max_length=64, description="Signature of the link."),
    ] = None,
) -> FileResponse:
    """`video.mp4` or `audio.wav` of a finished job (Range requests answer 206; HEAD works)."""
    caller = None
    if request.headers.get("authorization"):
        caller = authenticate(request, app_settings(request))
    path = service.download(job_id, name, caller, sig)
    return FileResponse(path, media_type=MEDIA_TYPES[name], filename=f"{job_id}-{name}")

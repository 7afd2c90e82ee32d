"""GET /files/{job_id}/{name}: finished videos and audio, with HTTP Range so players can seek."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from facecast.service.deps import ServiceDep
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
        **error_responses(404),
    },
)
def download(job_id: str, name: str, service: ServiceDep) -> FileResponse:
    """`video.mp4` or `audio.wav` of a finished job (Range requests answer 206; HEAD works)."""
    path = service.download(job_id, name)
    return FileResponse(path, media_type=MEDIA_TYPES[name], filename=f"{job_id}-{name}")

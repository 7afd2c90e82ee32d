"""GET /files/{job_id}/{name}: finished videos and audio, with HTTP Range so players can seek."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from facecast.service.deps import ServiceDep
from facecast.service.routes import error_responses
from facecast.service.storage import AUDIO, VIDEO
from facecast.video import HLS_PLAYLIST

router = APIRouter(tags=["files"])

MEDIA_TYPES = {VIDEO: "video/mp4", AUDIO: "audio/wav"}
STREAM_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
}
PLAYLIST_CACHE = "no-cache"
"""The playlist grows while the job renders: players must ask again each time."""
SEGMENT_CACHE = "public, max-age=86400, immutable"


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


@router.get(
    "/files/{job_id}/stream/{name}",
    response_class=FileResponse,
    responses={
        200: {"description": "The file.", "content": {t: {} for t in STREAM_TYPES.values()}},
        **error_responses(404),
    },
)
async def stream_file(job_id: str, name: str, service: ServiceDep) -> FileResponse:
    """The live HLS stream of a rendering job: `index.m3u8`, `init.mp4`, `seg00000.m4s`, ...

    The playlist (`#EXT-X-PLAYLIST-TYPE:EVENT`) grows by a ~1 s segment at a time and ends
    with `#EXT-X-ENDLIST` when the render is complete.
    """
    path = await run_in_threadpool(service.stream_file, job_id, name)
    cache = PLAYLIST_CACHE if name == HLS_PLAYLIST else SEGMENT_CACHE
    return FileResponse(
        path, media_type=STREAM_TYPES[path.suffix], headers={"Cache-Control": cache}
    )

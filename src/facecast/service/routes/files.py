"""GET /files/{job_id}/{name}: finished videos and audio, with HTTP Range so players can seek.

With an S3 store the API answers with a redirect to a presigned, expiring URL (the bucket
serves the bytes and Range itself), or, with FACECAST_PROXY_DOWNLOADS=true, streams the object
through with Range support. The live HLS stream of a rendering job is under
/files/{job_id}/stream/.

With API keys configured a file is served for a signed link (`?sig=...&exp=...`, as `video_url`
and `stream_url` give it, until `exp`) or to the job's owner (and admins) by `Authorization`;
anyone else gets 404 (a genuine but expired link: 403 `link_expired`). A signed playlist hands
its signature on to the segments it names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from facecast.captions import MEDIA_TYPES as CAPTION_TYPES
from facecast.errors import ErrorCode
from facecast.service.access import EXPIRY_PARAM, SIGNATURE_PARAM, Principal, authenticate
from facecast.service.deps import ServiceDep, app_settings
from facecast.service.errors import ServiceError
from facecast.service.jobs import JobService
from facecast.service.routes import error_responses
from facecast.service.storage import AUDIO, CAPTIONS, VIDEO, VIDEO_WEBM, RemoteFile

router = APIRouter(tags=["files"])

MEDIA_TYPES = {
    VIDEO: "video/mp4",
    VIDEO_WEBM: "video/webm",
    AUDIO: "audio/wav",
    **{name: CAPTION_TYPES[Path(name).suffix] for name in CAPTIONS},
}
STREAM_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".vtt": "text/vtt",
}
PLAYLIST_CACHE = "no-cache"
"""The playlist grows while the job renders: players must ask again each time."""
SEGMENT_CACHE = "public, max-age=86400, immutable"
BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
PLAYLIST_URI = re.compile(r'^(?!#)(\S+)$|(URI=")([^"?]+)(")', re.M)
"""Segment lines and URI="..." attributes of an HLS playlist (no query string yet)."""
SignatureQuery = Annotated[
    str | None,
    Query(alias=SIGNATURE_PARAM, max_length=64, description="Signature of the link."),
]
ExpiryQuery = Annotated[
    int | None,
    Query(
        alias=EXPIRY_PARAM,
        ge=0,
        le=2**40,
        description="When the signed link expires (Unix seconds); covered by `sig`.",
    ),
]


def _caller(request: Request) -> Principal | None:
    """The authenticated caller when the request carries a key (files also open by link)."""
    if request.headers.get("authorization"):
        return authenticate(request, app_settings(request))
    return None


def signed_playlist(text: str, sig: str, exp: int | None) -> str:
    """The playlist with `?sig=...&exp=...` on every file it names, so players fetch them by
    link too (until the same expiry)."""
    query = f"{SIGNATURE_PARAM}={sig}"
    if exp is not None:
        query += f"&{EXPIRY_PARAM}={exp}"

    def sign(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return f"{match.group(1)}?{query}"
        return f"{match.group(2)}{match.group(3)}?{query}{match.group(4)}"

    return PLAYLIST_URI.sub(sign, text)


class RangeNotSatisfiableError(ServiceError):
    code = ErrorCode.RANGE_NOT_SATISFIABLE
    status = 416


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range `Range` header; None for the whole file."""
    if not header:
        return None
    match = BYTE_RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None  # not a single byte range: RFC 9110 lets us send the whole file
    first, last = match.group(1), match.group(2)
    if not first:  # the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiableError(f"The range {header[:64]!r} is outside the {size} bytes.")
    return start, end


def proxied(
    service: JobService,
    remote: RemoteFile,
    request: Request,
    media_type: str,
    headers: dict[str, str],
) -> Response:
    """Stream an object of the shared store through the API, honouring a Range request."""
    wanted = byte_range(request.headers.get("range"), remote.size)
    start, end = wanted if wanted is not None else (0, remote.size - 1)
    headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{remote.size}"
    status = 206 if wanted is not None else 200
    if request.method == "HEAD" or remote.size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)

    def body() -> Iterator[bytes]:
        yield from service.storage.read_range(remote, start, end)

    return StreamingResponse(body(), status_code=status, headers=headers, media_type=media_type)


@router.head("/files/{job_id}/{name}", include_in_schema=False)
@router.get(
    "/files/{job_id}/{name}",
    response_class=FileResponse,
    responses={
        200: {"description": "The file.", "content": {t: {} for t in MEDIA_TYPES.values()}},
        206: {"description": "The requested byte range."},
        307: {"description": "S3 storage: a presigned URL that serves the file (and Range)."},
        **error_responses(401, 403, 404, 416),
    },
)
async def download(
    job_id: str,
    name: str,
    request: Request,
    service: ServiceDep,
    sig: SignatureQuery = None,
    exp: ExpiryQuery = None,
) -> Response:
    """`video.mp4` or `audio.wav` of a finished job (Range requests answer 206; HEAD works)."""
    target = await run_in_threadpool(service.download, job_id, name, _caller(request), sig, exp)
    if isinstance(target, Path):
        return FileResponse(target, media_type=MEDIA_TYPES[name], filename=f"{job_id}-{name}")
    if target.url is not None:
        return RedirectResponse(target.url, status_code=307)
    disposition = {"Content-Disposition": f'attachment; filename="{job_id}-{name}"'}
    return proxied(service, target, request, MEDIA_TYPES[name], disposition)


@router.get(
    "/files/{job_id}/stream/{name}",
    response_class=FileResponse,
    responses={
        200: {"description": "The file.", "content": {t: {} for t in STREAM_TYPES.values()}},
        **error_responses(401, 403, 404),
    },
)
async def stream_file(
    job_id: str,
    name: str,
    request: Request,
    service: ServiceDep,
    sig: SignatureQuery = None,
    exp: ExpiryQuery = None,
) -> Response:
    """The live HLS stream of a rendering job: `index.m3u8`, `init.mp4`, `seg00000.m4s`, ...

    The playlist (`#EXT-X-PLAYLIST-TYPE:EVENT`) grows by a ~1 s segment at a time and ends
    with `#EXT-X-ENDLIST` when the render is complete. A job with captions makes `index.m3u8`
    a master playlist: the video in `video.m3u8`, a WebVTT subtitle rendition in
    `captions.m3u8` (`captions.vtt`).
    """
    target = await run_in_threadpool(service.stream_file, job_id, name, _caller(request), sig, exp)
    playlist = name.endswith(".m3u8")
    cache = {"Cache-Control": PLAYLIST_CACHE if playlist else SEGMENT_CACHE}
    media_type = STREAM_TYPES[Path(name).suffix]
    if playlist:
        # The playlist is replaced after every segment: read it once, so that the length sent
        # is the length of what is sent. A signed one hands its signature on to its segments.
        content = await run_in_threadpool(_read_whole, service, target)
        if sig:
            content = signed_playlist(content.decode(), sig, exp).encode()
        return Response(content, media_type=media_type, headers=cache)
    if isinstance(target, Path):
        return FileResponse(target, media_type=media_type, headers=cache)
    return proxied(service, target, request, media_type, cache)


def _read_whole(service: JobService, target: Path | RemoteFile) -> bytes:
    """A small file's bytes, from the data directory or the shared store."""
    return service.storage.read_whole(target)

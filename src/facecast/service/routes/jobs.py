"""POST /animate, GET/DELETE /jobs/{id}, and live progress over WebSocket and server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import anyio
from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from facecast.errors import FacecastError
from facecast.service.access import authenticate
from facecast.service.deps import (
    BaseUrlDep,
    PrincipalDep,
    ServiceDep,
    SubmitterDep,
    app_settings,
)
from facecast.service.forms import AnimateFields, animate_form, chosen_options
from facecast.service.idempotency import idempotency_scope
from facecast.service.inputs import check_fields
from facecast.service.jobs import JobService
from facecast.service.routes import IDEMPOTENCY_KEY, error_responses
from facecast.service.schemas import (
    ErrorInfo,
    ErrorResponse,
    FacesResult,
    JobCreated,
    JobDeleted,
    JobView,
)
from facecast.service.submission import AnimateSubmission, build_options

router = APIRouter(tags=["jobs"])

SSE_KEEPALIVE_S = 15.0
WS_NOT_FOUND = 4404
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: one `data:` line with a JobView (JSON) per change.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


if TYPE_CHECKING:
    AnimateForm = AnimateFields  # what every derived form has
else:
    AnimateForm = animate_form()
UPLOADS = frozenset({"source_image", "audio", "voice_clone_wav"})
ANIMATE_FIELDS = UPLOADS | AnimateForm.model_fields.keys()
FACES_FIELDS = frozenset({"source_image"})


def _sent(upload: UploadFile | None) -> BinaryIO | None:
    """The uploaded file; None also for the empty, unnamed part browsers send for a file
    input left empty."""
    if upload is None or not (upload.filename or upload.size):
        return None
    return upload.file


def _given(value: str | None) -> str | None:
    """Multipart clients send empty strings for unset fields."""
    return value if value else None


async def _known_fields(request: Request) -> None:
    """422 for unknown or repeated form fields (FastAPI would ignore or pick one)."""
    form = await request.form()
    check_fields((name for name, _ in form.multi_items()), ANIMATE_FIELDS)


async def _known_face_fields(request: Request) -> None:
    form = await request.form()
    check_fields((name for name, _ in form.multi_items()), FACES_FIELDS)


@router.post(
    "/animate",
    status_code=202,
    response_model=JobCreated,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 503, 507),
    summary="Animate a photo with audio, an audio_id from POST /tts, or text",
    dependencies=[Depends(_known_fields)],
)
def animate(
    service: ServiceDep,
    submitter: SubmitterDep,
    source_image: Annotated[UploadFile, File(description="The portrait: JPEG, PNG, WebP or HEIC.")],
    form: Annotated[AnimateForm, Form()],
    audio: Annotated[
        UploadFile | None, File(description="Speech to lip-sync (WAV, MP3, ...).")
    ] = None,
    voice_clone_wav: Annotated[
        UploadFile | None,
        File(
            description="3-30 s recording (any audio format) whose voice speaks `text`; needs "
            "a cloning backend (XTTS)."
        ),
    ] = None,
    idempotency_key: IDEMPOTENCY_KEY = None,
) -> JobCreated:
    """Queue a render; poll GET /jobs/{job_id} or follow /ws/jobs/{job_id} for progress.

    A retry with the same `Idempotency-Key` header answers with the job of the first request.
    """
    has_audio = audio is not None and bool(audio.filename or audio.size)
    text, audio_id = form.text, _given(form.audio_id)
    spoken = text is not None and text != ""
    options = build_options(
        service.settings, chosen_options(form), speaks=spoken and not has_audio and not audio_id
    )
    submission = AnimateSubmission(
        image=source_image.file,
        consent=form.consent,
        audio=audio.file if has_audio and audio is not None else None,
        audio_filename=audio.filename if audio is not None else None,
        audio_id=audio_id,
        text=text if spoken else None,
        options=options,
        voice_sample=_sent(voice_clone_wav),
        webhook=_given(form.webhook),
        client_ref=_given(form.client_ref),
        idempotency=idempotency_scope(submitter.id, "animate", idempotency_key),
        owner=submitter,
        transcript=_given(form.transcript),
    )
    submitted = service.submit_animate(submission)
    per_second, estimated = service.cpu_cost(submitted.state.job_id)
    return JobCreated(
        job_id=submitted.state.job_id,
        status=submitted.state.status,
        client_ref=service.view(submitted.state, "").client_ref,
        cpu_seconds_per_video_second=per_second,
        estimated_seconds=estimated,
    )


@router.post(
    "/preview",
    response_class=Response,
    responses={
        200: {"description": "The first frame as PNG.", "content": {"image/png": {}}},
        **error_responses(400, 401, 413, 422, 429, 503),
    },
    summary="The video's first frame as PNG, before the video is made",
    dependencies=[Depends(_known_fields)],
)
def preview(
    service: ServiceDep,
    _: SubmitterDep,
    source_image: Annotated[UploadFile, File(description="The portrait: JPEG, PNG, WebP or HEIC.")],
    form: Annotated[AnimateForm, Form()],
) -> Response:
    """The first frame of the video POST /animate would make with the same fields (the face
    at rest, framed and watermarked as the video will be), so that an app can show it at
    once. The fields that do not change it (text, voice, captions, ...) are accepted and
    left aside; a repeated preview of the same photo takes a fraction of a second."""
    options = build_options(service.settings, chosen_options(form), speaks=False)
    png = service.preview(source_image.file, options)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post(
    "/faces",
    response_model=FacesResult,
    responses=error_responses(400, 401, 413, 422, 429, 503),
    summary="The faces in a photo, with their boxes, so that a user can choose one",
    dependencies=[Depends(_known_face_fields)],
)
def faces(
    service: ServiceDep,
    _: SubmitterDep,
    source_image: Annotated[UploadFile, File(description="The photo: JPEG, PNG, WebP or HEIC.")],
) -> FacesResult:
    """Faces largest first; send one's `index` as `face_index` (or a point in its box as
    `face_at`) with POST /animate. A photo without a face answers an empty list."""
    return service.find_faces(source_image.file)


@router.get("/jobs/{job_id}", response_model=JobView, responses=error_responses(401, 404))
def get_job(
    job_id: str, service: ServiceDep, base_url: BaseUrlDep, caller: PrincipalDep
) -> JobView:
    """Status, progress, links and (for failed jobs) a stable error code and message."""
    return service.view(service.get(job_id, caller), base_url)


@router.delete(
    "/jobs/{job_id}",
    response_model=JobView | JobDeleted,
    responses=error_responses(401, 404, 409),
)
def cancel_job(
    job_id: str, service: ServiceDep, base_url: BaseUrlDep, caller: PrincipalDep
) -> JobView | JobDeleted:
    """Cancel a queued or running job (its JobView; a running one stops within moments), or
    delete a finished one (done, error, canceled, rejected) for good: its photo, audio, voice
    sample, video, stream and captions leave the data directory and the object store, and the
    job answers 404 from then on (JobDeleted lists what was removed)."""
    outcome = service.delete(job_id, caller)
    if isinstance(outcome, JobDeleted):
        return outcome
    return service.view(outcome, base_url)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={**SSE_RESPONSE, **error_responses(401, 404)},
)
async def job_events(
    job_id: str, service: ServiceDep, base_url: BaseUrlDep, caller: PrincipalDep
) -> StreamingResponse:
    """Server-sent events: the job view on every change, until a final state."""
    await run_in_threadpool(service.get, job_id, caller)

    async def stream() -> AsyncIterator[str]:
        number = 0
        async for state in service.watch(job_id, SSE_KEEPALIVE_S):
            if state is None:
                yield ": keepalive\n\n"
                continue
            number += 1
            view = await run_in_threadpool(service.view, state, base_url)
            yield f"id: {number}\ndata: {view.model_dump_json()}\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _send_progress(
    websocket: WebSocket, service: JobService, job_id: str, base_url: str
) -> None:
    """Send the job view on every change until the job is final."""
    async for state in service.watch(job_id, SSE_KEEPALIVE_S):
        if state is not None:
            view = await run_in_threadpool(service.view, state, base_url)
            await websocket.send_text(view.model_dump_json())


async def _until_disconnect(websocket: WebSocket) -> None:
    """Return once the client has gone (clients send nothing else)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        continue


@router.websocket("/ws/jobs/{job_id}")
async def job_socket(
    websocket: WebSocket, job_id: str, service: ServiceDep, base_url: BaseUrlDep
) -> None:
    """WebSocket: a JSON job view on every change; closed after the final state."""
    await websocket.accept()
    try:
        caller = authenticate(websocket, app_settings(websocket))
        await run_in_threadpool(service.get, job_id, caller)
    except FacecastError as exc:
        body = ErrorResponse(error=ErrorInfo(code=exc.code, message=exc.message))
        await websocket.send_text(body.model_dump_json())
        await websocket.close(code=WS_NOT_FOUND)
        return
    client_gone = False
    async with anyio.create_task_group() as group:

        async def watch_client() -> None:
            nonlocal client_gone
            await _until_disconnect(websocket)
            client_gone = True
            group.cancel_scope.cancel()  # nobody listens: stop watching the job

        group.start_soon(watch_client)
        try:
            await _send_progress(websocket, service, job_id, base_url)
        except (WebSocketDisconnect, FacecastError):
            client_gone = True  # the client left, or the job was removed meanwhile
        group.cancel_scope.cancel()
    if not client_gone:
        await websocket.close()

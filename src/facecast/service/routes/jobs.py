"""POST /animate, GET/DELETE /jobs/{id}, and live progress over WebSocket and server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, BinaryIO

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
from facecast.options import (
    MAX_PITCH,
    MAX_RATE,
    MAX_VOLUME,
    MIN_PITCH,
    MIN_RATE,
    MIN_VOLUME,
    CaptionMode,
    Framing,
    VideoFormat,
)
from facecast.service.access import authenticate
from facecast.service.deps import (
    BaseUrlDep,
    PrincipalDep,
    ServiceDep,
    SubmitterDep,
    app_settings,
)
from facecast.service.inputs import check_fields, parse_point
from facecast.service.jobs import AnimateSubmission, JobService, build_options, idempotency_scope
from facecast.service.routes import IDEMPOTENCY_KEY, error_responses
from facecast.service.schemas import (
    LANG_PATTERN,
    LEXICON_HELP,
    LEXICON_MAX_CHARS,
    PITCH_HELP,
    RATE_HELP,
    VOLUME_HELP,
    ErrorInfo,
    ErrorResponse,
    FacesResult,
    JobCreated,
    JobDeleted,
    JobView,
)

router = APIRouter(tags=["jobs"])

SSE_KEEPALIVE_S = 15.0
WS_NOT_FOUND = 4404
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: one `data:` line with a JobView (JSON) per change.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


ANIMATE_FIELDS = frozenset(
    {
        "source_image",
        "consent",
        "audio",
        "audio_id",
        "text",
        "lang",
        "voice",
        "voice_clone_wav",
        "rate",
        "pitch",
        "volume",
        "fps",
        "size",
        "full_frame",
        "framing",
        "webhook",
        "client_ref",
        "face_index",
        "face_at",
        "renderer",
        "refine",
        "upscale",
        "force_cpu",
        "expression",
        "seed",
        "restore",
        "lexicon",
        "captions",
        "caption_highlight",
        "transcript",
        "format",
    }
)
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
    consent: Annotated[
        bool, Form(description="Must be true: the uploader confirms the person agreed.")
    ] = False,
    audio: Annotated[
        UploadFile | None, File(description="Speech to lip-sync (WAV, MP3, ...).")
    ] = None,
    audio_id: Annotated[str | None, Form(description="An audio_id from POST /tts.")] = None,
    text: Annotated[
        str | None, Form(description="Text to speak (synthesised in the worker).")
    ] = None,
    lang: Annotated[
        str | None, Form(pattern=LANG_PATTERN, description="Language of `text`; default de.")
    ] = None,
    voice: Annotated[
        str | None,
        Form(
            max_length=128,
            description="`backend:voice`, a voice name from GET /voices, or male / female "
            "(the best voice of that kind in `lang`); default: the language's default voice.",
        ),
    ] = None,
    voice_clone_wav: Annotated[
        UploadFile | None,
        File(
            description="3-30 s recording (any audio format) whose voice speaks `text`; needs "
            "a cloning backend (XTTS)."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        Form(ge=MIN_RATE, le=MAX_RATE, description=RATE_HELP),
    ] = None,
    pitch: Annotated[
        float | None,
        Form(ge=MIN_PITCH, le=MAX_PITCH, description=PITCH_HELP),
    ] = None,
    volume: Annotated[
        float | None,
        Form(ge=MIN_VOLUME, le=MAX_VOLUME, description=VOLUME_HELP),
    ] = None,
    fps: Annotated[
        int | None, Form(ge=1, le=60, description="Frames per second; default 25.")
    ] = None,
    size: Annotated[
        int | None, Form(ge=128, le=2048, description="The video's shorter side; default 512.")
    ] = None,
    full_frame: Annotated[
        bool, Form(description="Animate the whole photo, not a crop (framing=full).")
    ] = False,
    framing: Annotated[
        Framing,
        Form(
            description="square (default), portrait 9:16 or landscape 16:9, framed on the "
            "face with `size` the shorter side (the photo extended where it is too small, "
            "never stretched); full: the whole photo, longer side `size`."
        ),
    ] = "square",
    webhook: Annotated[
        str | None,
        Form(max_length=2048, description="URL that gets a signed POST when the job ends."),
    ] = None,
    client_ref: Annotated[
        str | None,
        Form(max_length=256, description="Your reference; returned in views and webhooks."),
    ] = None,
    face_index: Annotated[
        int | None,
        Form(ge=0, le=63, description="Which face to animate (POST /faces; 0: the largest)."),
    ] = None,
    face_at: Annotated[
        str | None,
        Form(
            max_length=32,
            description="Animate the face at this point, `x,y` in pixels of the upright photo.",
        ),
    ] = None,
    renderer: Annotated[
        str | None,
        Form(max_length=64, description="warp (default) or liveportrait; see GET /backends."),
    ] = None,
    refine: Annotated[
        str | None, Form(max_length=64, description="Mouth refinement: wav2lip.")
    ] = None,
    upscale: Annotated[
        int | None,
        Form(
            description="Real-ESRGAN factor 2 or 4: the video is size x upscale. On a CPU "
            "worker about 1.9 s a 512 px frame (see GET /backends); `estimated_seconds` "
            "in the answer says about how long the whole video takes."
        ),
    ] = None,
    force_cpu: Annotated[
        bool, Form(description="Render a long clip with a GPU renderer on a CPU anyway.")
    ] = False,
    expression: Annotated[
        str | None,
        Form(
            pattern="^(keep|neutral)$",
            description="The mouth at rest: keep (default) the photo's expression (a smile "
            "with teeth stays one in pauses) or neutral (a closed, relaxed mouth). A photo "
            "caught mid-word or with the tongue out rests closed either way.",
        ),
    ] = None,
    lexicon: Annotated[
        str | None, Form(max_length=LEXICON_MAX_CHARS, description=LEXICON_HELP)
    ] = None,
    seed: Annotated[
        int | None,
        Form(
            ge=0,
            le=2**31 - 1,
            description="Blinks and head motion; same inputs and seed, "
            "same video (a local `facecast render --seed` gives the same frames); default 0.",
        ),
    ] = None,
    restore: Annotated[
        bool, Form(description="Super-resolve a face too small for `size` (default true).")
    ] = True,
    format: Annotated[
        VideoFormat,
        Form(
            description="mp4 (default: H.264/AAC, plays live while it renders) or webm "
            "(VP9/Opus, `video.webm`; no live stream)."
        ),
    ] = "mp4",
    captions: Annotated[
        CaptionMode | None,
        Form(
            description="vtt or srt: a caption file beside the video (`captions_url` of the "
            "done job); burn: drawn into the frames too (and WebVTT). A live stream gets a "
            "subtitle rendition. A recording needs `transcript`."
        ),
    ] = None,
    caption_highlight: Annotated[
        bool, Form(description="Burned-in captions colour the spoken word (default true).")
    ] = True,
    transcript: Annotated[
        str | None,
        Form(description="The words the recording (`audio` or `audio_id`) says: its captions."),
    ] = None,
    idempotency_key: IDEMPOTENCY_KEY = None,
) -> JobCreated:
    """Queue a render; poll GET /jobs/{job_id} or follow /ws/jobs/{job_id} for progress.

    A retry with the same `Idempotency-Key` header answers with the job of the first request.
    """
    has_audio = audio is not None and bool(audio.filename or audio.size)
    spoken = text is not None and text != ""
    options = build_options(
        service.settings,
        speaks=spoken and not has_audio and not audio_id,
        lang=_given(lang),
        voice=_given(voice),
        rate=rate,
        pitch=pitch,
        volume=volume,
        fps=fps,
        size=size,
        full_frame=full_frame,
        framing=framing,
        face_index=face_index,
        face_at=parse_point(_given(face_at)),
        renderer=_given(renderer) or "warp",
        refine=_given(refine),
        upscale=upscale,
        force_cpu=force_cpu,
        expression=_given(expression) or "keep",
        lexicon=_given(lexicon),
        seed=seed or 0,
        restore=restore,
        captions=captions,
        caption_highlight=caption_highlight,
        format=format,
    )
    submission = AnimateSubmission(
        image=source_image.file,
        consent=consent,
        audio=audio.file if has_audio and audio is not None else None,
        audio_filename=audio.filename if audio is not None else None,
        audio_id=_given(audio_id),
        text=text if spoken else None,
        options=options,
        voice_sample=_sent(voice_clone_wav),
        webhook=_given(webhook),
        client_ref=_given(client_ref),
        idempotency=idempotency_scope(submitter.id, "animate", idempotency_key),
        owner=submitter,
        transcript=_given(transcript),
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
    size: Annotated[
        int | None, Form(ge=128, le=2048, description="The video's shorter side; default 512.")
    ] = None,
    full_frame: Annotated[bool, Form(description="The whole photo (framing=full).")] = False,
    framing: Annotated[
        Framing, Form(description="square (default), portrait, landscape or full.")
    ] = "square",
    face_index: Annotated[
        int | None, Form(ge=0, le=63, description="Which face (POST /faces; 0: the largest).")
    ] = None,
    face_at: Annotated[
        str | None, Form(max_length=32, description="The face at `x,y` of the upright photo.")
    ] = None,
    renderer: Annotated[str | None, Form(max_length=64, description="warp (default).")] = None,
    expression: Annotated[
        str | None, Form(pattern="^(keep|neutral)$", description="keep (default) or neutral.")
    ] = None,
    restore: Annotated[
        bool, Form(description="Super-resolve a face too small for `size` (default true).")
    ] = True,
) -> Response:
    """The first frame of the video POST /animate would make with the same fields (the face
    at rest, framed and watermarked as the video will be), so that an app can show it at
    once. The other /animate fields are accepted and do not change it; a repeated preview of
    the same photo takes a fraction of a second."""
    options = build_options(
        service.settings,
        speaks=False,
        size=size,
        full_frame=full_frame,
        framing=framing,
        face_index=face_index,
        face_at=parse_point(_given(face_at)),
        renderer=_given(renderer) or "warp",
        expression=_given(expression) or "keep",
        restore=restore,
    )
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

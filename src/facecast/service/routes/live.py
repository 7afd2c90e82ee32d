"""POST /live and DELETE /live/{session_id}: live talking-photo sessions over WebRTC."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from starlette.requests import HTTPConnection

from facecast.live.rig import LIVE_EXPRESSION
from facecast.service.deps import PrincipalDep, ServiceDep, SubmitterDep
from facecast.service.inputs import check_fields
from facecast.service.live import LiveCreated, LiveEnded, LiveIntake, LiveSessions
from facecast.service.routes import error_responses
from facecast.service.routes.playground import STATIC
from facecast.service.schemas import LANG_PATTERN
from facecast.service.submission import build_options

router = APIRouter(tags=["live"])

LIVE_FIELDS = frozenset(
    {"source_image", "offer", "consent", "lang", "voice", "face_index", "face_at", "size", "fps"}
)
MAX_OFFER_CHARS = 64_000


async def get_live(connection: HTTPConnection) -> LiveSessions:
    """The app's live sessions."""
    return cast(LiveSessions, connection.app.state.live)


LiveDep = Annotated[LiveSessions, Depends(get_live)]


async def _known_fields(request: Request) -> None:
    form = await request.form()
    check_fields((name for name, _ in form.multi_items()), LIVE_FIELDS)


@router.post(
    "/live",
    status_code=201,
    response_model=LiveCreated,
    responses=error_responses(400, 401, 413, 422, 429, 503),
    summary="Start a live session: a WebRTC peer that speaks what its data channel asks",
    dependencies=[Depends(_known_fields)],
)
def start_live(
    live: LiveDep,
    service: ServiceDep,
    submitter: SubmitterDep,
    source_image: Annotated[UploadFile, File(description="The portrait: JPEG, PNG, WebP or HEIC.")],
    offer: Annotated[
        str,
        Form(
            max_length=MAX_OFFER_CHARS,
            description="The client's SDP offer: receives one video and one audio track and "
            "opens a data channel labelled `facecast` (see docs/live.md for its messages).",
        ),
    ],
    consent: Annotated[
        bool, Form(description="Must be true: the uploader confirms the person agreed.")
    ] = False,
    lang: Annotated[
        str | None, Form(pattern=LANG_PATTERN, description="Language of `say` texts; default de.")
    ] = None,
    voice: Annotated[
        str | None,
        Form(max_length=128, description="As for POST /animate; default the language's voice."),
    ] = None,
    face_index: Annotated[
        int | None, Form(ge=0, le=63, description="Which face to animate (POST /faces).")
    ] = None,
    face_at: Annotated[
        str | None, Form(max_length=32, description="Animate the face at this point, `x,y`.")
    ] = None,
    size: Annotated[
        int | None, Form(ge=128, le=1024, description="The video's side; default 512.")
    ] = None,
    fps: Annotated[
        int | None, Form(ge=5, le=30, description="Frames a second; default 25.")
    ] = None,
) -> LiveCreated:
    """Answer an SDP offer with a session that renders the photo: idle while it listens, lips
    moving with `say` texts and `audio` chunks sent on the data channel.

    At capacity (FACECAST_LIVE_CAPACITY sessions) 503 with Retry-After.
    """
    chosen = {
        "lang": lang or None,
        "voice": voice or None,
        "fps": fps,
        "size": size,
        "face_index": face_index,
        "face_at": face_at or None,
        "expression": LIVE_EXPRESSION,
    }
    options = build_options(
        service.settings, {k: v for k, v in chosen.items() if v is not None}, speaks=True
    )
    intake = LiveIntake(source_image.file, offer, consent, options, submitter)
    return live.start(intake)


@router.delete("/live/{session_id}", response_model=LiveEnded, responses=error_responses(401, 404))
def end_live(session_id: str, live: LiveDep, caller: PrincipalDep) -> LiveEnded:
    """End a live session (the peer connection closes)."""
    return live.stop(session_id, caller)


@router.get("/live.html", response_class=HTMLResponse, include_in_schema=False)
def live_page() -> HTMLResponse:
    """The live page: pick a photo and a voice, connect, type sentences, interrupt."""
    return HTMLResponse((STATIC / "live.html").read_text(encoding="utf-8"))

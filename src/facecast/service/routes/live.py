"""POST /live and DELETE /live/{session_id}: live talking-photo sessions over WebRTC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from starlette.requests import HTTPConnection

from facecast.live.rig import LIVE_EXPRESSION
from facecast.service.deps import PrincipalDep, ServiceDep, SubmitterDep
from facecast.service.errors import InvalidRequestError
from facecast.service.forms import LiveFields, chosen_options, live_form
from facecast.service.inputs import check_fields
from facecast.service.live import LiveCreated, LiveEnded, LiveIntake, LiveSessions
from facecast.service.routes import error_responses
from facecast.service.routes.playground import STATIC
from facecast.service.submission import build_options

router = APIRouter(tags=["live"])

if TYPE_CHECKING:
    LiveForm = LiveFields  # what the derived form has
else:
    LiveForm = live_form()
LIVE_FIELDS = frozenset({"source_image"}) | LiveForm.model_fields.keys()
LIVE_MAX_SIZE = 1024
"""The largest live frame: each frame must be rendered within its frame time, and a frame's
cost grows with its area (512 px, the default: about 3 ms of CPU)."""
LIVE_FPS = (5, 30)
"""Frame rates a live session offers."""


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
    form: Annotated[LiveForm, Form()],
) -> LiveCreated:
    """Answer an SDP offer with a session that renders the photo: idle while it listens, lips
    moving with `say` texts and `audio` chunks sent on the data channel.

    At capacity (FACECAST_LIVE_CAPACITY sessions) 503 with Retry-After.
    """
    chosen = chosen_options(form) | {"expression": LIVE_EXPRESSION}
    options = build_options(service.settings, chosen, speaks=True)
    if options.size > LIVE_MAX_SIZE or not LIVE_FPS[0] <= options.fps <= LIVE_FPS[1]:
        raise InvalidRequestError(
            f"A live session renders at most {LIVE_MAX_SIZE} px at {LIVE_FPS[0]}-{LIVE_FPS[1]} "
            f"frames a second, not {options.size} px at {options.fps}."
        )
    offer, consent = form.offer, form.consent
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

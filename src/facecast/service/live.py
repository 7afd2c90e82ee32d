"""Live sessions of this API host: who owns which, how many run, starting and stopping them.

Each session is a process of its own (facecast.live.process): the API only checks the request
(the same checks as POST /animate), hands it over and relays the SDP answer. A session that
ends by itself (disconnect, idle limit, maximum length) leaves its process, and its place is
free again.
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import BinaryIO

from pydantic import BaseModel, Field

from facecast.config import Settings
from facecast.errors import ErrorCode
from facecast.live.process import STOP, start_process
from facecast.live.session import SessionRequest
from facecast.options import RenderOptions
from facecast.service.access import Principal
from facecast.service.errors import (
    ConsentRequiredError,
    JobNotFoundError,
    PayloadTooLargeError,
    ServiceBusyError,
    ServiceError,
)
from facecast.service.inputs import check_point_in, inspect_image

STOP_WAIT_S = 5.0
"""How long a stopped session may take to hang up before its process is killed."""
RETRY_AFTER_S = 30
"""Retry-After when every live place is taken (sessions last minutes; a guess, not a promise)."""


class LiveCreated(BaseModel):
    """A live session that started: send its answer to your peer connection."""

    session_id: str = Field(description="Name it in DELETE /live/{session_id}.")
    answer: str = Field(description="The SDP answer to the offer.")


class LiveEnded(BaseModel):
    """A live session that was ended."""

    session_id: str
    ended: bool = True


class LiveStartError(ServiceError):
    """The session process refused the request (no face, a bad offer, ...): its own code."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.status = status


@dataclass
class _Running:
    session_id: str
    owner: str
    process: BaseProcess
    conn: Connection
    started: float


@dataclass(frozen=True)
class LiveIntake:
    """A parsed POST /live."""

    photo: BinaryIO
    offer: str
    consent: bool
    options: RenderOptions
    """Built by the route with `jobs.build_options` (voice resolved)."""
    owner: Principal


class LiveSessions:
    """The sessions this process started, at most FACECAST_LIVE_CAPACITY at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running: dict[str, _Running] = {}
        self._starting = 0
        self._lock = threading.Lock()
        self._spare: tuple[BaseProcess, Connection] | None = None

    def _prune(self) -> None:
        for session_id, running in list(self._running.items()):
            if not running.process.is_alive():
                running.process.join(0)
                running.conn.close()
                del self._running[session_id]

    def count(self) -> int:
        """Sessions running now."""
        with self._lock:
            self._prune()
            return len(self._running)

    def _reserve(self) -> None:
        with self._lock:
            self._prune()
            if len(self._running) + self._starting >= self.settings.live_capacity:
                raise ServiceBusyError(
                    f"All {self.settings.live_capacity} live sessions of this server are in "
                    "use; try again later.",
                    retry_after=RETRY_AFTER_S,
                )
            self._starting += 1

    def _request(self, intake: LiveIntake, session_id: str) -> SessionRequest:
        settings = self.settings
        if not intake.consent:
            raise ConsentRequiredError(
                "Set consent=true to confirm that the person in the photo agreed to be animated."
            )
        data = intake.photo.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLargeError(
                f"The photo is larger than {settings.max_upload_bytes} bytes."
            )
        info = inspect_image(io.BytesIO(data), settings.max_image_pixels)
        check_point_in(intake.options.face_at, info.upright_size)
        return SessionRequest(
            session_id=session_id,
            photo=data,
            offer=intake.offer,
            options=intake.options,
            idle_seconds=settings.live_idle_seconds,
            max_seconds=settings.live_max_seconds,
            max_text_chars=settings.max_text_chars,
            max_audio_seconds=settings.max_audio_seconds,
            max_image_pixels=settings.max_image_pixels,
            screen=settings.nudity_screen,
            nudity_model=settings.nudity_model,
            nudity_threshold=settings.nudity_threshold,
        )

    def start(self, intake: LiveIntake) -> LiveCreated:
        """Check the request, start its session process and relay the answer."""
        session_id = uuid.uuid4().hex
        request = self._request(intake, session_id)
        self._reserve()
        try:
            process, conn = self._take_spare()
            try:
                answer = self._handshake(process, conn, request)
            except BaseException:
                _halt(process, conn)
                raise
            with self._lock:
                self._running[session_id] = _Running(
                    session_id, intake.owner.tenant, process, conn, time.time()
                )
        finally:
            with self._lock:
                self._starting -= 1
        threading.Thread(target=self._make_spare, daemon=True).start()
        return LiveCreated(session_id=session_id, answer=answer)

    def _handshake(self, process: BaseProcess, conn: Connection, request: SessionRequest) -> str:
        conn.send(request)
        wait = self.settings.live_start_seconds
        if not conn.poll(wait):
            raise ServiceBusyError(
                f"The session did not start within {wait:g} s; try again.",
                retry_after=max(1, math.ceil(wait / 4)),
            )
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            raise LiveStartError(
                ErrorCode.LIVE_FAILED, "The session process ended before it answered.", 503
            ) from None
        if reply[0] == "error":
            raise LiveStartError(reply[1], reply[2])
        answer: str = reply[1]
        return answer

    def _take_spare(self) -> tuple[BaseProcess, Connection]:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare[0].is_alive():
            return spare
        return start_process()

    def _make_spare(self) -> None:
        """A process for the next session, started while nobody waits for it."""
        with self._lock:
            if self._spare is not None:
                return
        spare = start_process()
        with self._lock:
            if self._spare is None:
                self._spare = spare
                return
        _halt(*spare)

    def stop(self, session_id: str, caller: Principal) -> LiveEnded:
        """End a session (404 for one that is not running or is another tenant's)."""
        with self._lock:
            self._prune()
            running = self._running.get(session_id)
            if running is None or not caller.may_see(running.owner):
                raise JobNotFoundError(f"No live session {session_id!r}.")
            del self._running[session_id]
        _halt(running.process, running.conn)
        return LiveEnded(session_id=session_id)

    def close(self) -> None:
        """End every session and the spare process."""
        with self._lock:
            running = list(self._running.values())
            self._running.clear()
            spare, self._spare = self._spare, None
        for item in running:
            _halt(item.process, item.conn)
        if spare is not None:
            _halt(*spare)


def _halt(process: BaseProcess, conn: Connection) -> None:
    """Ask a session process to hang up; kill it when it does not in time."""
    with contextlib.suppress(OSError, ValueError):
        conn.send(STOP)
    process.join(STOP_WAIT_S)
    if process.is_alive():
        process.kill()
        process.join(STOP_WAIT_S)
    conn.close()

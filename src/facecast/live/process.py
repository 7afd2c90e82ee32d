"""A live session in a process of its own, driven by the API over a pipe.

Parent -> child: a SessionRequest, later "stop". Child -> parent: ("answer", sdp) or
("error", code, message), later ("ended", reason). Processes are started with `spawn`, never
forked from the API's threads; a spare process (modules imported, waiting for its request)
saves a new session the seconds of starting Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from facecast.errors import FacecastError

logger = logging.getLogger("facecast.live")

STOP = "stop"


def session_main(conn: Connection) -> None:
    """The child's entry: import the engine, wait for a request, serve it."""
    from threadpoolctl import threadpool_limits

    from facecast.live.session import SessionRequest, rig
    from facecast.pipeline import BLAS_THREADS

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for chatty in ("aioice", "aiortc"):  # a line per ICE check and per packet otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # One session renders one frame at a time: more BLAS threads only spin (see
    # pipeline.BLAS_THREADS), and this whole process is the session's.
    threadpool_limits(limits=BLAS_THREADS, user_api="blas")
    try:
        request = conn.recv()
    except (EOFError, OSError):
        return  # a spare that was never used
    if not isinstance(request, SessionRequest):
        return  # STOP: a spare no longer wanted
    try:
        rigged = rig(request)
    except FacecastError as exc:
        conn.send(("error", exc.code, exc.message))
        return
    asyncio.run(_serve(conn, request, rigged))


async def _serve(conn: Connection, request: object, rigged: object) -> None:
    from facecast.live.session import LiveSession, SessionRequest
    from facecast.pipeline import RiggedPhoto

    assert isinstance(request, SessionRequest) and isinstance(rigged, RiggedPhoto)
    session = LiveSession(request, rigged)
    try:
        answer = await session.answer(request.offer)
    except FacecastError as exc:
        conn.send(("error", exc.code, exc.message))
        await session.pc.close()
        return
    conn.send(("answer", answer))
    loop = asyncio.get_running_loop()

    def from_parent() -> None:
        try:
            order = conn.recv()
        except (EOFError, OSError):
            order = STOP  # the API went away: nobody can end this session any more
        if order == STOP:
            loop.remove_reader(conn.fileno())
            session.end("deleted")

    loop.add_reader(conn.fileno(), from_parent)
    reason = await session.run()
    with contextlib.suppress(OSError, ValueError):
        loop.remove_reader(conn.fileno())
        conn.send(("ended", reason))


def start_process() -> tuple[BaseProcess, Connection]:
    """A new session process waiting for its request, and the parent's end of its pipe."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=session_main, args=(child,), daemon=True, name="facecast-live")
    process.start()
    child.close()
    return process, parent

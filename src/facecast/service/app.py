"""The FastAPI app: `create_app()` wires routes, error handlers and the job service.

Run it with `facecast serve` (API and workers), or alone with
`uvicorn --factory facecast.service.app:create_app`.
`python -m facecast.service.app > openapi.json` refreshes the committed schema.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facecast import __version__
from facecast.config import Settings, get_settings
from facecast.errors import CanceledError, ErrorCode, FacecastError
from facecast.service.access import RateLimiter
from facecast.service.dependencies import (
    dependency_exception_types,
    is_dependency_failure,
    unavailable,
)
from facecast.service.errors import ServiceError
from facecast.service.guards import (
    HTTP_CODES,
    BodyDeadlineMiddleware,
    ForwardedMiddleware,
    HostOriginMiddleware,
    JsonErrorsMiddleware,
    error_body,
    parse_networks,
)
from facecast.service.intake import storage_refusal
from facecast.service.jobs import JobService
from facecast.service.lifecycle import is_storage_failure
from facecast.service.live import LiveSessions
from facecast.service.logs import redact_request_logs
from facecast.service.queueing import TaskQueue
from facecast.service.routes import backends, files, jobs, live, ops, playground, speech
from facecast.service.storage import open_storage
from facecast.service.stores import stores_for

logger = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 1024 * 1024
"""Room for multipart framing and text fields on top of the uploads."""
DESCRIPTION = """\
Turn a portrait photo plus text or audio into a lip-synced talking-head MP4.

Flow: `POST /animate` (or `POST /tts` first, then `/animate` with its `audio_id`) -> a job id ->
follow `GET /jobs/{job_id}`, `WS /ws/jobs/{job_id}` or `GET /jobs/{job_id}/events` -> download
`video_url`. Every error answers `{"error": {"code": ..., "message": ...}}`.
"""


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in {"body", "query", "path"})
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "The request is invalid."


def install_error_handlers(app: FastAPI) -> None:
    """Every error is `{"error": {"code", "message"}}`; bad input is never a 500."""

    async def on_facecast_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FacecastError)
        status = (
            exc.status
            if isinstance(exc, ServiceError)
            else 409
            if isinstance(exc, CanceledError)
            else 400
        )
        headers = exc.headers if isinstance(exc, ServiceError) else None
        return JSONResponse(error_body(exc.code, exc.message), status_code=status, headers=headers)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(
            error_body(ErrorCode.INVALID_REQUEST, _validation_message(exc)), status_code=422
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = exc.headers
        if exc.status_code == 405:
            # The route that matched names only its own method; the path may have more.
            allow = allowed_methods(request)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers = {**(headers or {}), "Allow": allow}
        code = HTTP_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR)
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    async def on_dependency_error(_: Request, exc: Exception) -> JSONResponse:
        if not is_dependency_failure(exc):
            logger.error("unhandled error", exc_info=exc)
            return JSONResponse(error_body(ErrorCode.INTERNAL_ERROR, "Internal server error."), 500)
        logger.warning("dependency unavailable: %s: %s", type(exc).__name__, exc)
        down = unavailable(exc)
        return JSONResponse(error_body(down.code, down.message), down.status, headers=down.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_dependency_failure(exc):
            return await on_dependency_error(request, exc)
        if isinstance(exc, OSError) and is_storage_failure(exc):
            # Any write path that meets a full or read-only disk: 507 / 503, never a 500.
            logger.warning("storage failure: %s", exc)
            failure = storage_refusal(exc)
            return JSONResponse(error_body(failure.code, failure.message), failure.status)
        logger.error("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body(ErrorCode.INTERNAL_ERROR, "Internal server error."), status_code=500
        )

    app.add_exception_handler(FacecastError, on_facecast_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    # Handled where they happen (not by the outermost catch-all, which re-raises and resets
    # the connection behind the guards): Redis, broker and object-store failures answer 503.
    for failure in dependency_exception_types():
        app.add_exception_handler(failure, on_dependency_error)
    app.add_exception_handler(Exception, on_unexpected)


def allowed_methods(request: Request) -> str:
    """The `Allow` header for the request's path: the methods of every route that matches it."""
    methods = {"OPTIONS"}
    for route in _leaf_routes(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, with included routers (FastAPI wraps them) opened; ours have no prefix."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


class BodyLimitMiddleware:
    """Refuse request bodies above `max_bytes` (413) before they fill the disk."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            body = error_body(
                ErrorCode.PAYLOAD_TOO_LARGE, f"The request is larger than {self.max_bytes} bytes."
            )
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"The request is larger than {self.max_bytes} bytes.")
            return message

        await self.app(scope, limited_receive, send)


def build_service(settings: Settings) -> JobService:
    """Storage, stores and task queue for the API process."""
    storage = open_storage(settings)
    storage.root.mkdir(parents=True, exist_ok=True)
    return JobService(
        settings, storage, stores_for(settings, storage), TaskQueue(settings, storage)
    )


async def _every(interval: float, work: Callable[[], object], what: str) -> None:
    """Run `work` in the thread pool now and then every `interval` seconds, for ever."""
    while True:
        try:
            await run_in_threadpool(work)
        except Exception as exc:
            if is_dependency_failure(exc):  # Redis or the store is down: the next round retries
                logger.warning("%s failed: %s", what, exc)
            else:
                logger.exception("%s failed", what)
        await asyncio.sleep(interval)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API. Creating it touches nothing; connections open when it starts serving."""
    settings = settings or get_settings()
    redact_request_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = build_service(settings)
        await run_in_threadpool(service.warm_up)
        # Everything loaded so far lives as long as the process. Freezing it keeps the
        # collector from walking ~150k start-up objects in a full collection, a ~100 ms pause
        # that would otherwise land in the middle of some request.
        gc.collect()
        gc.freeze()
        app.state.jobs = service
        loops = [
            asyncio.create_task(_every(settings.sweep_interval_seconds, service.sweep, "sweep")),
            asyncio.create_task(
                _every(settings.worker_heartbeat_seconds, service.requeue_orphans, "requeue")
            ),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
                with suppress(asyncio.CancelledError):
                    await loop
            await run_in_threadpool(app.state.live.close)
            service.close()

    app = FastAPI(title="facecast", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.live = LiveSessions(settings)
    install_error_handlers(app)
    for module in (jobs, speech, backends, files, ops, playground, live):
        app.include_router(module.router)
    # Added innermost first: a request meets the last one added first.
    app.add_middleware(
        BodyDeadlineMiddleware,
        read_s=settings.read_timeout_seconds,
        total_s=settings.body_timeout_seconds,
    )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_upload_bytes * 2 + FORM_OVERHEAD_BYTES
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After"],
        )
    app.add_middleware(HostOriginMiddleware, settings=settings)
    app.add_middleware(ForwardedMiddleware, trusted=parse_networks(settings.trusted_proxies))
    app.add_middleware(JsonErrorsMiddleware)
    return app


def openapi_schema() -> dict[str, object]:
    """The OpenAPI document (what openapi.json holds)."""
    return create_app(Settings()).openapi()


def main() -> None:
    """Print the OpenAPI document."""
    print(json.dumps(openapi_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()

"""Serving the app to browsers: the offline Flutter web client plus a same-origin media proxy.

The Flet web server sends `Cross-Origin-Embedder-Policy: require-corp`, so the browser refuses
to play a video straight from the facecast API (another origin without a
`Cross-Origin-Resource-Policy` header). The app therefore plays `/media/<token>` from its own
origin; each token stands for one video URL the app itself received from the API, so the proxy
forwards nothing else.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import flet as ft
import flet_web.fastapi as flet_fastapi
import httpx
from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse

MEDIA_PREFIX = "/media/"
PASSED_REQUEST_HEADERS = ("range", "if-range")
PASSED_RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
)


class MediaProxy:
    """Maps tokens to the video URLs the app was given, and streams them (HTTP Range too)."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None))

    def register(self, url: str) -> str:
        """A same-origin path that plays `url`."""
        token = secrets.token_urlsafe(16)
        self._urls[token] = url
        return f"{MEDIA_PREFIX}{token}.mp4"

    async def stream(self, token: str, request: Request) -> StreamingResponse:
        """Forward the request for `token` to its video URL."""
        url = self._urls.get(token.removesuffix(".mp4"))
        if url is None:
            raise HTTPException(404, "Unknown media.")
        headers = {k: v for k, v in request.headers.items() if k in PASSED_REQUEST_HEADERS}
        upstream = await self._http.send(
            self._http.build_request(request.method, url, headers=headers), stream=True
        )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        passed = {k: v for k, v in upstream.headers.items() if k in PASSED_RESPONSE_HEADERS}
        return StreamingResponse(body(), status_code=upstream.status_code, headers=passed)


def build_web_app(
    main: ft.AppCallable, upload_dir: Path, media: MediaProxy
) -> flet_fastapi.FastAPI:
    """The ASGI app: /media/<token> first, the Flet web app (no CDN) for everything else."""
    app = flet_fastapi.FastAPI()
    app.add_api_route(f"{MEDIA_PREFIX}{{token}}", media.stream, methods=["GET", "HEAD"])
    app.mount(
        "/",
        flet_fastapi.app(main, upload_dir=str(upload_dir), no_cdn=True),
    )
    return app

"""GET /: a small playground page (plain HTML, CSS and JavaScript) to try the API in a browser."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

STATIC = files("facecast.service") / "static"
ASSETS = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "hls.light.min.js": "text/javascript",
    "hls.js.LICENSE": "text/plain",
}
"""hls.js (Apache-2.0, see hls.js.LICENSE) is vendored from npm by scripts/vendor-hls."""


@router.get("/", response_class=HTMLResponse)
def playground() -> HTMLResponse:
    """The playground page: photo, text or audio, consent, progress, video."""
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    """The page's script and stylesheet (nothing else is served from here)."""
    if name not in ASSETS:
        raise HTTPException(404, f"No static file {name!r}.")
    return FileResponse(str(STATIC / name), media_type=ASSETS[name])

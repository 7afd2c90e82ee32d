"""What both clients share: the API's error, the job and voice views, and how requests are
formed and answered (forms, uploads, headers, progress messages, resumable downloads)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from facecast.errors import ErrorCode
from facecast.options import RenderOptions, form_text

if TYPE_CHECKING:
    pass


FINAL_STATUSES = frozenset({"done", "error", "canceled", "rejected"})


TIMEOUT_S = 60.0


POLL_S = 0.5


DOWNLOAD_ATTEMPTS = 5


DOWNLOAD_CHUNK = 256 * 1024


PARTIAL_SUFFIX = ".part"


API_KEY_VARIABLE = "FACECAST_API_KEY"
"""Where both clients (and `facecast render --server`) find a key nobody passed."""


def error_code(value: object) -> ErrorCode | str:
    """The API's error code as an `ErrorCode`; a code this client does not know (a newer
    server's, or `http_<status>` for an answer without one) stays a plain string."""
    text = str(value)
    try:
        return ErrorCode(text)
    except ValueError:
        return text


class FacecastAPIError(Exception):
    """An error the API answered (or could not answer): `code` is the API's error code
    (an `ErrorCode`, compared with `==` to it or to its string value)."""

    def __init__(self, code: ErrorCode | str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = error_code(code)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Job:
    """A job as the API shows it (GET /jobs/{id}, WebSocket and SSE messages)."""

    job_id: str
    kind: str
    status: str
    progress: int
    stage: str
    video_url: str | None = None
    audio_url: str | None = None
    stream_url: str | None = None
    captions_url: str | None = None
    """The done job's captions (WebVTT or SRT), when it asked for them."""
    error: FacecastAPIError | None = None
    client_ref: str | None = None
    reused_from: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def final(self) -> bool:
        """True once the job can no longer change."""
        return self.status in FINAL_STATUSES

    @property
    def video_name(self) -> str:
        """The video's name for `download` ("video.mp4" or "video.webm")."""
        if not self.video_url:
            return "video.mp4"
        return self.video_url.split("?", 1)[0].rsplit("/", 1)[-1]

    @property
    def captions_name(self) -> str | None:
        """The caption file's name for `download` ("video.vtt" or "video.srt"), if any."""
        if not self.captions_url:
            return None
        return self.captions_url.split("?", 1)[0].rsplit("/", 1)[-1]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Job:
        """Parse a JobView (fields the client does not know are ignored)."""
        error = body.get("error")
        return cls(
            job_id=str(body["job_id"]),
            kind=str(body.get("kind", "animate")),
            status=str(body["status"]),
            progress=int(body.get("progress", 0)),
            stage=str(body.get("stage", "")),
            video_url=body.get("video_url"),
            audio_url=body.get("audio_url"),
            stream_url=body.get("stream_url"),
            captions_url=body.get("captions_url"),
            error=FacecastAPIError(error["code"], error["message"]) if error else None,
            client_ref=body.get("client_ref"),
            reused_from=body.get("reused_from"),
            created_at=_time(body.get("created_at")),
            finished_at=_time(body.get("finished_at")),
        )


@dataclass(frozen=True)
class Voice:
    """A voice the server offers (GET /voices)."""

    name: str
    lang: str | None = None
    """The voice's main language (the first it lists)."""
    backend: str | None = None
    languages: tuple[str, ...] = ()
    """Language codes it speaks, most specific first."""
    gender: str | None = None
    """Gender presentation: "male", "female" or "neutral" (metadata of the voice)."""
    natural: bool | None = None
    """True: sounds like a person; False: synthetic (espeak-ng)."""
    timings: bool | None = None
    """True when the mouth follows the voice's phoneme timings."""
    licence: str | None = None
    details: tuple[tuple[str, Any], ...] = ()
    """Everything else the server said about it."""

    @classmethod
    def from_json(cls, body: dict[str, Any] | str) -> Voice:
        """Parse one entry of GET /voices."""
        if isinstance(body, str):
            return cls(name=body)
        known = {"name", "id", "lang", "language", "languages", "backend", "gender"}
        known |= {"natural", "phoneme_timings", "licence"}
        languages = tuple(str(code) for code in body.get("languages") or ())
        return cls(
            name=str(body.get("name") or body.get("id") or ""),
            lang=body.get("lang") or body.get("language") or (languages[0] if languages else None),
            backend=body.get("backend"),
            languages=languages,
            gender=body.get("gender"),
            natural=body.get("natural"),
            timings=body.get("phoneme_timings"),
            licence=body.get("licence"),
            details=tuple((k, v) for k, v in sorted(body.items()) if k not in known),
        )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def raise_for(answer: httpx.Response) -> None:
    """FacecastAPIError for a non-2xx answer, with the API's code when it sent one."""
    if answer.is_success:
        return
    try:
        error = answer.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{answer.status_code}", answer.text[:200] or answer.reason_phrase
    raise FacecastAPIError(code, message, answer.status_code)


def form_fields(options: RenderOptions, consent: bool, **extra: str | None) -> dict[str, str]:
    """The /animate form fields for `options`: every option the form takes (facecast.options
    declares which), so that a render on the service is the twin of a local one."""
    fields = {"consent": "true" if consent else "false", **form_text(options), **extra}
    return {k: v for k, v in fields.items() if v is not None}


def preview_fields(options: RenderOptions) -> dict[str, str]:
    """The POST /preview fields: the /animate form's options (those that do not change the
    first frame are accepted and left aside)."""
    return form_text(options)


def normalize_body(text: str, lang: str | None, lexicon: str | None) -> dict[str, str]:
    body = {"text": text, "lang": lang, "lexicon": lexicon}
    return {k: v for k, v in body.items() if v is not None}


def file_parts(
    image: str | Path | bytes | BinaryIO,
    audio: str | Path | bytes | BinaryIO | None,
    options: RenderOptions,
) -> dict[str, tuple[str, Any]]:
    """The /animate uploads: the photo, the recording if any, the voice sample to clone if any."""
    files = {"source_image": upload_part(image, "photo")}
    if audio is not None:
        files["audio"] = upload_part(audio, "audio")
    if options.voice_sample is not None:
        files["voice_clone_wav"] = upload_part(options.voice_sample, "voice")
    return files


def upload_part(source: str | Path | bytes | BinaryIO, default_name: str) -> tuple[str, Any]:
    """(file name, content) for a multipart upload from a path, bytes or an open file."""
    if isinstance(source, str | Path):
        return Path(source).name, Path(source).read_bytes()
    if isinstance(source, bytes):
        return default_name, source
    return Path(getattr(source, "name", default_name)).name, source


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def ws_url(base_url: str, job_id: str) -> str:
    return "ws" + base_url.rstrip("/").removeprefix("http") + f"/ws/jobs/{job_id}"


def parse_message(message: str | bytes) -> Job:
    """One WebSocket message: a JobView, or an error the server sends before closing."""
    body = json.loads(message)
    if "job_id" not in body:
        error = body.get("error") or {}
        raise FacecastAPIError(error.get("code", "error"), error.get("message", str(body)))
    return Job.from_json(body)


def sse_jobs(lines: Iterator[str]) -> Iterator[Job]:
    """Jobs from the `data:` lines of a server-sent event stream."""
    for line in lines:
        if line.startswith("data:"):
            yield Job.from_json(json.loads(line[5:].strip()))


@dataclass
class Resume:
    """A download in progress: the partial file next to the target, and how far it got."""

    target: Path

    @property
    def partial(self) -> Path:
        return self.target.with_name(self.target.name + PARTIAL_SUFFIX)

    def offset(self) -> int:
        return self.partial.stat().st_size if self.partial.exists() else 0

    def open(self, answer: httpx.Response) -> BinaryIO:
        """The partial file, appended to when the server sent the rest, else rewritten."""
        resumed = answer.status_code == 206 and answer.headers.get("content-range", "").startswith(
            f"bytes {self.offset()}-"
        )
        return self.partial.open("ab" if resumed else "wb")

    def finish(self) -> Path:
        os.replace(self.partial, self.target)
        return self.target

"""A small async client for the facecast API: submit a job, follow it, explain its errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

FINAL_STATUSES = frozenset({"done", "error", "canceled", "rejected"})
POLL_INTERVAL_S = 0.7
REQUEST_TIMEOUT_S = 60.0
TTS_WAIT_S = 300.0
PLAIN_WORDS = {
    "no_face": "No face was found in the photo. Try a clear, front-facing portrait.",
    "invalid_image": "The photo could not be read. Use a JPEG, PNG or WebP image.",
    "invalid_audio": "The audio file could not be read. Try a WAV or MP3 file.",
    "audio_too_long": "The audio is too long for one video. Use a shorter clip.",
    "invalid_text": "Please type something for the person to say.",
    "unsupported_language": "That language is not supported.",
    "unknown_voice": "That voice does not speak this language; pick another one.",
    "consent_required": "Please confirm that the person in the photo agreed.",
    "payload_too_large": "The file is too large.",
    "queue_unavailable": "The service is busy or not running. Try again in a moment.",
    "backend_unavailable": "The voice sample needs a voice-cloning backend the server lacks.",
    "unreachable": "The server cannot be reached. Check the server address.",
    "unauthorized": "The server wants an API key (or the one given is wrong).",
}


class ApiError(Exception):
    """An error the API (or the network) reported; `plain` is what to show a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def plain(self) -> str:
        """The message in plain words."""
        return PLAIN_WORDS.get(self.code, self.message)


@dataclass(frozen=True)
class Job:
    """One job view from GET /jobs/{id} or the WebSocket."""

    job_id: str
    status: str
    progress: int
    stage: str
    video_url: str | None = None
    error: ApiError | None = None
    stream_url: str | None = None
    """The live HLS stream, once its first segment exists (plays while the job renders)."""
    captions_url: str | None = None
    """The done job's captions (WebVTT or SRT), when they were asked for."""

    @property
    def final(self) -> bool:
        """True once the job can no longer change."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Job:
        """Parse a JobView."""
        error = body.get("error")
        return cls(
            job_id=body["job_id"],
            status=body["status"],
            progress=int(body.get("progress", 0)),
            stage=body.get("stage", ""),
            video_url=body.get("video_url"),
            error=ApiError(error["code"], error["message"]) if error else None,
            stream_url=body.get("stream_url"),
            captions_url=body.get("captions_url"),
        )


@dataclass(frozen=True)
class Upload:
    """A file to send: its name and bytes."""

    name: str
    data: bytes

    @classmethod
    def from_path(cls, path: Path) -> Upload:
        """Read a file from disk."""
        return cls(path.name, path.read_bytes())


@dataclass(frozen=True)
class Voice:
    """One entry of GET /voices."""

    id: str
    languages: tuple[str, ...]
    natural: bool
    commercial_use: bool
    default_for: tuple[str, ...]
    gender: str = "neutral"
    """Gender presentation of the voice: male, female or neutral."""

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Voice:
        return cls(
            str(body["id"]),
            tuple(body.get("languages", [])),
            bool(body.get("natural")),
            bool(body.get("commercial_use", True)),
            tuple(body.get("default_for", [])),
            str(body.get("gender") or "neutral"),
        )

    def speaks(self, lang: str) -> bool:
        """True for `lang` or its primary language."""
        return lang in self.languages or lang.split("-")[0] in self.languages

    @property
    def label(self) -> str:
        kind = "natural" if self.natural else "synthetic"
        note = "" if self.commercial_use else ", non-commercial"
        return f"{self.gender.capitalize()}: {self.id} ({kind}{note})"


@dataclass
class AnimateRequest:
    """What the app's form asks for."""

    photo: Upload
    text: str | None = None
    lang: str = "de"
    voice: str | None = None
    """`backend:voice` from GET /voices; None: the server's default for the language."""
    audio: Upload | None = None
    voice_sample: Upload | None = None
    size: int = 256
    expression: str = "keep"
    """The mouth at rest: keep the photo's smile, or neutral (closed, relaxed)."""
    prosody: dict[str, str] = field(default_factory=dict)
    """rate, pitch, volume form fields that differ from the server's defaults."""
    framing: str = "square"
    """square, portrait (9:16), landscape (16:9) or full (the whole photo)."""
    captions: str | None = None
    """vtt, srt or burn; None: no captions."""
    transcript: str | None = None
    """What the recording says (captions of an audio file need it)."""
    extra: dict[str, str] = field(default_factory=dict)


def _error_from(answer: httpx.Response) -> ApiError:
    if answer.status_code in (401, 403):
        return ApiError("unauthorized", answer.text)
    try:
        error = answer.json()["error"]
        return ApiError(str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(f"http_{answer.status_code}", answer.text or answer.reason_phrase)


class FacecastClient:
    """Talks to one facecast server."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=REQUEST_TIMEOUT_S
        )
        self._headers = headers

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError("unreachable", str(exc)) from exc
        if answer.status_code >= 400:
            raise _error_from(answer)
        body: dict[str, Any] = answer.json()
        return body

    async def health(self) -> str:
        """The server's version; raises ApiError when it cannot be reached."""
        return str((await self._call("GET", "/health")).get("version", "?"))

    async def voices(self) -> list[Voice]:
        """GET /voices."""
        body = await self._call("GET", "/voices")
        return [Voice.from_json(entry) for entry in body.get("voices", [])]

    async def job(self, job_id: str) -> Job:
        """GET /jobs/{id}."""
        return Job.from_json(await self._call("GET", f"/jobs/{job_id}"))

    async def speech_with_voice(
        self, text: str, lang: str, sample: Upload, prosody: dict[str, str] | None = None
    ) -> str:
        """POST /tts with a voice sample (rate, pitch, volume applied after the cloning); the
        audio_id once the speech exists."""
        files = {"voice_clone_wav": (sample.name, sample.data)}
        data = {"text": text, "lang": lang, **(prosody or {})}
        created = await self._call("POST", "/tts", data=data, files=files)
        job_id = str(created["job_id"])
        async with asyncio.timeout(TTS_WAIT_S):
            while created.get("status") != "done":
                await asyncio.sleep(POLL_INTERVAL_S)
                job = await self.job(job_id)
                if job.final and job.status != "done":
                    raise job.error or ApiError(job.status, f"Speech job {job.status}.")
                created = {"status": job.status}
        return job_id

    async def animate(self, request: AnimateRequest) -> str:
        """POST /animate; the job id."""
        data = {
            "consent": "true",
            "size": str(request.size),
            "expression": request.expression,
            "framing": request.framing,
            **({"captions": request.captions} if request.captions else {}),
            **request.extra,
        }
        files: dict[str, tuple[str, bytes]] = {
            "source_image": (request.photo.name, request.photo.data)
        }
        if request.audio is not None:
            files["audio"] = (request.audio.name, request.audio.data)
            if request.transcript:
                data["transcript"] = request.transcript
        elif request.voice_sample is not None and request.text:
            data["audio_id"] = await self.speech_with_voice(
                request.text, request.lang, request.voice_sample, request.prosody
            )
            if request.captions:  # the speech is a recording now: its text is its transcript
                data["transcript"] = request.text
        else:
            data.update(text=request.text or "", lang=request.lang, **request.prosody)
            if request.voice:
                data["voice"] = request.voice
        return str((await self._call("POST", "/animate", data=data, files=files))["job_id"])

    async def follow(self, job_id: str) -> AsyncIterator[Job]:
        """Every change of the job until it is final: WebSocket first, polling as fallback."""
        last: Job | None = None
        try:
            async for job in self._socket(job_id):
                last = job
                yield job
        except (OSError, websockets.WebSocketException):
            pass
        while last is None or not last.final:
            last = await self.job(job_id)
            yield last
            if not last.final:
                await asyncio.sleep(POLL_INTERVAL_S)

    async def _socket(self, job_id: str) -> AsyncIterator[Job]:
        url = "ws" + self.base_url.removeprefix("http") + f"/ws/jobs/{job_id}"
        async with websockets.connect(url, additional_headers=self._headers) as socket:
            async for message in socket:
                body = json.loads(message)
                if "job_id" not in body:
                    error = body.get("error") or {}
                    raise ApiError(error.get("code", "error"), error.get("message", str(body)))
                job = Job.from_json(body)
                yield job
                if job.final:
                    return

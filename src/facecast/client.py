"""A Python client for the facecast API (httpx), sync and async.

    with FacecastClient("http://127.0.0.1:8000", api_key=None) as client:
        job = client.submit_text("photo.jpg", "Hallo!", RenderOptions(size=256))
        for view in client.follow(job.job_id):
            print(view.stage, view.progress)
        client.download(job.job_id, "out.mp4")

`AsyncFacecastClient` has the same methods as coroutines (and `follow` as an async iterator).
Progress comes over the WebSocket, with server-sent events as the fallback (and polling when
neither is let through). Downloads resume where a previous attempt stopped (HTTP Range) and
follow the redirect to a presigned URL when the server stores results in S3. Every error the
API answers is raised as `FacecastAPIError` with the API's error code.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from facecast.errors import ErrorCode
from facecast.options import RenderOptions, form_text

if TYPE_CHECKING:
    from facecast.live.peer import LiveConnection, Received

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


def _raise_for(answer: httpx.Response) -> None:
    """FacecastAPIError for a non-2xx answer, with the API's code when it sent one."""
    if answer.is_success:
        return
    try:
        error = answer.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{answer.status_code}", answer.text[:200] or answer.reason_phrase
    raise FacecastAPIError(code, message, answer.status_code)


def _form(options: RenderOptions, consent: bool, **extra: str | None) -> dict[str, str]:
    """The /animate form fields for `options`: every option the form takes (facecast.options
    declares which), so that a render on the service is the twin of a local one."""
    fields = {"consent": "true" if consent else "false", **form_text(options), **extra}
    return {k: v for k, v in fields.items() if v is not None}


def _preview_form(options: RenderOptions) -> dict[str, str]:
    """The POST /preview fields: the /animate form's options (those that do not change the
    first frame are accepted and left aside)."""
    return form_text(options)


def _normalize_body(text: str, lang: str | None, lexicon: str | None) -> dict[str, str]:
    body = {"text": text, "lang": lang, "lexicon": lexicon}
    return {k: v for k, v in body.items() if v is not None}


def _files(
    image: str | Path | bytes | BinaryIO,
    audio: str | Path | bytes | BinaryIO | None,
    options: RenderOptions,
) -> dict[str, tuple[str, Any]]:
    """The /animate uploads: the photo, the recording if any, the voice sample to clone if any."""
    files = {"source_image": _upload(image, "photo")}
    if audio is not None:
        files["audio"] = _upload(audio, "audio")
    if options.voice_sample is not None:
        files["voice_clone_wav"] = _upload(options.voice_sample, "voice")
    return files


def _upload(source: str | Path | bytes | BinaryIO, default_name: str) -> tuple[str, Any]:
    """(file name, content) for a multipart upload from a path, bytes or an open file."""
    if isinstance(source, str | Path):
        return Path(source).name, Path(source).read_bytes()
    if isinstance(source, bytes):
        return default_name, source
    return Path(getattr(source, "name", default_name)).name, source


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _ws_url(base_url: str, job_id: str) -> str:
    return "ws" + base_url.rstrip("/").removeprefix("http") + f"/ws/jobs/{job_id}"


def _parse_message(message: str | bytes) -> Job:
    """One WebSocket message: a JobView, or an error the server sends before closing."""
    body = json.loads(message)
    if "job_id" not in body:
        error = body.get("error") or {}
        raise FacecastAPIError(error.get("code", "error"), error.get("message", str(body)))
    return Job.from_json(body)


def _sse_jobs(lines: Iterator[str]) -> Iterator[Job]:
    """Jobs from the `data:` lines of a server-sent event stream."""
    for line in lines:
        if line.startswith("data:"):
            yield Job.from_json(json.loads(line[5:].strip()))


@dataclass
class _Resume:
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


class FacecastClient:
    """The facecast API from synchronous code."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key = api_key or os.environ.get(API_KEY_VARIABLE) or None
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> FacecastClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._answer(method, path, **kwargs).json()

    def _answer(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise FacecastAPIError("unreachable", f"{self.base_url}: {exc}") from exc
        _raise_for(answer)
        return answer

    def preview(
        self, image: str | Path | bytes | BinaryIO, options: RenderOptions = RenderOptions()
    ) -> bytes:
        """The first frame of the video `options` would make of `image`, as PNG (POST
        /preview): what an app shows before the video exists."""
        files = {"source_image": _upload(image, "photo")}
        return self._answer("POST", "/preview", data=_preview_form(options), files=files).content

    def submit_text(
        self,
        image: str | Path | bytes | BinaryIO,
        text: str,
        options: RenderOptions = RenderOptions(),
        *,
        consent: bool,
        client_ref: str | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job that animates `image` speaking `text`. `consent=True` confirms that the
        person in the photo agreed (the service refuses the job without it)."""
        return self._submit(
            image, None, text, options, consent, client_ref, webhook, idempotency_key
        )

    def submit_audio(
        self,
        image: str | Path | bytes | BinaryIO,
        audio: str | Path | bytes | BinaryIO,
        options: RenderOptions = RenderOptions(),
        *,
        consent: bool,
        client_ref: str | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
        transcript: str | None = None,
    ) -> Job:
        """Queue a job that lip-syncs `image` to the recording `audio` (`consent` as in
        `submit_text`); `transcript`, the words it says, gives it captions."""
        return self._submit(
            image, audio, None, options, consent, client_ref, webhook, idempotency_key, transcript
        )

    def _submit(
        self,
        image: str | Path | bytes | BinaryIO,
        audio: str | Path | bytes | BinaryIO | None,
        text: str | None,
        options: RenderOptions,
        consent: bool,
        client_ref: str | None,
        webhook: str | None,
        idempotency_key: str | None,
        transcript: str | None = None,
    ) -> Job:
        files = _files(image, audio, options)
        data = _form(
            options,
            consent,
            text=text,
            client_ref=client_ref,
            webhook=webhook,
            transcript=transcript,
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        created = self._call("POST", "/animate", data=data, files=files, headers=headers)
        return self.job(str(created["job_id"]))

    def job(self, job_id: str) -> Job:
        """The job's current view."""
        return Job.from_json(self._call("GET", f"/jobs/{job_id}"))

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; delete a finished one for good (its files too)."""
        return Job.from_json(self._call("DELETE", f"/jobs/{job_id}"))

    def spoken(self, text: str, lang: str | None = None, lexicon: str | None = None) -> str:
        """What the server's voices will say for `text` (POST /text/normalize)."""
        body = self._call("POST", "/text/normalize", json=_normalize_body(text, lang, lexicon))
        return str(body["spoken"])

    def voices(self, lang: str | None = None, gender: str | None = None) -> list[Voice]:
        """The voices the server offers, only those speaking `lang` and of `gender` ("male",
        "female", "neutral") when given; empty when the server has no GET /voices."""
        params = {k: v for k, v in (("lang", lang), ("gender", gender)) if v is not None}
        try:
            body = self._call("GET", "/voices", params=params)
        except FacecastAPIError as exc:
            if exc.status in (404, 405):
                return []
            raise
        entries = body.get("voices", []) if isinstance(body, dict) else body
        return [Voice.from_json(entry) for entry in entries]

    def follow(self, job_id: str) -> Iterator[Job]:
        """The job on every change until it is final: WebSocket, else SSE, else polling."""
        last: Job | None = None
        for source in (self._socket, self._events):
            try:
                for job in source(job_id):
                    last = job
                    yield job
                    if job.final:
                        return
            except FacecastAPIError:
                raise
            except Exception:  # the transport was refused or broke: try the next one
                continue
        while last is None or not last.final:
            last = self.job(job_id)
            yield last
            if not last.final:
                time.sleep(POLL_S)

    def _socket(self, job_id: str) -> Iterator[Job]:
        from websockets.sync.client import connect

        headers = _headers(self.api_key)
        with connect(_ws_url(self.base_url, job_id), additional_headers=headers) as socket:
            for message in socket:
                yield _parse_message(message)

    def _events(self, job_id: str) -> Iterator[Job]:
        with self._http.stream("GET", f"/jobs/{job_id}/events", timeout=None) as answer:
            if not answer.is_success:
                answer.read()
            _raise_for(answer)
            yield from _sse_jobs(answer.iter_lines())

    def wait(self, job_id: str, progress: Callable[[Job], None] | None = None) -> Job:
        """Follow the job to its end (calling `progress` on each change); the final view."""
        job: Job | None = None
        for job in self.follow(job_id):
            if progress is not None:
                progress(job)
        assert job is not None
        return job

    def download(self, job_id: str, target: str | Path, name: str = "video.mp4") -> Path:
        """Save a finished job's `video.mp4` (or `audio.wav`, `video.vtt`, `video.srt`) to
        `target`, resuming a partial download (`target.part`) where it stopped; retried on
        broken connections."""
        resume = _Resume(Path(target))
        url = f"/files/{job_id}/{name}"
        for attempt in range(DOWNLOAD_ATTEMPTS):
            offset = resume.offset()
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                with self._http.stream(
                    "GET", url, headers=headers, follow_redirects=True
                ) as answer:
                    if answer.status_code == 416 and offset:  # the partial file is complete
                        return resume.finish()
                    if not answer.is_success:
                        answer.read()
                    _raise_for(answer)
                    with resume.open(answer) as out:
                        for chunk in answer.iter_bytes(DOWNLOAD_CHUNK):
                            out.write(chunk)
                return resume.finish()
            except httpx.TransportError as exc:
                if attempt + 1 == DOWNLOAD_ATTEMPTS:
                    raise FacecastAPIError("unreachable", f"download failed: {exc}") from exc
        raise AssertionError("unreachable")


class AsyncFacecastClient:
    """The facecast API from asyncio code (the same methods as coroutines)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key = api_key or os.environ.get(API_KEY_VARIABLE) or None
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncFacecastClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._answer(method, path, **kwargs)).json()

    async def _answer(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise FacecastAPIError("unreachable", f"{self.base_url}: {exc}") from exc
        _raise_for(answer)
        return answer

    async def preview(
        self, image: str | Path | bytes | BinaryIO, options: RenderOptions = RenderOptions()
    ) -> bytes:
        """The video's first frame as PNG (see the sync client)."""
        files = {"source_image": _upload(image, "photo")}
        answer = await self._answer("POST", "/preview", data=_preview_form(options), files=files)
        return answer.content

    async def live(
        self,
        image: str | Path | bytes | BinaryIO,
        *,
        consent: bool,
        lang: str | None = None,
        voice: str | None = None,
        size: int | None = None,
        fps: int | None = None,
        on_video: Callable[[Received], None] | None = None,
        on_audio: Callable[[Received], None] | None = None,
    ) -> LiveConnection:
        """Start a live session (POST /live; needs `facecast[live]`): use it as `async with`,
        then `say`, `audio`, `clear` and `event` as on the data channel (docs/live.md)."""
        from facecast.live.peer import LiveConnection, LivePeer

        peer = LivePeer(on_video, on_audio)
        fields = {"consent": consent, "lang": lang, "voice": voice, "size": size, "fps": fps}
        form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
        form = {k: v for k, v in form.items() if v != "None"}
        try:
            body = await self._call(
                "POST",
                "/live",
                data={**form, "offer": await peer.offer()},
                files={"source_image": _upload(image, "photo")},
            )
            await peer.accept(body["answer"])
        except BaseException:
            await peer.close()
            raise
        session_id = str(body["session_id"])
        return LiveConnection(session_id, peer, lambda: self._call("DELETE", f"/live/{session_id}"))

    async def submit_text(
        self,
        image: str | Path | bytes | BinaryIO,
        text: str,
        options: RenderOptions = RenderOptions(),
        *,
        consent: bool,
        client_ref: str | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job that animates `image` speaking `text` (`consent` as in the sync client)."""
        return await self._submit(
            image, None, text, options, consent, client_ref, webhook, idempotency_key
        )

    async def submit_audio(
        self,
        image: str | Path | bytes | BinaryIO,
        audio: str | Path | bytes | BinaryIO,
        options: RenderOptions = RenderOptions(),
        *,
        consent: bool,
        client_ref: str | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
        transcript: str | None = None,
    ) -> Job:
        """Queue a job that lip-syncs `image` to the recording `audio`; `transcript`, the
        words it says, gives it captions."""
        return await self._submit(
            image, audio, None, options, consent, client_ref, webhook, idempotency_key, transcript
        )

    async def _submit(
        self,
        image: str | Path | bytes | BinaryIO,
        audio: str | Path | bytes | BinaryIO | None,
        text: str | None,
        options: RenderOptions,
        consent: bool,
        client_ref: str | None,
        webhook: str | None,
        idempotency_key: str | None,
        transcript: str | None = None,
    ) -> Job:
        files = _files(image, audio, options)
        data = _form(
            options,
            consent,
            text=text,
            client_ref=client_ref,
            webhook=webhook,
            transcript=transcript,
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        created = await self._call("POST", "/animate", data=data, files=files, headers=headers)
        return await self.job(str(created["job_id"]))

    async def job(self, job_id: str) -> Job:
        """The job's current view."""
        return Job.from_json(await self._call("GET", f"/jobs/{job_id}"))

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; delete a finished one for good (its files too)."""
        return Job.from_json(await self._call("DELETE", f"/jobs/{job_id}"))

    async def spoken(self, text: str, lang: str | None = None, lexicon: str | None = None) -> str:
        """What the server's voices will say for `text` (POST /text/normalize)."""
        body = await self._call(
            "POST", "/text/normalize", json=_normalize_body(text, lang, lexicon)
        )
        return str(body["spoken"])

    async def voices(self, lang: str | None = None, gender: str | None = None) -> list[Voice]:
        """The voices the server offers, only those speaking `lang` and of `gender` ("male",
        "female", "neutral") when given; empty when the server has no GET /voices."""
        params = {k: v for k, v in (("lang", lang), ("gender", gender)) if v is not None}
        try:
            body = await self._call("GET", "/voices", params=params)
        except FacecastAPIError as exc:
            if exc.status in (404, 405):
                return []
            raise
        entries = body.get("voices", []) if isinstance(body, dict) else body
        return [Voice.from_json(entry) for entry in entries]

    async def follow(self, job_id: str) -> AsyncIterator[Job]:
        """The job on every change until it is final: WebSocket, else SSE, else polling."""
        last: Job | None = None
        for source in (self._socket, self._events):
            try:
                async for job in source(job_id):
                    last = job
                    yield job
                    if job.final:
                        return
            except FacecastAPIError:
                raise
            except Exception:  # the transport was refused or broke: try the next one
                continue
        while last is None or not last.final:
            last = await self.job(job_id)
            yield last
            if not last.final:
                await asyncio.sleep(POLL_S)

    async def _socket(self, job_id: str) -> AsyncIterator[Job]:
        from websockets.asyncio.client import connect

        headers = _headers(self.api_key)
        async with connect(_ws_url(self.base_url, job_id), additional_headers=headers) as socket:
            async for message in socket:
                yield _parse_message(message)

    async def _events(self, job_id: str) -> AsyncIterator[Job]:
        async with self._http.stream("GET", f"/jobs/{job_id}/events", timeout=None) as answer:
            if not answer.is_success:
                await answer.aread()
            _raise_for(answer)
            async for line in answer.aiter_lines():
                for job in _sse_jobs(iter([line])):
                    yield job

    async def wait(self, job_id: str, progress: Callable[[Job], None] | None = None) -> Job:
        """Follow the job to its end (calling `progress` on each change); the final view."""
        job: Job | None = None
        async for job in self.follow(job_id):
            if progress is not None:
                progress(job)
        assert job is not None
        return job

    async def download(self, job_id: str, target: str | Path, name: str = "video.mp4") -> Path:
        """Save a finished job's file to `target`, resuming a partial download (see the sync
        client)."""
        resume = _Resume(Path(target))
        url = f"/files/{job_id}/{name}"
        for attempt in range(DOWNLOAD_ATTEMPTS):
            offset = resume.offset()
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                async with self._http.stream(
                    "GET", url, headers=headers, follow_redirects=True
                ) as answer:
                    if answer.status_code == 416 and offset:
                        return resume.finish()
                    if not answer.is_success:
                        await answer.aread()
                    _raise_for(answer)
                    with resume.open(answer) as out:
                        async for chunk in answer.aiter_bytes(DOWNLOAD_CHUNK):
                            out.write(chunk)
                return resume.finish()
            except httpx.TransportError as exc:
                if attempt + 1 == DOWNLOAD_ATTEMPTS:
                    raise FacecastAPIError("unreachable", f"download failed: {exc}") from exc
        raise AssertionError("unreachable")

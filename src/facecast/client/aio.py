"""`AsyncFacecastClient`: the same methods as coroutines, `follow` as an async iterator, and
`live` sessions over WebRTC."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from facecast.options import RenderOptions

if TYPE_CHECKING:
    from facecast.live.peer import LiveConnection, Received

from facecast.client.wire import (
    API_KEY_VARIABLE,
    DOWNLOAD_ATTEMPTS,
    DOWNLOAD_CHUNK,
    POLL_S,
    TIMEOUT_S,
    FacecastAPIError,
    Job,
    Resume,
    Voice,
    auth_headers,
    file_parts,
    form_fields,
    normalize_body,
    parse_message,
    preview_fields,
    raise_for,
    sse_jobs,
    upload_part,
    ws_url,
)


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
            base_url=self.base_url,
            headers=auth_headers(api_key),
            timeout=timeout,
            transport=transport,
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
        raise_for(answer)
        return answer

    async def preview(
        self, image: str | Path | bytes | BinaryIO, options: RenderOptions = RenderOptions()
    ) -> bytes:
        """The video's first frame as PNG (see the sync client)."""
        files = {"source_image": upload_part(image, "photo")}
        answer = await self._answer("POST", "/preview", data=preview_fields(options), files=files)
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
                files={"source_image": upload_part(image, "photo")},
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
        files = file_parts(image, audio, options)
        data = form_fields(
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
        body = await self._call("POST", "/text/normalize", json=normalize_body(text, lang, lexicon))
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

        headers = auth_headers(self.api_key)
        async with connect(ws_url(self.base_url, job_id), additional_headers=headers) as socket:
            async for message in socket:
                yield parse_message(message)

    async def _events(self, job_id: str) -> AsyncIterator[Job]:
        async with self._http.stream("GET", f"/jobs/{job_id}/events", timeout=None) as answer:
            if not answer.is_success:
                await answer.aread()
            raise_for(answer)
            async for line in answer.aiter_lines():
                for job in sse_jobs(iter([line])):
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
        resume = Resume(Path(target))
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
                    raise_for(answer)
                    with resume.open(answer) as out:
                        async for chunk in answer.aiter_bytes(DOWNLOAD_CHUNK):
                            out.write(chunk)
                return resume.finish()
            except httpx.TransportError as exc:
                if attempt + 1 == DOWNLOAD_ATTEMPTS:
                    raise FacecastAPIError("unreachable", f"download failed: {exc}") from exc
        raise AssertionError("unreachable")

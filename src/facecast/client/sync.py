"""`FacecastClient`: the blocking client."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from facecast.options import RenderOptions

if TYPE_CHECKING:
    pass

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
            base_url=self.base_url,
            headers=auth_headers(api_key),
            timeout=timeout,
            transport=transport,
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
        raise_for(answer)
        return answer

    def preview(
        self, image: str | Path | bytes | BinaryIO, options: RenderOptions = RenderOptions()
    ) -> bytes:
        """The first frame of the video `options` would make of `image`, as PNG (POST
        /preview): what an app shows before the video exists."""
        files = {"source_image": upload_part(image, "photo")}
        return self._answer("POST", "/preview", data=preview_fields(options), files=files).content

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
        body = self._call("POST", "/text/normalize", json=normalize_body(text, lang, lexicon))
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

        headers = auth_headers(self.api_key)
        with connect(ws_url(self.base_url, job_id), additional_headers=headers) as socket:
            for message in socket:
                yield parse_message(message)

    def _events(self, job_id: str) -> Iterator[Job]:
        with self._http.stream("GET", f"/jobs/{job_id}/events", timeout=None) as answer:
            if not answer.is_success:
                answer.read()
            raise_for(answer)
            yield from sse_jobs(answer.iter_lines())

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
        resume = Resume(Path(target))
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
                    raise_for(answer)
                    with resume.open(answer) as out:
                        for chunk in answer.iter_bytes(DOWNLOAD_CHUNK):
                            out.write(chunk)
                return resume.finish()
            except httpx.TransportError as exc:
                if attempt + 1 == DOWNLOAD_ATTEMPTS:
                    raise FacecastAPIError("unreachable", f"download failed: {exc}") from exc
        raise AssertionError("unreachable")

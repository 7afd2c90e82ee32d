"""Intake: turn a parsed submission into a job (stored inputs, a manifest, a queued task), or
answer it at once from an identical earlier result.

Every submission is checked before a job exists (text, spoken length, webhook URL), bound to
its Idempotency-Key, stored and checked in decode slots (uploads.py), admitted (admission.py)
and queued. A job answered by reuse ends at once through the lifecycle like any other.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import BinaryIO

from facecast import __version__
from facecast.config import Settings
from facecast.errors import ErrorCode
from facecast.options import RenderOptions
from facecast.service import webhooks
from facecast.service.admission import Admission
from facecast.service.errors import (
    ConsentRequiredError,
    InvalidRequestError,
    JobNotFoundError,
    ServiceError,
    StorageFullError,
    StorageUnavailableError,
)
from facecast.service.idempotency import KeyBinder, request_digest
from facecast.service.inputs import audio_file_name, check_audio, check_point_in, clean_text
from facecast.service.lifecycle import Ending, Lifecycle, Outcome, storage_error
from facecast.service.lookup import JobLookup
from facecast.service.queueing import TASK_ANIMATE, TASK_TTS, TaskQueue
from facecast.service.reuse import Reuse, reused_from
from facecast.service.schemas import (
    ErrorInfo,
    JobKind,
    JobManifest,
    JobRequest,
    JobState,
)
from facecast.service.storage import AUDIO, CAPTIONS, VIDEOS, Storage, content_key
from facecast.service.stores import Stores
from facecast.service.submission import AnimateSubmission, Submitted, TtsSubmission
from facecast.service.uploads import VOICE_SAMPLE, Uploads
from facecast.speech import script
from facecast.speech.limits import check_estimate

logger = logging.getLogger(__name__)

IMAGE_UPLOAD = "source_upload"


class Intake:
    """POST /animate and POST /tts: from a submission to a queued (or reused) job."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        stores: Stores,
        queue: TaskQueue,
        parts: tuple[JobLookup, Uploads, Admission, Lifecycle],
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.stores = stores
        self.queue = queue
        self.lookup, self.uploads, self.admission, self.lifecycle = parts
        self.keys = KeyBinder(stores.idempotency, settings.idempotency_hours * 3600)
        self.reuse = Reuse(storage, self.lookup)

    # ------------------------------------------------------------------ submissions

    def submit_animate(self, submission: AnimateSubmission) -> Submitted:
        """Store the inputs and queue a render, or answer from an identical earlier render."""
        if not submission.consent:
            raise ConsentRequiredError(
                "Set consent=true to confirm that the person in the photo agreed to be animated."
            )
        sources = [
            submission.audio is not None,
            submission.audio_id is not None,
            submission.text is not None,
        ]
        if sum(sources) != 1:
            raise InvalidRequestError("Send exactly one of: audio (a file), audio_id, or text.")
        if submission.voice_sample is not None and submission.text is None:
            raise InvalidRequestError("voice_clone_wav clones the voice of text: send text too.")
        check_transcript(submission, self.settings.max_text_chars)
        text = self._checked_intake(submission.text, submission.options, submission.webhook)
        digest = self._digest(
            submission.idempotency,
            (
                submission.consent,
                submission.audio_filename,
                submission.audio_id,
                submission.text,
                submission.options,
                submission.webhook,
                submission.client_ref,
                submission.transcript,
            ),
            (submission.image, submission.audio, submission.voice_sample),
        )
        return self._create(
            lambda job_id: self._create_animate(job_id, submission, text),
            submission.idempotency,
            JobKind.ANIMATE,
            digest,
        )

    def submit_tts(self, submission: TtsSubmission) -> Submitted:
        """Queue speech synthesis, or answer with identical speech made before."""
        text = self._checked_intake(submission.text, submission.options, submission.webhook)
        assert text is not None  # a TtsSubmission always carries text
        digest = self._digest(
            submission.idempotency,
            (submission.text, submission.options, submission.webhook, submission.client_ref),
            (submission.voice_sample,),
        )
        return self._create(
            lambda job_id: self._create_tts(job_id, submission, text),
            submission.idempotency,
            JobKind.TTS,
            digest,
        )

    def _checked_intake(
        self, text: str | None, options: RenderOptions, webhook: str | None
    ) -> str | None:
        """The text cleaned and its spoken length checked, and the webhook URL checked: what
        every submission refuses before a job exists."""
        cleaned = None if text is None else clean_text(text, self.settings.max_text_chars)
        if cleaned is not None:
            # At rate r the speech lasts 1/r as long: the pipeline's own check.
            prepared = script.prepare(cleaned, options.lang, options.lexicon)
            cap = self.settings.max_audio_seconds * options.rate
            check_estimate(script.estimated_seconds(prepared), cap)
        if webhook is not None:
            webhooks.check_url(webhook, self.settings)
        return cleaned

    def _digest(
        self,
        idempotency: str | None,
        fields: tuple[object, ...],
        uploads: tuple[BinaryIO | None, ...],
    ) -> str | None:
        """What an Idempotency-Key is bound to: the request's fields and uploads (None
        without a key)."""
        if idempotency is None:
            return None
        return request_digest(fields, uploads, self.settings.max_upload_bytes)

    def _create(
        self,
        build: Callable[[str], Submitted],
        idempotency: str | None,
        kind: JobKind,
        digest: str | None = None,
    ) -> Submitted:
        """A new job directory filled by `build`; removed again when that fails.

        With an idempotency key the first request binds it to its job and its `digest`; a
        retry with the same digest gets that job, one with another digest is refused (422).
        """
        try:
            job_id = self.storage.new_job()
        except OSError as exc:
            raise storage_refusal(exc) from exc
        if idempotency is not None:
            try:
                earlier = self.keys.bind(idempotency, job_id, digest)
            except BaseException:
                self.storage.remove(job_id)
                raise
            if earlier is not None:
                self.storage.remove(job_id)
                return Submitted(self._state_or_queued(earlier, kind))
        try:
            submitted = build(job_id)
        except BaseException as exc:
            self.storage.remove(job_id)
            if idempotency is not None:
                self.keys.unbind(idempotency, job_id, digest)
            if isinstance(exc, OSError) and exc.errno is not None:
                raise storage_refusal(exc) from exc
            raise
        if idempotency is not None and submitted.state.job_id != job_id:  # answered by reuse
            self.keys.move(idempotency, job_id, submitted.state.job_id, digest)
        self.storage.drop_local(job_id)  # with a shared store the uploads are in the bucket now
        return submitted

    def _state_or_queued(self, job_id: str, kind: JobKind) -> JobState:
        """A job bound to an idempotency key; `queued` while its first request still uploads."""
        try:
            return self.lookup.get(job_id)
        except JobNotFoundError:
            return JobState(job_id=job_id, kind=kind, created_at=time.time())

    # ------------------------------------------------------------------ building jobs

    def _create_animate(
        self, job_id: str, submission: AnimateSubmission, text: str | None
    ) -> Submitted:
        settings = self.settings
        upload = self.storage.save_stream(
            job_id, IMAGE_UPLOAD, submission.image, settings.max_upload_bytes
        )
        photo = self.uploads.check_photo(self.storage.path(job_id, IMAGE_UPLOAD))
        check_point_in(submission.options.face_at, photo.upright_size)
        image_name = f"source.{photo.extension}"
        self.storage.path(job_id, IMAGE_UPLOAD).rename(self.storage.path(job_id, image_name))
        self.storage.publish(job_id, image_name)
        request = JobRequest(
            image=image_name,
            text=text,
            options=submission.options,
            webhook=submission.webhook,
            client_ref=submission.client_ref,
            transcript=submission.transcript,
        )
        queue = self.admission.check_backends(request)
        if submission.audio is not None:
            name = audio_file_name(submission.audio_filename)
            voice_key = self.storage.save_stream(
                job_id, name, submission.audio, settings.max_upload_bytes
            )
            with self.uploads.slot():  # FFmpeg's probing decodes a little: bounded like photos
                check_audio(self.storage.path(job_id, name), settings.max_audio_seconds)
            self.storage.publish(job_id, name)
            request = request.model_copy(update={"audio": name})
        elif submission.audio_id is not None:
            voice_key = self.reuse.link_tts_audio(submission.audio_id, job_id, submission.owner)
            request = request.model_copy(update={"audio": AUDIO, "audio_id": submission.audio_id})
        else:
            request, sample_key = self._with_voice_sample(job_id, request, submission.voice_sample)
            voice_key = content_key("text", text, sample_key)
        # The whole options object: two voices (or any other choice) never share a video. The
        # tenant too: reuse across tenants answers at once, an oracle that this face was filmed.
        owner = submission.owner.tenant
        transcript = (request.transcript,) if request.transcript is not None else ()
        cache_key = content_key(
            "animate",
            __version__,
            owner,
            upload,
            voice_key,
            request.options.fingerprint(),
            *transcript,
        )
        earlier = self.reuse.link_result(job_id, cache_key, VIDEOS[request.options.format])
        if earlier is not None:
            for name in CAPTIONS:  # the captions come with the video they belong to
                if self.storage.has(earlier.job_id, name):
                    self.storage.link(earlier.job_id, job_id, name)
        state = JobState(job_id=job_id, kind=JobKind.ANIMATE, created_at=time.time(), owner=owner)
        manifest = JobManifest(
            job_id=job_id,
            kind=JobKind.ANIMATE,
            created_at=state.created_at,
            queue=queue,
            request=request,
            cache_key=cache_key,
            consent=True,
            state=state,
        )
        return self._launch(manifest, TASK_ANIMATE, earlier)

    def _create_tts(self, job_id: str, submission: TtsSubmission, text: str) -> Submitted:
        request = JobRequest(
            text=text,
            options=submission.options,
            webhook=submission.webhook,
            client_ref=submission.client_ref,
        )
        request, sample_key = self._with_voice_sample(job_id, request, submission.voice_sample)
        owner = submission.owner.tenant
        # Per tenant, like videos: another tenant's identical speech is never reused.
        cache_key = content_key(
            "tts", __version__, owner, text, request.options.fingerprint(), sample_key
        )
        mine = self.reuse.own_speech(cache_key, owner)
        if mine is not None:  # the caller's own speech: answer with that job, as before
            self.storage.remove(job_id)
            self.storage.touch(mine.job_id)
            self.stores.metrics.increment("jobs_reused_total", f"kind={JobKind.TTS.value}")
            return Submitted(mine, reused=True)
        state = JobState(job_id=job_id, kind=JobKind.TTS, created_at=time.time(), owner=owner)
        # Another tenant's speech: reuse the audio in a job of the caller's own, which names
        # neither the other job nor anything of its request.
        earlier = self.reuse.link_result(job_id, cache_key, AUDIO)
        manifest = JobManifest(
            job_id=job_id,
            kind=JobKind.TTS,
            created_at=state.created_at,
            queue=self.settings.tts_queue,
            request=request,
            cache_key=cache_key,
            state=state,
        )
        return self._launch(manifest, TASK_TTS, earlier)

    def _launch(
        self, manifest: JobManifest, task: str, earlier: JobManifest | None = None
    ) -> Submitted:
        """Write manifest and state, then queue the task; or, when `earlier` holds the result,
        end the job at once as reused (naming `earlier` only to its own tenant)."""
        if earlier is None:
            self.admission.admit(manifest)
        self.storage.write_manifest(manifest)
        self.stores.jobs.create(manifest.state)
        job_id = manifest.job_id
        if earlier is not None:
            source = reused_from(earlier, manifest.state.owner)
            outcome = Outcome(Ending.REUSED)
            final = self.lifecycle.conclude(job_id, outcome, manifest, reused_from=source)
            return Submitted(final or manifest.state, reused=True)
        self.stores.metrics.increment("jobs_submitted_total", f"kind={manifest.kind.value}")
        try:
            self.queue.send(task, job_id, manifest.queue)
        except Exception:
            error = ErrorInfo(
                code=ErrorCode.QUEUE_UNAVAILABLE, message="The job queue was unreachable."
            )
            self.lifecycle.conclude(job_id, Outcome(Ending.ERROR, error), manifest)
            raise
        logger.info(
            "queued %s job on %s", manifest.kind.value, manifest.queue, extra={"job_id": job_id}
        )
        return Submitted(manifest.state)

    # ------------------------------------------------------------------ inputs

    def _with_voice_sample(
        self, job_id: str, request: JobRequest, sample: BinaryIO | None
    ) -> tuple[JobRequest, str | None]:
        """`request` speaking in the voice of `sample` (stored, checked, published, and the
        cloning backend chosen), with the sample's content key; unchanged without a sample."""
        if sample is None:
            return request, None
        # Refused before a byte is stored or decoded where no backend could use it.
        cloner = self.uploads.cloner(request.options.lang)
        sample_key = self.uploads.save_voice_sample(job_id, sample)
        self.storage.publish(job_id, VOICE_SAMPLE)
        options = dataclasses.replace(request.options, speech_backend=cloner, voice=None)
        return request.model_copy(
            update={"voice_sample": VOICE_SAMPLE, "options": options}
        ), sample_key


def storage_refusal(exc: OSError) -> ServiceError:
    """The API error for a data directory that is full (507) or not writable (503): the same
    code a job gets for it (lifecycle.storage_error)."""
    error = storage_error(exc)
    if error.code is ErrorCode.STORAGE_FULL:
        return StorageFullError(error.message)
    return StorageUnavailableError(error.message)


def check_transcript(submission: AnimateSubmission, max_chars: int) -> None:
    """A transcript belongs to a recording, and a recording's captions need one."""
    if submission.transcript is not None:
        if submission.text is not None:
            raise InvalidRequestError("transcript belongs to a recording; text is its own.")
        script.check_length(submission.transcript, max_chars)
    elif submission.options.captions and submission.text is None:
        raise InvalidRequestError(
            "Captions for a recording need its transcript: send transcript too."
        )

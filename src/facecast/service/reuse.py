"""Reusing results: an identical earlier job answers a request, and a TTS job's audio feeds
an animation.

Results are found by content key (storage's reuse cache) and shared by hard link or a copy in
the object store; a reused job counts as used, so retention keeps it longer. Reuse never crosses
tenants where that would name another tenant's job.
"""

from __future__ import annotations

import logging

from facecast.service.access import ANONYMOUS, Principal
from facecast.service.errors import AudioNotReadyError, InvalidRequestError
from facecast.service.lookup import JobLookup
from facecast.service.schemas import JobKind, JobManifest, JobState, JobStatus
from facecast.service.storage import AUDIO, Storage, content_key, is_job_id

logger = logging.getLogger(__name__)


class Reuse:
    """Finding and linking results of earlier jobs."""

    def __init__(self, storage: Storage, lookup: JobLookup) -> None:
        self.storage = storage
        self.lookup = lookup

    def own_speech(self, cache_key: str, owner: str) -> JobState | None:
        """The caller's own finished TTS job with this speech, if there is one."""
        earlier = self.storage.cache_get(cache_key)
        if earlier is None or not self.storage.has(earlier, AUDIO):
            return None
        state = self.lookup.state_of(earlier)
        ours = state is not None and (state.owner or ANONYMOUS) == owner
        return state if state is not None and ours and state.status is JobStatus.DONE else None

    def link_tts_audio(self, audio_id: str, job_id: str, caller: Principal) -> str:
        """Share a finished TTS job's audio with a new job; returns the audio's content key."""
        manifest = self.storage.read_manifest(audio_id) if is_job_id(audio_id) else None
        if (
            manifest is None
            or manifest.kind is not JobKind.TTS
            or not caller.may_see(manifest.state.owner)
        ):
            raise InvalidRequestError(
                f"There is no audio {audio_id[:64]!r}; create one with POST /tts."
            )
        state = self.lookup.jobs.get(audio_id) or manifest.state
        if state.status is not JobStatus.DONE or not self.storage.has(audio_id, AUDIO):
            raise AudioNotReadyError(f"The audio {audio_id} is {state.status.value}, not done.")
        self.storage.link(audio_id, job_id, AUDIO)
        self.storage.touch(audio_id)
        return manifest.cache_key or content_key("audio-job", audio_id)

    def link_result(self, job_id: str, cache_key: str, name: str) -> JobManifest | None:
        """Link artifact `name` of an identical finished job into `job_id`; its manifest."""
        earlier = self.storage.cache_get(cache_key)
        if earlier is None or not self.storage.has(earlier, name):
            return None
        manifest = self.storage.read_manifest(earlier)
        if manifest is None:
            return None
        self.storage.link(earlier, job_id, name)
        self.storage.touch(earlier)
        logger.info("reusing the %s of job %s", name, earlier, extra={"job_id": job_id})
        return manifest


def reused_from(earlier: JobManifest, owner: str | None) -> str | None:
    """The id a reused job names as its source: the earlier job's, when the caller owns it
    (another tenant's job id would leak)."""
    same = (earlier.state.owner or ANONYMOUS) == (owner or ANONYMOUS)
    return earlier.job_id if same else None

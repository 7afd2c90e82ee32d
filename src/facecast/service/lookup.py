"""Finding a job's state: the job store first, the manifest for jobs the store has forgotten."""

from __future__ import annotations

from collections.abc import Sequence

from facecast.service.access import Principal
from facecast.service.errors import JobNotFoundError
from facecast.service.schemas import JobState
from facecast.service.state import JobStore
from facecast.service.storage import Storage, is_job_id


class JobLookup:
    """Read-only access to jobs, as every part of the job service needs it."""

    def __init__(self, storage: Storage, jobs: JobStore) -> None:
        self.storage = storage
        self.jobs = jobs

    def get(self, job_id: str, caller: Principal | None = None) -> JobState:
        """The job's state; JobNotFoundError for unknown or malformed ids, and for jobs of
        another tenant when `caller` is given (404, not 403: ids must not be an oracle)."""
        state = self.state_of(job_id)
        if state is None or (caller is not None and not caller.may_see(state.owner)):
            raise JobNotFoundError(f"There is no job {job_id[:64]!r}.")
        return state

    def state_of(self, job_id: str) -> JobState | None:
        """The job's state, or None for an unknown or malformed id."""
        if not is_job_id(job_id):
            return None
        state = self.jobs.get(job_id)
        return state if state is not None else self.manifest_state(job_id)

    def manifest_state(self, job_id: str) -> JobState | None:
        """The state kept in the manifest, for jobs the job store has forgotten (expired)."""
        manifest = self.storage.read_manifest(job_id) if is_job_id(job_id) else None
        return None if manifest is None else manifest.state

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobState | None]:
        """The states of several jobs in one store read; None for jobs that are gone."""
        return {
            job_id: state if state is not None else self.manifest_state(job_id)
            for job_id, state in zip(job_ids, self.jobs.get_many(job_ids), strict=True)
        }

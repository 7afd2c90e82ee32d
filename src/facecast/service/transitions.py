"""How a job's state may change: pure functions from the current `JobState` to the next.

Each returns a `Mutation` for `JobStore.update`, which applies it atomically; a mutation that
answers None leaves the state as it is (the change does not apply to that state).
"""

from __future__ import annotations

from collections.abc import Callable

from facecast.service.schemas import ErrorInfo, JobState, JobStatus

Mutation = Callable[[JobState], JobState | None]
"""Given the current state, the new one, or None to leave it as it is."""


def start_attempt(now: float, max_attempts: int) -> Mutation:
    """queued -> running (or a redelivered running job); None when it must not run."""

    def mutate(state: JobState) -> JobState | None:
        if state.status.final or state.cancel_requested:
            return None
        attempts = state.attempts + 1
        if attempts > max_attempts:
            return None
        return state.model_copy(
            update={
                "status": JobStatus.RUNNING,
                "started_at": now,
                "attempts": attempts,
                "stage": "starting",
            }
        )

    return mutate


def back_to_queue(started_at: float | None = None) -> Mutation:
    """running -> queued: its worker process died and the job waits for the next delivery
    (which `start_attempt` counts). Attempts so far are kept. With `started_at`, only the
    attempt that started then goes back (not a newer one)."""

    def mutate(state: JobState) -> JobState | None:
        if state.status is not JobStatus.RUNNING:
            return None
        if started_at is not None and state.started_at != started_at:
            return None
        return state.model_copy(
            update={"status": JobStatus.QUEUED, "stage": JobStatus.QUEUED.value, "progress": 0}
        )

    return mutate


def advance(stage: str, progress: int) -> Mutation:
    """Record progress of a running job; progress never goes backwards."""

    def mutate(state: JobState) -> JobState | None:
        if state.status is not JobStatus.RUNNING:
            return None
        value = max(state.progress, min(progress, 99))
        if value == state.progress and stage == state.stage:
            return None
        return state.model_copy(update={"stage": stage, "progress": value})

    return mutate


def stream_started() -> Mutation:
    """A running job's live stream has its first segment."""

    def mutate(state: JobState) -> JobState | None:
        if state.status is not JobStatus.RUNNING or state.streaming:
            return None
        return state.model_copy(update={"streaming": True})

    return mutate


def finish(
    status: JobStatus,
    now: float,
    error: ErrorInfo | None = None,
    reused_from: str | None = None,
) -> Mutation:
    """Any unfinished state -> a final one (`reused_from`: the earlier job whose result a
    reused job answers with, when the caller may know it)."""

    def mutate(state: JobState) -> JobState | None:
        if state.status.final:
            return None
        done = status is JobStatus.DONE
        return state.model_copy(
            update={
                "status": status,
                "finished_at": now,
                "error": error,
                "progress": 100 if done else state.progress,
                "stage": status.value,
                "reused_from": reused_from,
            }
        )

    return mutate


def request_cancel() -> Mutation:
    """Flag an unfinished job for cancelling (a queued one is then ended by the caller, a
    running one by its worker)."""

    def mutate(state: JobState) -> JobState | None:
        if state.status.final or state.cancel_requested:
            return None
        return state.model_copy(update={"cancel_requested": True})

    return mutate

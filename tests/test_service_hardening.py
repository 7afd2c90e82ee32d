"""Hardening of the job service: safety, access, idempotency, webhooks, hostile input, faults.

Real parts only: uvicorn, Celery workers and Redis (a private redis-server for the restart test),
a real tmpfs for the full disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
import onnx
import pytest
import redis
from onnx import TensorProto, helper
from websockets.sync.client import connect

from conftest import png_declaring
from conftest_service import (
    MODULE_REDIS_URL,
    LiveService,
    free_port,
    serve_single_command,
    service_env,
    spawn,
    stop_process,
    tmpfs,
)
from facecast.audio import AudioTrack, save_wav
from facecast.errors import InvalidImageError
from facecast.pipeline import watermark_frame
from facecast.safety import (
    EXPLICIT,
    LABELS,
    ExplicitImageError,
    NudityScreen,
    ScreeningUnavailableError,
    bundled_model,
)
from facecast.service import redisconn, webhooks
from facecast.service.access import Principal, RateLimiter
from facecast.service.errors import RateLimitedError
from facecast.service.idempotency import (
    FileIdempotencyStore,
    IdempotencyStore,
    RedisIdempotencyStore,
)
from facecast.service.inputs import check_image

API_KEY = "test-key-1"
LIMITED_KEY = "test-key-2"
SECRET = "webhook-test-secret"
RATE_LIMIT = 20
MAX_AUDIO_S = 2
LONG_RENDER_TEXT = "Dieser Satz dauert eine Weile, damit das Bild lange gerendert wird. " * 6
ANCHORS = 2100


def api(command_port: int) -> list[str]:
    """uvicorn serving the app factory on a port."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "facecast.service.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(command_port),
    ]


def start_api_alone(data: Path, env: dict[str, str], logs_dir: Path) -> LiveService:
    """The API process without workers (jobs wait in the queue); returns once it answers."""
    port = free_port()
    logs = {"api": logs_dir / "api.log"}
    service = LiveService(f"http://127.0.0.1:{port}", data, logs)
    service.processes["api"] = spawn(api(port), env, logs["api"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if service.client.get("/health").status_code == 200:
                break
        time.sleep(0.2)
    return service


WORKER = [sys.executable, "-m", "facecast.worker", "--concurrency=1", "--loglevel=info"]
WEBHOOK_WORKER = [sys.executable, "-m", "facecast.worker", "--queues=webhooks", "--concurrency=2"]
"""Webhooks have a queue and worker of their own (as `facecast serve` starts)."""


def always_explicit_model(path: Path) -> Path:
    """A tiny ONNX model with the detector's input and output that flags every photo."""
    scores = np.zeros((1, 4 + len(LABELS), ANCHORS), np.float32)
    scores[0, 4 + LABELS.index("FEMALE_BREAST_EXPOSED"), :] = 0.99
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["scores", "nothing"], ["output0"]),
        ],
        "always_explicit",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 320, 320])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 22, ANCHORS])],
        [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor(
                "scores", TensorProto.FLOAT, list(scores.shape), scores.ravel().tolist()
            ),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def error_of(answer: Any, status: int) -> dict[str, str]:
    """The error object, after checking the status and the one error shape."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    error: dict[str, str] = body["error"]
    return error


# --------------------------------------------------------------------------- units


@pytest.fixture(scope="module")
def astronaut_png() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


def test_screen_passes_a_portrait_and_refuses_what_the_model_flags(
    astronaut_png: Path, tmp_path: Path
) -> None:
    model = bundled_model()
    assert model is not None and model.name == "320n.onnx", "install nudenet with --no-deps"
    screen = NudityScreen(model, 0.5)
    verdict = screen.check(astronaut_png)
    assert verdict.label in EXPLICIT and verdict.score < 0.2
    strict = NudityScreen(always_explicit_model(tmp_path / "flag.onnx"), 0.5)
    with pytest.raises(ExplicitImageError, match="explicit"):
        strict.check(astronaut_png)
    with pytest.raises(ScreeningUnavailableError):
        NudityScreen(None, 0.5).check(astronaut_png)


def test_one_opencv_distribution() -> None:
    import importlib.metadata as metadata

    import cv2

    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert {n for n in names if n.startswith("opencv")} == {"opencv-contrib-python"}, names
    assert hasattr(cv2, "face") and hasattr(cv2, "dnn")  # contrib modules are there


def test_images_are_checked_whole_and_bombs_refused(
    tmp_path: Path, astronaut_png: Path, portrait: Path
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50_000, 50_000))
    with pytest.raises(InvalidImageError):
        check_image(bomb, 40_000_000)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(astronaut_png.read_bytes()[:20_000])
    with pytest.raises(InvalidImageError):
        check_image(truncated, 40_000_000)
    assert check_image(astronaut_png, 40_000_000) == "png"
    # JPEG markers are walked to the final EOI (facecast.image.inspect): any cut is caught.
    whole = portrait.read_bytes()
    assert check_image(portrait, 40_000_000) == "jpg"
    for cut in (len(whole) // 2, len(whole) - 100, len(whole) - 3):
        cut_jpeg = tmp_path / f"cut-{cut}.jpg"
        cut_jpeg.write_bytes(whole[:cut])
        with pytest.raises(InvalidImageError):
            check_image(cut_jpeg, 40_000_000)


def test_rate_limiter_refills_and_says_when() -> None:
    limiter, who = RateLimiter(2), Principal("key:x")
    limiter.take(who, now=0.0)
    limiter.take(who, now=0.0)
    with pytest.raises(RateLimitedError) as refused:
        limiter.take(who, now=1.0)
    headers = refused.value.headers or {}
    assert refused.value.status == 429 and int(headers["Retry-After"]) == 29
    limiter.take(who, now=31.0)
    limiter.take(Principal("key:other"), now=31.0)
    RateLimiter(0).take(who)  # 0: unlimited


def test_webhook_signature_and_destinations() -> None:
    body = b'{"job_id": "x"}'
    signed = webhooks.signature(SECRET, "1700000000", body)
    assert signed.startswith("sha256=") and webhooks.verify(SECRET, "1700000000", body, signed)
    assert not webhooks.verify(SECRET, "1700000001", body, signed)
    with pytest.raises(webhooks.WebhookRefusedError):
        webhooks.check_destination("http://127.0.0.1:9/hook", allow_private=False)
    webhooks.check_destination("http://127.0.0.1:9/hook", allow_private=True)


def test_watermark_marks_only_the_corner() -> None:
    frame = np.full((256, 256, 3), 40, np.uint8)
    marked = watermark_frame(frame, "AI")
    changed = np.argwhere((marked != frame).any(axis=2))
    assert len(changed) > 20
    assert changed[:, 0].min() > 200 and changed[:, 1].min() > 180  # bottom right only
    assert marked.max() < 255  # blended, not opaque


@pytest.fixture(params=["files", "redis"])
def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, scratch_redis_url: str
) -> Iterator[IdempotencyStore]:
    if request.param == "files":
        yield FileIdempotencyStore(tmp_path)
    else:
        client = redisconn.connect(scratch_redis_url)
        yield RedisIdempotencyStore(client)
        client.close()


def test_idempotency_keys_bind_once(any_store: IdempotencyStore) -> None:
    key = "ab" * 32
    assert any_store.claim(key, "1" * 32, 60) == "1" * 32
    assert any_store.claim(key, "2" * 32, 60) == "1" * 32
    any_store.release(key, "2" * 32)  # not the owner: no effect
    assert any_store.claim(key, "3" * 32, 60) == "1" * 32
    any_store.release(key, "1" * 32)
    assert any_store.claim(key, "3" * 32, 60) == "3" * 32


# --------------------------------------------------------------------------- a hardened service


class Receiver:
    """A webhook receiver: records (headers, body) of every POST; fails the first `fail` ones."""

    def __init__(self, fail: int = 1) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail = fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(receiver.calls) <= receiver.fail
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.calls) >= count, self.calls

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[LiveService]:
    """API keys, a rate limit, webhooks, a watermark, a short audio cap; one worker process."""
    root = tmp_path_factory.mktemp("hardened")
    scratch = MODULE_REDIS_URL
    redis.Redis.from_url(scratch).flushdb()
    env = service_env(
        root / "data",
        scratch,
        FACECAST_API_KEYS=f"{API_KEY},{LIMITED_KEY}",
        FACECAST_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT),
        FACECAST_WEBHOOK_SECRET=SECRET,
        FACECAST_WEBHOOK_ALLOW_PRIVATE="true",
        FACECAST_WEBHOOK_BACKOFF_SECONDS="0.5",
        FACECAST_WATERMARK="AI",
        FACECAST_MAX_AUDIO_SECONDS=str(MAX_AUDIO_S),
        FACECAST_CORS_ORIGINS="https://app.example",
        FACECAST_WORKER_WARMUP="false",
    )
    port = free_port()
    logs = {"worker": root / "worker.log", "api": root / "api.log", "hooks": root / "hooks.log"}
    service = LiveService(f"http://127.0.0.1:{port}", root / "data", logs)
    service.client.headers["Authorization"] = f"Bearer {API_KEY}"
    try:
        service.processes["worker"] = spawn(WORKER, env, service.logs["worker"])
        service.processes["hooks"] = spawn(WEBHOOK_WORKER, env, service.logs["hooks"])
        service.processes["api"] = spawn(api(port), env, logs["api"])
        service.wait_ready()
        yield service
    finally:
        service.close()
        redis.Redis.from_url(scratch).flushdb()


def test_api_keys_cors_and_rate_limit(hardened: LiveService, portrait: Path) -> None:
    client = hardened.client
    anonymous = client.post("/animate", headers={"Authorization": ""}, data={"consent": "true"})
    assert error_of(anonymous, 401)["code"] == "unauthorized"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/jobs/" + "0" * 32, headers={"Authorization": "Bearer nope"})
    assert error_of(wrong, 401)["code"] == "unauthorized"
    assert client.get("/health", headers={"Authorization": ""}).status_code == 200
    preflight = client.options(
        "/animate",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,idempotency-key",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    limited = {"Authorization": f"Bearer {LIMITED_KEY}"}
    answers = [client.post("/tts", json={}, headers=limited) for _ in range(RATE_LIMIT + 1)]
    assert [a.status_code for a in answers[:RATE_LIMIT]] == [422] * RATE_LIMIT
    assert error_of(answers[-1], 429)["code"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    created = hardened.animate(portrait, text="Noch erlaubt.")  # the other key
    assert created.status_code == 202
    # Browsers cannot set headers on a WebSocket: the key may come as ?access_token=.
    socket_url = f"{hardened.ws_url}/ws/jobs/{created.json()['job_id']}"
    with connect(f"{socket_url}?access_token={API_KEY}", open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=30))["job_id"] == created.json()["job_id"]
    with connect(socket_url, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=30))["error"]["code"] == "unauthorized"


def test_idempotency_key_returns_the_same_job(hardened: LiveService, portrait: Path) -> None:
    headers = {"Idempotency-Key": "order-4711"}
    with portrait.open("rb") as handle:
        photo = handle.read()
    answers = [
        hardened.client.post(
            "/animate",
            data={"consent": "true", "size": "128", "text": "Einmal."},
            files={"source_image": ("p.jpg", photo)},
            headers=headers,
        )
        for _ in range(3)
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["job_id"] for a in answers}) == 1
    speech = [
        hardened.client.post("/tts", json={"text": "Nur einmal."}, headers=headers)
        for _ in range(2)
    ]
    assert speech[0].json()["job_id"] == speech[1].json()["job_id"]
    assert speech[0].json()["job_id"] != answers[0].json()["job_id"]  # keys are per route


def test_webhook_is_signed_retried_and_carries_client_ref(
    hardened: LiveService, portrait: Path
) -> None:
    receiver = Receiver(fail=1)
    try:
        job_id = hardened.submit_text(
            portrait, "Melde dich.", size=128, webhook=receiver.url, client_ref="ref-42"
        )
        job = hardened.wait_job(job_id)
        assert job["status"] == "done" and job["client_ref"] == "ref-42", job
        receiver.wait_for(2)  # the first delivery failed (503) and was retried
        headers, body = receiver.calls[-1]
        assert webhooks.verify(
            SECRET, headers["x-facecast-timestamp"], body, headers["x-facecast-signature"]
        )
        event = json.loads(body)
        assert event["job_id"] == job_id and event["status"] == "done"
        assert event["client_ref"] == "ref-42" and event["event"] == "job.finished"
        assert receiver.calls[0][1] == body
    finally:
        receiver.close()
    refused = hardened.animate(portrait, text="x", webhook="file:///etc/passwd")
    assert error_of(refused, 422)["code"] == "invalid_request"


def test_videos_say_they_are_ai_generated_and_carry_the_watermark(
    hardened: LiveService, portrait: Path
) -> None:
    job = hardened.wait_job(hardened.submit_text(portrait, "Markiert.", size=128))
    assert job["status"] == "done", job
    data = hardened.client.get(job["video_url"]).content
    with av.open(io.BytesIO(data), mode="r") as container:
        tags = dict(container.metadata)
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert "AI-generated" in tags.get("comment", "") and job["job_id"] in tags["comment"], tags
    assert tags.get("facecast_job_id") == job["job_id"], tags
    corner = frame[-12:, -40:].astype(int)
    assert corner.max() - corner.min() > 40  # the text shows in the corner


def test_hostile_input_answers_4xx_and_writes_nothing_outside(
    hardened: LiveService, portrait: Path, tmp_path: Path
) -> None:
    client, animate = hardened.client, hardened.animate
    before = set(os.listdir(hardened.data_dir.parent))
    for audio_id in ("../../etc/passwd", "a\0b", "../" + "0" * 32):
        answer = animate(portrait, audio_id=audio_id)
        assert answer.status_code in (400, 404, 422), answer.text
        error_of(answer, answer.status_code)
    for job_id in ("..%2F..%2Fetc%2Fpasswd", "%00", "0" * 31 + "%00"):
        assert error_of(client.get(f"/jobs/{job_id}"), 404)["code"] == "not_found"
        assert client.get(f"/files/{job_id}/video.mp4").status_code == 404
    assert error_of(client.get("/jobs/" + "f" * 32), 404)["code"] == "not_found"
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50_000, 50_000))
    assert error_of(animate(bomb, text="Hallo"), 400)["code"] == "invalid_image"
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(portrait.read_bytes()[:4000])
    assert error_of(animate(truncated, text="Hallo"), 400)["code"] == "invalid_image"
    text = tmp_path / "text.png"
    text.write_text("not an image")
    assert error_of(animate(text, text="Hallo"), 400)["code"] == "invalid_image"
    assert error_of(animate(portrait, text="x" * 5001), 400)["code"] == "invalid_text"
    long_audio = tmp_path / "long.wav"
    save_wav(AudioTrack(np.zeros(8000 * (MAX_AUDIO_S + 1), np.float32), 8000), long_audio)
    with portrait.open("rb") as photo, long_audio.open("rb") as sound:
        answer = client.post(
            "/animate",
            data={"consent": "true"},
            files={"source_image": ("p.jpg", photo), "audio": ("a.wav", sound)},
        )
    assert error_of(answer, 400)["code"] == "audio_too_long"
    assert error_of(animate(portrait, text="Hallo", colour="red"), 422)["code"] == (
        "invalid_request"
    )
    with portrait.open("rb") as photo:
        twice = client.post(
            "/animate",
            data={"consent": "true", "text": ["a", "b"]},
            files={"source_image": ("p.jpg", photo)},
        )
    assert "more than once" in error_of(twice, 422)["message"]
    assert error_of(animate(portrait, text="Hallo", fps=61), 422)["code"] == "invalid_request"
    assert error_of(animate(portrait, text="Hallo", size=64), 422)["code"] == "invalid_request"
    assert error_of(animate(portrait, text="Hallo", consent="false"), 400)["code"] == (
        "consent_required"
    )
    assert set(os.listdir(hardened.data_dir.parent)) == before
    leftovers = [p for p in hardened.data_dir.iterdir() if p.is_dir() and len(p.name) == 32]
    assert all((p / "job.json").exists() for p in leftovers)  # refused jobs left no directory


def test_explicit_photo_ends_rejected(tmp_path: Path, portrait: Path, marker: str) -> None:
    """A worker whose model flags everything: the job ends `rejected` with a reason."""
    model = always_explicit_model(tmp_path / "flag.onnx")
    env = service_env(
        tmp_path / "data",
        None,
        FACECAST_NUDITY_MODEL=str(model),
        FACECAST_WORKER_WARMUP="false",
        FACECAST_TEST_MARKER=marker,
    )
    service = serve_single_command(tmp_path, env)
    try:
        service.wait_ready()
        job = service.wait_job(service.submit_text(portrait, "Nein.", size=128))
        assert job["status"] == "rejected" and job["error"]["code"] == "explicit_image", job
        assert "explicit" in job["error"]["message"]
        assert not (tmp_path / "data" / job["job_id"] / "video.mp4").exists()
    finally:
        service.close()


# --------------------------------------------------------------------------- faults


def children_of(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def test_sigkill_of_the_rendering_process_loses_no_job(
    tmp_path: Path, portrait: Path, scratch_redis_url: str
) -> None:
    env = service_env(tmp_path / "data", scratch_redis_url, FACECAST_WORKER_WARMUP="false")
    port = free_port()
    logs = {"worker": tmp_path / "worker.log", "api": tmp_path / "api.log"}
    service = LiveService(f"http://127.0.0.1:{port}", tmp_path / "data", logs)
    try:
        service.processes["worker"] = spawn(WORKER, env, service.logs["worker"])
        service.processes["api"] = spawn(api(port), env, logs["api"])
        service.wait_ready()
        job_id = service.submit_text(portrait, LONG_RENDER_TEXT, size=128)
        deadline = time.monotonic() + 60
        while service.job(job_id)["stage"] != "render" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.job(job_id)["status"] == "running", service.job(job_id)
        pool = children_of(service.processes["worker"].pid)
        assert pool, service.dump_logs()
        for pid in pool:
            os.kill(pid, signal.SIGKILL)  # the process that was rendering
        job = service.wait_job(job_id)
        assert job["status"] == "done", (job, service.dump_logs())
        state = json.loads(
            redis.Redis.from_url(scratch_redis_url).get(f"facecast:job:{job_id}") or "{}"
        )
        assert state["attempts"] == 2
        assert service.client.get(job["video_url"]).content[4:8] == b"ftyp"
    finally:
        service.close()


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A private redis-server with append-only persistence, like the compose file's."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--dir",
        str(folder),
    ]
    process = spawn(command, os.environ.copy(), folder / "redis.log")
    client = redis.Redis(port=port)
    for _ in range(100):
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                break
        time.sleep(0.05)
    client.close()
    return process


def test_jobs_waiting_through_a_redis_restart_finish(tmp_path: Path, portrait: Path) -> None:
    redis_port = free_port()
    (tmp_path / "redis").mkdir()
    redis_process = start_redis(redis_port, tmp_path / "redis")
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = service_env(tmp_path / "data", url, FACECAST_WORKER_WARMUP="false")
    service = start_api_alone(tmp_path / "data", env, tmp_path)
    try:
        jobs = [service.submit_text(portrait, f"Warte {n}.", size=128) for n in range(3)]
        stop_process(redis_process)  # SIGTERM: Redis writes its append-only file and exits
        redis_process = start_redis(redis_port, tmp_path / "redis")
        assert redis.Redis(port=redis_port).llen("default") == 3
        assert all(service.job(j)["status"] == "queued" for j in jobs)
        service.logs["worker"] = tmp_path / "worker.log"
        service.processes["worker"] = spawn(WORKER, env, service.logs["worker"])
        for job_id in jobs:
            assert service.wait_job(job_id)["status"] == "done", service.dump_logs()
    finally:
        service.close()
        stop_process(redis_process)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (needs root and CAP_SYS_ADMIN; skipped otherwise)."""
    with tmpfs(tmp_path, 24) as mount:
        yield mount


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for block in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while out.write(b"\0" * block):
                    pass
    return filler


def test_full_or_read_only_disk_gives_clear_errors_and_no_video(
    small_disk: Path, portrait: Path, scratch_redis_url: str, tmp_path: Path
) -> None:
    data = small_disk / "data"
    env = service_env(data, scratch_redis_url, FACECAST_WORKER_WARMUP="false")
    service = start_api_alone(data, env, tmp_path)
    try:
        job_id = service.submit_text(portrait, "Kein Platz.", size=128)
        filler = fill(small_disk)
        assert error_of(service.animate(portrait, text="Voll."), 507)["code"] == "storage_full"
        service.logs["worker"] = tmp_path / "worker.log"
        service.processes["worker"] = spawn(WORKER, env, service.logs["worker"])
        job = service.wait_job(job_id)
        assert job["status"] == "error" and job["error"]["code"] == "storage_full", job
        assert job["video_url"] is None and not (data / job_id / "video.mp4").exists()
        assert service.client.get(f"/files/{job_id}/video.mp4").status_code == 404
        filler.unlink()
        stop_process(service.processes.pop("worker"))  # it holds files open for writing
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        answer = service.animate(portrait, text="Nur lesbar.")
        assert error_of(answer, 503)["code"] == "storage_unavailable"
    finally:
        service.close()

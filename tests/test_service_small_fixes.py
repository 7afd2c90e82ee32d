"""Issue 21, item 11: the smaller holes, each written as the attack against the real service
(`facecast serve`: uvicorn + Celery on Redis, one worker process)."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from PIL import Image

from conftest_service import LiveService, serve_single_command, service_env
from facecast.service.guards import host_name

MODULE_REDIS_URL = os.environ.get("FACECAST_TEST_MODULE_REDIS_URL", "redis://127.0.0.1:6379/13")
LONG_TEXT = "Dieser Satz wird gesprochen, damit der Stream ein paar Segmente bekommt. " * 4


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    root = tmp_path_factory.mktemp("small")
    redis.Redis.from_url(MODULE_REDIS_URL).flushdb()
    env = service_env(
        root / "data",
        MODULE_REDIS_URL,
        FACECAST_WORKER_WARMUP="false",
        FACECAST_RATE_LIMIT_PER_MINUTE="0",
    )
    live = serve_single_command(root, env)
    try:
        live.wait_ready()
        yield live
    finally:
        live.close()
        redis.Redis.from_url(MODULE_REDIS_URL).flushdb()


def error_of(answer: object, status: int) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.text)  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


def job_dirs(service: LiveService) -> set[str]:
    return {p.name for p in service.data_dir.iterdir() if len(p.name) == 32 and p.is_dir()}


def cancel(service: LiveService, job_id: str) -> None:
    service.client.delete(f"/jobs/{job_id}")
    service.wait_job(job_id)


def test_host_with_junk_after_the_colon_is_refused(service: LiveService) -> None:
    port = service.base_url.rsplit(":", 1)[1]
    for host in (
        "localhost:evil.example",
        "127.0.0.1:evil.example",
        f"localhost:{port}x",
        "localhost:+80",
        "[::1]:evil",
        "[::1]evil",
        "localhost:123456",
    ):
        answer = service.client.post("/tts", json={"text": "x"}, headers={"Host": host})
        assert error_of(answer, 400)["code"] == "invalid_host", host
    for host in (f"localhost:{port}", "localhost", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert service.client.get("/health", headers={"Host": host}).is_success, host
    assert host_name("LocalHost:8000") == "localhost" and host_name("[::1]:80") == "::1"
    assert host_name("localhost:evil.example") == ""
    assert host_name("localhost:\uff11\uff12") == ""  # full-width digits: str.isdigit says yes


def test_face_at_outside_the_photo_is_refused_at_submit(
    service: LiveService, portrait: Path
) -> None:
    """Grace Hopper is 512 x 600: a point beyond is a 400 before any job exists."""
    before = job_dirs(service)
    for point in ("513,10", "10,601", "5000,5000"):
        answer = service.animate(portrait, text="Hallo.", face_at=point)
        error = error_of(answer, 400)
        assert error["code"] == "invalid_face_choice" and "512 x 600" in error["message"], point
    # Turned by its EXIF orientation (6: 90 degrees), the same pixels are 600 wide.
    turned = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(portrait).save(turned, "JPEG", exif=exif.tobytes())
    sideways = service.client.post(
        "/animate",
        data={"consent": "true", "size": "128", "text": "Hallo.", "face_at": "10,550"},
        files={"source_image": ("p.jpg", turned.getvalue())},
    )
    assert error_of(sideways, 400)["message"].endswith("600 x 512 pixels upright.")
    assert job_dirs(service) == before
    inside = service.animate(portrait, text="Hallo.", face_at="256,250", size="128")
    assert inside.status_code == 202, inside.text
    cancel(service, inside.json()["job_id"])


def test_idempotency_key_with_another_body_is_a_conflict(
    service: LiveService, portrait: Path
) -> None:
    first = service.client.post(
        "/tts", json={"text": "Erster Satz."}, headers={"Idempotency-Key": "k1"}
    )
    assert first.status_code in (200, 202), first.text  # short speech may come at once
    again = service.client.post(
        "/tts", json={"text": "Erster Satz."}, headers={"Idempotency-Key": "k1"}
    )
    assert again.json()["job_id"] == first.json()["job_id"]
    for body in ({"text": "Ein anderer Satz."}, {"text": "Erster Satz.", "client_ref": "x"}):
        other = service.client.post("/tts", json=body, headers={"Idempotency-Key": "k1"})
        assert error_of(other, 422)["code"] == "idempotency_conflict", body
    # Uploads count too: the same fields with another photo.
    photo = portrait.read_bytes()
    flipped = io.BytesIO()
    Image.open(portrait).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped, "JPEG")
    fields = {"consent": "true", "size": "128", "text": "Einmal."}
    headers = {"Idempotency-Key": "k2"}
    made = service.client.post(
        "/animate", data=fields, files={"source_image": ("p.jpg", photo)}, headers=headers
    )
    assert made.status_code == 202, made.text
    before = job_dirs(service)
    other = service.client.post(
        "/animate",
        data=fields,
        files={"source_image": ("p.jpg", flipped.getvalue())},
        headers=headers,
    )
    assert error_of(other, 422)["code"] == "idempotency_conflict"
    assert job_dirs(service) == before  # the refused retry left nothing
    same = service.client.post(
        "/animate", data=fields, files={"source_image": ("p.jpg", photo)}, headers=headers
    )
    assert same.json()["job_id"] == made.json()["job_id"]
    cancel(service, made.json()["job_id"])


def test_a_canceled_job_drops_its_stream_segments(service: LiveService, portrait: Path) -> None:
    """A job that ends canceled (or in error, or rejected) keeps no HLS segments."""
    job_id = service.submit_text(portrait, LONG_TEXT, size="128")
    deadline = time.monotonic() + 240
    view = service.job(job_id)
    while not view["stream_url"] and view["status"] not in ("done", "error", "canceled"):
        assert time.monotonic() < deadline, service.dump_logs()
        time.sleep(0.2)
        view = service.job(job_id)
    assert view["stream_url"], view
    stream = service.data_dir / job_id / "stream"
    assert any(stream.glob("seg*.m4s"))
    assert service.client.get(view["stream_url"]).status_code == 200
    service.client.delete(f"/jobs/{job_id}")
    final = service.wait_job(job_id)
    assert final["status"] == "canceled", final
    deadline = time.monotonic() + 30  # the worker notices the cancel within a second or so
    while stream.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stream.exists(), list(stream.iterdir())
    assert service.client.get(view["stream_url"]).status_code == 404


def test_settle_drops_the_stream_of_every_failed_end(tmp_path: Path) -> None:
    from facecast.service.lifecycle import kept
    from facecast.service.schemas import JobStatus
    from facecast.service.storage import Storage

    storage = Storage(tmp_path)
    for status in JobStatus:
        if not status.final:
            continue
        job_id = storage.new_job()
        stream = storage.stream_dir(job_id)
        stream.mkdir()
        (stream / "seg00000.m4s").write_bytes(b"x")
        storage.settle(job_id, kept(status))
        assert stream.exists() == (status is JobStatus.DONE), status

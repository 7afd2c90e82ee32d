"""Every way a job ends goes through one place: status, manifest, webhook and metric together.

A real API, a real render worker and a real webhook worker on real Redis. For each ending
(done, error, canceled while queued, canceled while running, rejected, reused) the test checks
the job's status, the manifest on disk, the webhook the receiver got, and
`jobs_finished_total{kind,status}` on GET /metrics.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import redis
from onnx import TensorProto, helper
from PIL import Image

from conftest_service import (
    MODULE_REDIS_URL,
    LiveService,
    free_port,
    service_env,
    spawn,
)
from facecast.errors import ErrorCode
from facecast.safety import LABELS
from test_service_hardening import ANCHORS, WEBHOOK_WORKER, Receiver, api

WORKER = [sys.executable, "-m", "facecast.worker", "--concurrency=1", "--loglevel=info"]
BLOCKING_TEXT = "Dieser Satz dauert eine Weile, damit das Bild lange gerendert wird. " * 8
BRIGHT = 0.8
"""Mean brightness above which the test's screen model calls a photo explicit."""
FINISHED = re.compile(r'facecast_jobs_finished_total\{kind="(\w+)",status="(\w+)"\} (\d+)')


def bright_is_explicit_model(path: Path) -> Path:
    """A tiny ONNX model with the detector's input and output that flags bright photos only
    (a white one is `explicit`, a portrait is not)."""
    scores = np.zeros((1, 4 + len(LABELS), ANCHORS), np.float32)
    scores[0, 4 + LABELS.index("FEMALE_BREAST_EXPOSED"), :] = 0.99

    def constant(name: str, value: float) -> onnx.TensorProto:
        return helper.make_tensor(name, TensorProto.FLOAT, [], [value])

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Sub", ["mean", "bright"], ["above"]),
            helper.make_node("Mul", ["above", "steep"], ["ramp"]),
            helper.make_node("Clip", ["ramp", "zero", "one"], ["flag"]),
            helper.make_node("Mul", ["scores", "flag"], ["output0"]),
        ],
        "bright_is_explicit",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 320, 320])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 22, ANCHORS])],
        [
            constant("bright", BRIGHT),
            constant("steep", 100.0),
            constant("zero", 0.0),
            constant("one", 1.0),
            helper.make_tensor(
                "scores", TensorProto.FLOAT, list(scores.shape), scores.ravel().tolist()
            ),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def ends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveService, Receiver]]:
    """The service (one render worker, a webhook worker) and a receiver for its webhooks."""
    root = tmp_path_factory.mktemp("lifecycle")
    redis.Redis.from_url(MODULE_REDIS_URL).flushdb()
    env = service_env(
        root / "data",
        MODULE_REDIS_URL,
        FACECAST_NUDITY_MODEL=str(bright_is_explicit_model(root / "bright.onnx")),
        FACECAST_WEBHOOK_SECRET="lifecycle-secret",
        FACECAST_WEBHOOK_ALLOW_PRIVATE="true",
        FACECAST_WEBHOOK_BACKOFF_SECONDS="0.5",
        FACECAST_WORKER_WARMUP="false",
    )
    port = free_port()
    logs = {"worker": root / "worker.log", "api": root / "api.log", "hooks": root / "hooks.log"}
    service = LiveService(f"http://127.0.0.1:{port}", root / "data", logs)
    receiver = Receiver(fail=0)
    try:
        service.processes["worker"] = spawn(WORKER, env, logs["worker"])
        service.processes["hooks"] = spawn(WEBHOOK_WORKER, env, logs["hooks"])
        service.processes["api"] = spawn(api(port), env, logs["api"])
        service.wait_ready()
        yield service, receiver
    finally:
        receiver.close()
        service.close()
        redis.Redis.from_url(MODULE_REDIS_URL).flushdb()


def finished(service: LiveService) -> dict[tuple[str, str], int]:
    """`jobs_finished_total` by (kind, status), from GET /metrics."""
    text = service.client.get("/metrics").text
    return {(kind, status): int(n) for kind, status, n in FINISHED.findall(text)}


def event_for(receiver: Receiver, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The webhook event the receiver got for `job_id` (exactly one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = [json.loads(body) for _, body in list(receiver.calls)]
        mine = [event for event in events if event["job_id"] == job_id]
        if mine:
            time.sleep(0.5)  # a second delivery would be a second ending
            events = [json.loads(body) for _, body in list(receiver.calls)]
            mine = [event for event in events if event["job_id"] == job_id]
            assert len(mine) == 1, mine
            event: dict[str, Any] = mine[0]
            return event
        time.sleep(0.1)
    raise AssertionError(f"no webhook for {job_id}: {receiver.calls}")


def manifest_of(service: LiveService, job_id: str) -> dict[str, Any]:
    """The job's job.json."""
    manifest: dict[str, Any] = json.loads((service.data_dir / job_id / "job.json").read_bytes())
    return manifest


def check_ending(
    service: LiveService,
    receiver: Receiver,
    job: dict[str, Any],
    status: str,
    label: str,
    before: dict[tuple[str, str], int],
    code: str | None = None,
) -> None:
    """Status, manifest, webhook and metric agree on how `job` ended."""
    job_id = job["job_id"]
    assert job["status"] == status, (job, service.dump_logs())
    assert (job["error"] or {}).get("code") == code, job
    manifest = manifest_of(service, job_id)
    assert manifest["state"]["status"] == status, manifest
    assert (manifest["state"]["error"] or {}).get("code") == code, manifest
    assert manifest["state"]["finished_at"] is not None
    event = event_for(receiver, job_id)
    assert event["status"] == status and (event["error"] or {}).get("code") == code, event
    after = finished(service)
    assert after.get(("animate", label), 0) == before.get(("animate", label), 0) + 1, after
    video = service.data_dir / job_id / "video.mp4"
    assert video.exists() == (status == "done"), job  # only a done job keeps outputs


def photo(tmp_path: Path, name: str, value: int) -> Path:
    """A plain 256 x 256 photo of one grey value (no face in it)."""
    path = tmp_path / name
    Image.fromarray(np.full((256, 256, 3), value, np.uint8)).save(path)
    return path


def test_done_then_reused(ends: tuple[LiveService, Receiver], portrait: Path) -> None:
    service, receiver = ends
    fields = {"text": "Fertig.", "size": "128", "webhook": receiver.url}
    before = finished(service)
    done = service.wait_job(service.submit_text(portrait, **fields))
    check_ending(service, receiver, done, "done", "done", before)
    before = finished(service)
    answer = service.animate(portrait, **fields)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "done"  # answered at once
    reused = service.job(answer.json()["job_id"])
    assert reused["job_id"] != done["job_id"] and reused["reused_from"] == done["job_id"]
    check_ending(service, receiver, reused, "done", "reused", before)
    assert manifest_of(service, reused["job_id"])["state"]["reused_from"] == done["job_id"]


def test_error(ends: tuple[LiveService, Receiver], tmp_path: Path) -> None:
    service, receiver = ends
    before = finished(service)
    grey = photo(tmp_path, "grey.png", 120)
    job = service.wait_job(service.submit_text(grey, "Niemand.", size=128, webhook=receiver.url))
    check_ending(service, receiver, job, "error", "error", before, ErrorCode.NO_FACE)


def test_rejected(ends: tuple[LiveService, Receiver], tmp_path: Path) -> None:
    service, receiver = ends
    before = finished(service)
    white = photo(tmp_path, "white.png", 250)
    job = service.wait_job(service.submit_text(white, "Nein.", size=128, webhook=receiver.url))
    check_ending(service, receiver, job, "rejected", "rejected", before, ErrorCode.EXPLICIT_IMAGE)


def test_canceled_queued_and_running(ends: tuple[LiveService, Receiver], portrait: Path) -> None:
    """A queued job is canceled by the API at once; a running one by its worker. Both count."""
    service, receiver = ends
    blocker = service.submit_text(portrait, BLOCKING_TEXT, size=256, webhook=receiver.url)
    deadline = time.monotonic() + 120
    while service.job(blocker)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service.job(blocker)["status"] == "running", service.dump_logs()
    before = finished(service)
    queued = service.submit_text(portrait, "Warte.", size=128, webhook=receiver.url)
    assert service.job(queued)["status"] == "queued"  # the only worker is busy
    answer = service.client.delete(f"/jobs/{queued}")
    assert answer.status_code == 200 and answer.json()["status"] == "canceled", answer.text
    check_ending(service, receiver, service.job(queued), "canceled", "canceled", before)
    before = finished(service)
    assert service.client.delete(f"/jobs/{blocker}").status_code == 200
    running = service.wait_job(blocker)
    check_ending(service, receiver, running, "canceled", "canceled", before)


def test_a_job_whose_worker_vanished_is_queued_again_in_seconds(
    tmp_path: Path, portrait: Path, scratch_redis_url: str
) -> None:
    """The whole worker is killed mid-job (no WorkerLostError, the message stays unacked until
    the visibility timeout, many minutes): the API sees that no live worker lists the job and
    queues it again within seconds; a new worker finishes it as attempt 2."""
    env = service_env(tmp_path / "data", scratch_redis_url, FACECAST_WORKER_WARMUP="false")
    port = free_port()
    logs = {"worker": tmp_path / "worker.log", "api": tmp_path / "api.log"}
    service = LiveService(f"http://127.0.0.1:{port}", tmp_path / "data", logs)
    try:
        service.processes["worker"] = spawn(WORKER, env, logs["worker"])
        service.processes["api"] = spawn(api(port), env, logs["api"])
        service.wait_ready()
        job_id = service.submit_text(portrait, BLOCKING_TEXT, size=128)
        deadline = time.monotonic() + 120
        while service.job(job_id)["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.job(job_id)["status"] == "running", service.dump_logs()
        worker = service.processes.pop("worker")
        os.killpg(worker.pid, signal.SIGKILL)  # the main process too: no WorkerLostError
        worker.wait()
        killed = time.monotonic()
        while service.job(job_id)["status"] == "running" and time.monotonic() - killed < 90:
            time.sleep(0.1)
        requeued_after = time.monotonic() - killed
        assert service.job(job_id)["status"] == "queued", service.dump_logs()
        assert requeued_after < 60, requeued_after  # heartbeat TTL + 30 s grace, not 25 min
        logs["worker2"] = tmp_path / "worker2.log"
        service.processes["worker2"] = spawn(WORKER, env, logs["worker2"])
        job = service.wait_job(job_id)
        assert job["status"] == "done" and job["attempt"] == 2, (job, service.dump_logs())
    finally:
        service.close()

"""Fixtures for the job service tests: a real uvicorn API and a real Celery worker on real Redis.

Registered from tests/conftest.py via `pytest_plugins`. Redis must answer at
FACECAST_TEST_REDIS_URL (default redis://127.0.0.1:6379/15); that database is flushed, and so
are FACECAST_TEST_SCRATCH_REDIS_URL (/14) and FACECAST_TEST_MODULE_REDIS_URL (/13).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import matplotlib
import pytest
import redis

import facecast

TEST_REDIS_URL = os.environ.get("FACECAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SCRATCH_REDIS_URL = os.environ.get("FACECAST_TEST_SCRATCH_REDIS_URL", "redis://127.0.0.1:6379/14")
MODULE_REDIS_URL = os.environ.get("FACECAST_TEST_MODULE_REDIS_URL", "redis://127.0.0.1:6379/13")
"""A third database, for a service a whole test module shares (beside the per-test scratch)."""
"""A second database for tests that flush it while the live service keeps its own."""
START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
FINAL = {"done", "error", "canceled", "rejected"}
UPLOAD_LIMIT = 2_000_000
"""FACECAST_MAX_UPLOAD_BYTES of the test services (small, so 413 is cheap to provoke)."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(data_dir: Path, redis_url: str | None, **extra: str) -> dict[str, str]:
    """Environment for service subprocesses: only our FACECAST_* settings, facecast importable."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FACECAST_") and k != "REDIS_URL"
    }
    src = str(Path(facecast.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["FACECAST_DATA_DIR"] = str(data_dir)
    env["FACECAST_MAX_UPLOAD_BYTES"] = str(UPLOAD_LIMIT)
    env["FACECAST_WORKER_HEARTBEAT_SECONDS"] = "1"
    env["FACECAST_RATES_FILE"] = str(data_dir / "rates.json")  # measured afresh per service
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL for the whole process group (the test started it in its own)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a subprocess log, for failure messages."""
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


@dataclass
class LiveService:
    """A running API (and its workers) plus helpers to talk to it."""

    base_url: str
    data_dir: Path
    logs: dict[str, Path]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, timeout=60.0)

    @property
    def ws_url(self) -> str:
        """The WebSocket base URL."""
        return "ws" + self.base_url.removeprefix("http")

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Block until GET /ready answers 200; fail with the logs if a process died."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(
                        f"{name} exited ({process.returncode}):\n{self.dump_logs()}"
                    )
            try:
                answer = self.client.get("/ready", timeout=5.0)
                if answer.status_code == 200:
                    return
                last = answer.text
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise AssertionError(f"service not ready after {timeout} s: {last}\n{self.dump_logs()}")

    def dump_logs(self) -> str:
        """All subprocess log tails."""
        return "\n".join(f"--- {name}\n{log_tail(path)}" for name, path in self.logs.items())

    def animate(self, photo: Path, **fields: Any) -> httpx.Response:
        """POST /animate with the photo and form fields (consent=true and size=256 by default)."""
        data = {"consent": "true", "size": "256", **{k: str(v) for k, v in fields.items()}}
        with photo.open("rb") as handle:
            return self.client.post(
                "/animate", data=data, files={"source_image": (photo.name, handle)}
            )

    def submit_text(self, photo: Path, text: str, **fields: Any) -> str:
        """Queue a text job; its id."""
        answer = self.animate(photo, text=text, **fields)
        assert answer.status_code == 202, answer.text
        job_id: str = answer.json()["job_id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}."""
        answer = self.client.get(f"/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait_job(self, job_id: str, timeout: float = JOB_TIMEOUT_S) -> dict[str, Any]:
        """Poll until the job is final."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.job(job_id)
            if body["status"] in FINAL:
                return body
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not final after {timeout} s\n{self.dump_logs()}")

    def close(self) -> None:
        """Stop the processes and the client."""
        self.client.close()
        for process in self.processes.values():
            stop_process(process)


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a subprocess in its own process group, output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def serve_single_command(root: Path, env: dict[str, str], workers: int = 1) -> LiveService:
    """`facecast serve` (API and workers in one command) in a subprocess; logs in `root`."""
    port = free_port()
    command = [
        sys.executable,
        "-c",
        f"from facecast.service.runner import serve; serve('127.0.0.1', {port}, {workers})",
    ]
    log = root / "serve.log"
    service = LiveService(f"http://127.0.0.1:{port}", root / "data", {"serve": log})
    service.processes["serve"] = spawn(command, env, log)
    return service


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The test Redis database, flushed before and after the session."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.ping()
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def scratch_redis_url() -> Iterator[str]:
    """An empty Redis database for one test."""
    client = redis.Redis.from_url(SCRATCH_REDIS_URL)
    client.flushdb()
    yield SCRATCH_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def portrait() -> Path:
    """A real portrait photo (shipped with matplotlib)."""
    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[LiveService]:
    """uvicorn serving create_app() plus a Celery worker with 2 processes, both on real Redis."""
    root = tmp_path_factory.mktemp("service")
    data_dir = root / "data"
    env = service_env(data_dir, redis_url)
    port = free_port()
    logs = {"worker": root / "worker.log", "api": root / "api.log"}
    service = LiveService(f"http://127.0.0.1:{port}", data_dir, logs)
    try:
        service.processes["worker"] = spawn(
            [sys.executable, "-m", "facecast.worker", "--concurrency=2", "--loglevel=info"],
            env,
            logs["worker"],
        )
        api = [sys.executable, "-m", "uvicorn", "--factory", "facecast.service.app:create_app"]
        service.processes["api"] = spawn(
            [*api, "--host", "127.0.0.1", "--port", str(port)], env, logs["api"]
        )
        service.wait_ready()
        yield service
    finally:
        service.close()


@pytest.fixture
def marker() -> str:
    """A unique value to find a test's processes by their environment."""
    return uuid.uuid4().hex


@contextlib.contextmanager
def tmpfs(tmp_path: Path, size_mib: int) -> Iterator[Path]:
    """A real filesystem of `size_mib` MiB (tmpfs) to fill up; the test is skipped where it
    cannot be mounted (needs root and CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)

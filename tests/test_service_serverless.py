"""`facecast serve` with no REDIS_URL: API and a worker from one call, no server needed at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest_service import serve_single_command, service_env


def processes_with(marker: str) -> list[int]:
    """Ids of live processes whose environment holds FACECAST_TEST_MARKER=marker."""
    needle = f"FACECAST_TEST_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_single_command_mode_without_redis(tmp_path: Path, portrait: Path, marker: str) -> None:
    env = service_env(
        tmp_path / "data", None, FACECAST_TTS_WAIT_SECONDS="0", FACECAST_TEST_MARKER=marker
    )
    service = serve_single_command(tmp_path, env)
    try:
        service.wait_ready()
        assert len(processes_with(marker)) >= 3  # serve, the Celery worker, its pool process
        serve_pid = service.processes["serve"].pid
        workers = [pid for pid in processes_with(marker) if pid != serve_pid]
        # Renders take only CPU time nothing else wants, so the API answers at once.
        assert os.sched_getscheduler(serve_pid) == os.SCHED_OTHER
        assert {os.sched_getscheduler(pid) for pid in workers} == {os.SCHED_IDLE}

        speech = service.client.post("/tts", json={"text": "Ganz ohne Server."})
        assert speech.status_code == 202, speech.text  # FACECAST_TTS_WAIT_SECONDS=0
        job = service.wait_job(speech.json()["job_id"])
        assert job["status"] == "done" and job["audio_url"], job
        assert service.client.get(job["audio_url"]).content[:4] == b"RIFF"

        video_job = service.submit_text(portrait, "Hallo aus dem Dateisystem.")
        events = []
        with service.client.stream("GET", f"/jobs/{video_job}/events") as stream:
            events = [json.loads(x[6:]) for x in stream.iter_lines() if x.startswith("data: ")]
        assert events[-1]["status"] == "done" and events[-1]["progress"] == 100
        head = service.client.get(events[-1]["video_url"], headers={"Range": "bytes=0-7"})
        assert head.status_code == 206 and head.content[4:8] == b"ftyp"
        assert (tmp_path / "data" / video_job / "state.json").exists()  # no Redis: state in files
        assert (tmp_path / "data" / "_broker" / "queue").is_dir()

        serve = service.processes["serve"]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, service.dump_logs()
        deadline = time.monotonic() + 10
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_with(marker) == [], "serve left processes behind"
    finally:
        service.close()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_worker_module_prints_help() -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "facecast.worker", "--help"],
        env=service_env(Path("/nonexistent"), None),
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert b"--concurrency" in answer.stdout


def test_time_limit_stops_a_long_job(tmp_path: Path, portrait: Path, marker: str) -> None:
    env = service_env(
        tmp_path / "data",
        None,
        FACECAST_JOB_SOFT_TIME_LIMIT="1",
        FACECAST_JOB_TIME_LIMIT="5",
        FACECAST_TEST_MARKER=marker,
    )
    service = serve_single_command(tmp_path, env)
    try:
        service.wait_ready()
        long_text = "Dieser Satz ist lang und wird wiederholt, bis die Zeit abläuft. " * 40
        job = service.wait_job(service.submit_text(portrait, long_text, size=512), timeout=60)
        assert job["status"] == "error" and job["error"]["code"] == "timeout", job
        assert "log_tail" not in job and "s." in job["error"]["message"]
        assert not (tmp_path / "data" / job["job_id"] / "video.mp4").exists()
        after = service.wait_job(service.submit_text(portrait, "Kurz."))
        assert after["status"] == "done", after
    finally:
        service.close()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)

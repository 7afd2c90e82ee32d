"""Captions through the service: the form fields, `captions_url`, the live stream's subtitle
rendition, and the client and `render --server` that use them (real uvicorn, Celery, Redis)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import srt
import webvtt

from conftest_service import LiveService
from facecast.audio import save_wav
from facecast.client import FacecastClient
from facecast.options import RenderOptions
from facecast.pipeline import synthesize

TEXT = "Guten Tag. Heute sprechen wir über die neuen Öffnungszeiten."


def test_text_job_serves_its_captions_and_a_subtitle_rendition(
    live_service: LiveService, portrait: Path
) -> None:
    job = live_service.wait_job(live_service.submit_text(portrait, TEXT, captions="vtt"))
    assert job["status"] == "done", live_service.dump_logs()
    answer = live_service.client.get(job["captions_url"])
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/vtt")
    cues = webvtt.from_string(answer.text).captions
    assert " ".join(c.text.replace("\n", " ") for c in cues) == TEXT
    # The live playlist: a master naming the video and the WebVTT subtitle rendition.
    base = f"/files/{job['job_id']}/stream"
    master = live_service.client.get(f"{base}/index.m3u8")
    assert master.status_code == 200
    assert '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="captions"' in master.text
    assert 'SUBTITLES="captions"' in master.text and "video.m3u8" in master.text
    video = live_service.client.get(f"{base}/video.m3u8").text
    assert "#EXTINF:" in video and video.rstrip().endswith("#EXT-X-ENDLIST")
    subtitles = live_service.client.get(f"{base}/captions.m3u8").text
    assert "captions.vtt" in subtitles
    segment = live_service.client.get(f"{base}/captions.vtt")
    assert segment.headers["content-type"].startswith("text/vtt")
    assert [c.text for c in webvtt.from_string(segment.text).captions] == [c.text for c in cues]


def test_a_job_without_captions_has_none(live_service: LiveService, portrait: Path) -> None:
    job = live_service.wait_job(live_service.submit_text(portrait, "Hallo."))
    assert job["status"] == "done" and job["captions_url"] is None
    master = live_service.client.get(f"/files/{job['job_id']}/stream/index.m3u8").text
    assert "SUBTITLES" not in master and "#EXTINF:" in master


def test_recording_captions_need_a_transcript(
    live_service: LiveService, portrait: Path, tmp_path: Path
) -> None:
    recording = tmp_path / "said.wav"
    save_wav(synthesize(TEXT, "de", None, "espeak").audio, recording)
    with recording.open("rb") as handle, portrait.open("rb") as photo:
        answer = live_service.client.post(
            "/animate",
            data={"consent": "true", "size": "256", "captions": "srt"},
            files={"source_image": (portrait.name, photo), "audio": handle},
        )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request" and "transcript" in error["message"]
    with FacecastClient(live_service.base_url) as client:
        options = RenderOptions(size=256, captions="srt")
        job = client.submit_audio(portrait, recording, options, consent=True, transcript=TEXT)
        job = client.wait(job.job_id)
        assert job.status == "done" and job.captions_name == "video.srt"
        saved = client.download(job.job_id, tmp_path / "said.srt", job.captions_name)
    subtitles = list(srt.parse(saved.read_text()))
    assert " ".join(s.content.replace("\n", " ") for s in subtitles) == TEXT


def test_render_server_writes_the_captions_beside_the_video(
    live_service: LiveService, portrait: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    command = "from facecast.cli import main; main()"
    done = subprocess.run(
        [
            sys.executable, "-c", command, "render", "--image", str(portrait), "--text", TEXT,
            "--size", "256", "--captions", "vtt", "--server", live_service.base_url,
            "--consent", "-o", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    cues = webvtt.read(str(tmp_path / "out.vtt")).captions
    assert " ".join(c.text.replace("\n", " ") for c in cues) == TEXT

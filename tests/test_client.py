"""facecast.client (sync and async) and `render --server`, against a real `facecast serve`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _measure import iter_frames
from conftest_service import LiveService, serve_single_command, service_env
from facecast.audio import save_wav
from facecast.client import AsyncFacecastClient, FacecastAPIError, FacecastClient, Job
from facecast.options import RenderOptions
from facecast.speech import registry
from facecast.video import probe

FACECAST = Path(sys.executable).with_name("facecast")
SMALL = RenderOptions(size=128)
LONG_TEXT = (
    "Dieser Satz ist lang genug, damit man ihn abbrechen kann, bevor das Video fertig ist, "
    "und damit der Fortschritt mehrmals steigt."
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`facecast serve` with one worker (server-less queue)."""
    root = tmp_path_factory.mktemp("client")
    service = serve_single_command(root, service_env(root / "data", None))
    try:
        service.wait_ready()
        yield service
    finally:
        service.close()


@pytest.fixture
def client(server: LiveService) -> Iterator[FacecastClient]:
    with FacecastClient(server.base_url) as api:
        yield api


def test_text_job_follow_and_download(
    client: FacecastClient, portrait: Path, tmp_path: Path
) -> None:
    job = client.submit_text(portrait, LONG_TEXT, SMALL, consent=True, client_ref="mine")
    assert isinstance(job, Job) and job.client_ref == "mine"
    views = list(client.follow(job.job_id))
    assert views[-1].status == "done" and views[-1].final
    progress = [v.progress for v in views]
    assert progress == sorted(progress) and progress[-1] == 100
    assert any(v.stream_url for v in views)
    target = client.download(job.job_id, tmp_path / "out.mp4")
    info = probe(target)
    assert info.width == 128 and info.has_audio
    assert not (tmp_path / "out.mp4.part").exists()


def test_download_resumes_a_partial_file(
    client: FacecastClient, portrait: Path, tmp_path: Path
) -> None:
    job = client.wait(client.submit_text(portrait, "Noch einmal.", SMALL, consent=True).job_id)
    whole = client.download(job.job_id, tmp_path / "whole.mp4").read_bytes()
    part = tmp_path / "resumed.mp4.part"
    part.write_bytes(whole[: len(whole) // 2])
    resumed = client.download(job.job_id, tmp_path / "resumed.mp4").read_bytes()
    assert resumed == whole
    (tmp_path / "again.mp4.part").write_bytes(whole)  # complete already: the server says 416
    assert client.download(job.job_id, tmp_path / "again.mp4").read_bytes() == whole


def test_async_audio_job(server: LiveService, portrait: Path, tmp_path: Path) -> None:
    speech = registry.get_backend("espeak").synthesize("Hallo aus der Datei.", "de")
    wav = tmp_path / "speech.wav"
    save_wav(speech.audio, wav)

    async def run() -> tuple[Job, Path]:
        async with AsyncFacecastClient(server.base_url) as api:
            job = await api.submit_audio(portrait, wav, SMALL, consent=True)
            seen: list[Job] = []
            final = await api.wait(job.job_id, seen.append)
            assert seen and seen[-1] == final
            return final, await api.download(job.job_id, tmp_path / "async.mp4")

    final, path = asyncio.run(run())
    assert final.status == "done"
    assert probe(path).audio_duration == pytest.approx(speech.audio.duration, abs=0.1)


def test_progress_falls_back_to_server_sent_events(
    client: FacecastClient, portrait: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(job_id: str) -> Iterator[Job]:
        raise OSError("WebSocket blocked by a proxy")

    monkeypatch.setattr(client, "_socket", refused)
    job = client.submit_text(portrait, "Ohne WebSocket.", SMALL, consent=True)
    views = list(client.follow(job.job_id))
    assert views[-1].status == "done"


def test_errors_carry_the_api_code(client: FacecastClient, portrait: Path, tmp_path: Path) -> None:
    with pytest.raises(FacecastAPIError) as missing:
        client.job("0" * 32)
    assert (missing.value.code, missing.value.status) == ("not_found", 404)
    with pytest.raises(ValueError, match="size must be between 128 and 2048"):
        RenderOptions(size=64)  # the bound the service enforces holds before anything is sent
    with pytest.raises(FacecastAPIError) as unknown:
        client.submit_text(portrait, "Hallo", RenderOptions(size=128, voice="nobody"), consent=True)
    assert unknown.value.code == "unknown_voice" and unknown.value.status == 400
    blank = tmp_path / "blank.png"
    Image.new("RGB", (256, 256), "white").save(blank)
    job = client.wait(client.submit_text(blank, "Hallo", SMALL, consent=True).job_id)
    assert job.status == "error" and job.error is not None and job.error.code == "no_face"
    with pytest.raises(FacecastAPIError) as unreachable:
        FacecastClient("http://127.0.0.1:9").job("0" * 32)
    assert unreachable.value.code == "unreachable"


def test_every_render_option_reaches_the_service(client: FacecastClient, portrait: Path) -> None:
    """Options beyond voice and size travel too: the server judges them, not the client."""
    with pytest.raises(FacecastAPIError) as renderer:
        client.submit_text(
            portrait, "Hallo", RenderOptions(size=256, renderer="liveportrait"), consent=True
        )
    assert renderer.value.code == "backend_unavailable" and renderer.value.status == 400
    job = client.wait(
        client.submit_text(
            portrait, "Hallo", RenderOptions(size=256, face_index=5), consent=True
        ).job_id
    )
    assert job.status == "error" and job.error is not None
    assert job.error.code == "invalid_face_choice"


def test_cancel_and_voices(client: FacecastClient, portrait: Path) -> None:
    job = client.submit_text(portrait, LONG_TEXT * 3, RenderOptions(size=512), consent=True)
    canceled = client.cancel(job.job_id)
    assert canceled.status in ("canceled", "running")
    assert client.wait(job.job_id).status == "canceled"
    # Cancelling a finished job deletes it for good: afterwards it is unknown.
    assert client.cancel(job.job_id).status == "canceled"
    with pytest.raises(FacecastAPIError) as gone:
        client.job(job.job_id)
    assert gone.value.status == 404
    voices = client.voices()
    assert voices and all(v.name and v.lang and v.languages for v in voices)
    assert all(v.lang == v.languages[0] for v in voices)


def test_cli_renders_on_a_server(server: LiveService, portrait: Path, tmp_path: Path) -> None:
    output = tmp_path / "remote.mp4"
    command = [str(FACECAST), "render", "--server", server.base_url, "--image", str(portrait)]
    done = subprocess.run(
        [*command, "--text", "Aus der Ferne.", "--size", "128", "--consent", "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and probe(output).width == 128
    nowhere = [str(FACECAST), "render", "--server", "http://127.0.0.1:9"]
    gone = subprocess.run(
        [*nowhere, "--image", str(portrait), "--text", "Hallo", "--consent", "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert gone.returncode == 2
    assert gone.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in gone.stderr


def test_render_server_needs_explicit_consent(server: LiveService, portrait: Path) -> None:
    command = [str(FACECAST), "render", "--server", server.base_url, "--image", str(portrait)]
    done = subprocess.run(
        [*command, "--text", "Hallo", "-o", "/tmp/never.mp4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.strip().startswith("error: add --consent")
    with FacecastClient(server.base_url) as api, pytest.raises(FacecastAPIError) as refused:
        api.submit_text(portrait, "Hallo", SMALL, consent=False)
    assert refused.value.code == "consent_required"


def test_the_key_comes_from_the_environment(
    tmp_path_factory: pytest.TempPathFactory,
    portrait: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path_factory.mktemp("keyed")
    env = service_env(root / "data", None, FACECAST_API_KEYS="right-key")
    service = serve_single_command(root, env)
    try:
        service.wait_ready()
        command = [str(FACECAST), "render", "--server", service.base_url, "--consent"]
        command += ["--image", str(portrait), "--text", "Mit Schlüssel.", "--size", "128"]
        clean = {k: v for k, v in os.environ.items() if k != "FACECAST_API_KEY"}

        def render(key: str, output: Path) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*command, "-o", str(output)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={**clean, "FACECAST_API_KEY": key},
            )

        wrong = render("wrong-key", tmp_path / "wrong.mp4")
        assert wrong.returncode == 2, wrong.stderr
        assert wrong.stderr.strip().splitlines() == [
            f"error: {service.base_url} refused the API key: pass --api-key KEY or set "
            "FACECAST_API_KEY."
        ]
        right = render("right-key", tmp_path / "right.mp4")
        assert right.returncode == 0, right.stderr
        assert probe(tmp_path / "right.mp4").width == 128

        monkeypatch.setenv("FACECAST_API_KEY", "right-key")
        with FacecastClient(service.base_url) as api:
            assert api.voices()
        monkeypatch.setenv("FACECAST_API_KEY", "wrong-key")
        with FacecastClient(service.base_url) as api, pytest.raises(FacecastAPIError) as denied:
            api.voices()
        assert denied.value.status == 401
    finally:
        service.close()


def test_batch_through_the_service(server: LiveService, portrait: Path, tmp_path: Path) -> None:
    shutil.copy(portrait, tmp_path / "me.jpg")
    Image.new("RGB", (256, 256), "white").save(tmp_path / "wall.png")
    (tmp_path / "m.csv").write_text(
        "image,text,output\n"
        "me.jpg,Erstens.,out/one.mp4\n"
        "me.jpg,Zweitens.,out/two.mp4\n"
        "wall.png,Drittens.,out/three.mp4\n",
        encoding="utf-8",
    )
    command = [str(FACECAST), "batch", str(tmp_path / "m.csv"), "--server", server.base_url]
    done = subprocess.run(
        [*command, "--consent", "--concurrency", "2", "--size", "128"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "2 rendered, 0 skipped (output exists), 1 failed"
    assert "line 4" in done.stderr and "(no_face)" in done.stderr
    assert probe(tmp_path / "out" / "one.mp4").width == 128
    assert probe(tmp_path / "out" / "two.mp4").n_frames > 10
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and refused.stderr.startswith("error: add --consent")


def test_render_server_is_the_twin_of_a_local_render(
    server: LiveService, portrait: Path, tmp_path: Path
) -> None:
    """Every option reaches the service, the seed included, and the worker (which spoke its
    warm-up text first) makes the very frames a fresh CLI process makes, while another seed
    moves the face visibly."""
    common = ["render", "--image", str(portrait), "--text", "Zwillinge.", "--size", "128"]
    common += ["--no-restore", "--expression", "neutral"]
    made = {}
    for name, extra in (
        ("local", ["--seed", "7"]),
        ("remote", ["--seed", "7", "--server", server.base_url, "--consent"]),
        ("other", ["--seed", "8"]),
    ):
        made[name] = tmp_path / f"{name}.mp4"
        done = subprocess.run(
            [str(FACECAST), *common, *extra, "-o", str(made[name])],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    local, remote, other = (list(iter_frames(made[n])) for n in ("local", "remote", "other"))
    assert len(local) == len(remote) == len(other)
    assert all(np.array_equal(x, y) for x, y in zip(local, remote, strict=True))
    moved = max(
        float(np.abs(x.astype(np.int16) - y).mean()) for x, y in zip(local, other, strict=True)
    )
    assert moved > 1.0, moved

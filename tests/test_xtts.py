"""XTTS-v2 plumbing on a tiny generated checkpoint: loading through the normal path (also
read-only and old-format), cloning from a sample with cached latents, the pipeline and the
service with a cloned voice, and the errors. Random weights: this proves plumbing, not voice."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest_service import LiveService, serve_single_command, service_env
from facecast import pipeline
from facecast.audio import AudioTrack, load_audio, save_wav
from facecast.errors import BackendUnavailableError, FacecastError, UnsupportedLanguageError
from facecast.options import RenderOptions
from facecast.speech import registry
from facecast.speech.cloning import read_voice_sample
from facecast.speech.limits import synthesize_capped
from facecast.speech.xtts import LANGUAGES, XttsBackend, xtts_installed
from test_cli import facecast

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("TTS", "torch", "torchaudio")),
    reason="XTTS needs the [xtts] extra (coqui-tts, torch, torchaudio; .ci/run installs it): "
    "pip install -e '.[xtts]' to run (see the README on torch's CPU wheel).",
)

RATE = 22_050


def voice_like(seconds: float, pitch: float) -> AudioTrack:
    t = np.arange(int(seconds * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return AudioTrack((0.2 * buzz * envelope).astype(np.float32), RATE)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def xtts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint, current format, in a read-only folder."""
    from xtts_checkpoint import make_checkpoint

    folder = make_checkpoint(tmp_path_factory.mktemp("xtts") / "model")
    for path in folder.iterdir():
        path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder


@pytest.fixture(scope="session")
def old_xtts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint in the original release's format (config pickled), read-only."""
    from xtts_checkpoint import make_checkpoint

    folder = make_checkpoint(tmp_path_factory.mktemp("xtts-old") / "model", old_format=True)
    for path in folder.iterdir():
        path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voice-samples")
    files = {"a": folder / "a.wav", "b": folder / "b.flac"}
    save_wav(voice_like(4.0, 140.0), files["a"])
    # Any format facecast.audio reads: FLAC through PyAV.
    import av

    track = voice_like(5.0, 210.0)
    with av.open(str(files["b"]), "w") as container:
        stream = container.add_stream("flac", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (track.samples * 32767).astype(np.int16)[None], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return files


@pytest.fixture
def xtts(xtts_dir: Path, tmp_path: Path) -> Iterator[XttsBackend]:
    """The backend registered as `xtts`, with a fresh latent cache."""
    backend = XttsBackend(xtts_dir, tmp_path / "voice-cache")
    registry.register(backend)
    yield backend
    registry.REGISTRY._backends.pop("xtts", None)
    registry.REGISTRY._loaded_in.pop("xtts", None)


def test_registered_only_with_package_and_weights(xtts_dir: Path, tmp_path: Path) -> None:
    assert xtts_installed(xtts_dir)
    assert not xtts_installed(None)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_bytes((xtts_dir / "config.json").read_bytes())
    assert not xtts_installed(partial)
    with pytest.raises(BackendUnavailableError, match=r"model\.pth"):
        XttsBackend(partial).load()


def test_clone_and_speak_through_the_pipeline(
    xtts: XttsBackend, sample_files: dict[str, Path]
) -> None:
    assert registry.cloning_backend() == "xtts"
    speech = pipeline.synthesize(
        "Am 3.12.2026 um 14:30 Uhr.", "de", backend="xtts", voice_sample=sample_files["a"]
    )
    assert speech.audio.sample_rate == 24_000
    assert speech.audio.duration > 0.2
    assert np.isfinite(speech.audio.samples).all()
    assert np.abs(speech.audio.samples).max() <= 1.0
    assert speech.phonemes == ()  # no timings: the mouth follows the signal
    cached = list((xtts.cache_dir or Path()).rglob("*.pt"))
    assert len(cached) == 1
    assert not any(p.name.endswith(".partial") for p in cached[0].parent.iterdir())


def test_rate_and_volume_apply_after_the_cloning(
    xtts: XttsBackend, sample_files: dict[str, Path]
) -> None:
    """The cloned voice is made first (its character is the sample's), then changed."""
    import torch

    from facecast.speech.voicing import Prosody

    def spoken(prosody: Prosody) -> AudioTrack:
        torch.manual_seed(7)  # XTTS samples its tokens: the same seed, the same speech
        return pipeline.synthesize(
            "Guten Morgen.", "de", backend="xtts", voice_sample=sample_files["a"], prosody=prosody
        ).audio

    plain, changed = spoken(Prosody()), spoken(Prosody(rate=2.0, volume=-6))
    assert changed.sample_rate == plain.sample_rate == 24_000
    assert changed.duration == pytest.approx(plain.duration / 2, rel=0.02)
    assert np.abs(changed.samples).max() < np.abs(plain.samples).max()


def test_latents_are_cached_per_sample(
    xtts_dir: Path, tmp_path: Path, sample_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    first = XttsBackend(xtts_dir, cache)
    voice_a = first.clone(read_voice_sample(sample_files["a"]))
    voice_b = first.clone(read_voice_sample(sample_files["b"]))
    assert voice_a != voice_b
    assert len(list(cache.rglob("*.pt"))) == 2
    again = XttsBackend(xtts_dir, cache)  # a new process, as it were
    with caplog.at_level(logging.INFO, logger="facecast.speech.xtts"):
        assert again.clone(read_voice_sample(sample_files["a"])) == voice_a
    assert "read from the cache" in caplog.text
    assert again.synthesize("hallo welt.", "de", voice_a).audio.duration > 0
    assert not any(xtts_dir.rglob("*.pt")), "nothing may be cached under the model directory"


def test_old_format_read_only_model_is_not_rewritten(
    old_xtts_dir: Path, tmp_path: Path, sample_files: dict[str, Path]
) -> None:
    model = old_xtts_dir / "model.pth"
    before = (digest(model), model.stat().st_mtime_ns)
    backend = XttsBackend(old_xtts_dir, tmp_path / "cache")
    voice = backend.clone(read_voice_sample(sample_files["a"]))
    assert backend.synthesize("good morning.", "en", voice).audio.duration > 0
    assert (digest(model), model.stat().st_mtime_ns) == before
    assert sorted(p.name for p in old_xtts_dir.iterdir()) == [
        "config.json",
        "model.pth",
        "vocab.json",
    ]


def test_errors(xtts: XttsBackend, sample_files: dict[str, Path]) -> None:
    assert len(LANGUAGES) == 17 and xtts.languages() == LANGUAGES
    voice = xtts.clone(read_voice_sample(sample_files["a"]))
    with pytest.raises(UnsupportedLanguageError, match="XTTS does not speak"):
        xtts.synthesize("hallo.", "xx", voice)
    with pytest.raises(FacecastError, match="voice sample"):
        xtts.synthesize("hallo.", "de", None)
    with pytest.raises(FacecastError, match="Unknown XTTS voice"):
        xtts.synthesize("hallo.", "de", "clone-" + "0" * 32)
    with pytest.raises(BackendUnavailableError, match="cannot clone"):
        pipeline.synthesize("Hallo.", "de", backend="espeak", voice_sample=sample_files["a"])


def test_render_with_a_cloned_voice(
    xtts: XttsBackend, sample_files: dict[str, Path], grace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clone.mp4"
    options = RenderOptions(
        size=256, lang="de", speech_backend="xtts", voice_sample=sample_files["b"]
    )
    result = pipeline.render_talking_head(grace, out, text="Hallo.", options=options)
    assert out.is_file() and result.frames > 5
    assert load_audio(out).duration == pytest.approx(result.duration, abs=0.1)


@pytest.fixture(scope="module")
def cloning_service(
    tmp_path_factory: pytest.TempPathFactory, xtts_dir: Path
) -> Iterator[LiveService]:
    """`facecast serve` with FACECAST_XTTS_MODEL_DIR set: cloning is offered and works. The
    server-less queue keeps its jobs away from other test services' workers."""
    root = tmp_path_factory.mktemp("cloning-service")
    env = service_env(
        root / "data",
        None,
        FACECAST_XTTS_MODEL_DIR=str(xtts_dir),
        FACECAST_TTS_WAIT_SECONDS="90",
        FACECAST_NUDITY_SCREEN="false",
    )
    service = serve_single_command(root, env, workers=1)
    try:
        service.wait_ready()
        yield service
    finally:
        service.close()


def test_service_clones_a_voice_end_to_end(
    cloning_service: LiveService, sample_files: dict[str, Path]
) -> None:
    answer = cloning_service.client.post(
        "/tts",
        data={"text": "Guten Tag.", "lang": "de"},
        files={"voice_clone_wav": ("me.flac", sample_files["b"].read_bytes(), "audio/flac")},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text + cloning_service.dump_logs()
    audio = httpx.get(answer.json()["audio_url"], timeout=30)
    assert audio.status_code == 200
    path = cloning_service.data_dir / "check.wav"
    path.write_bytes(audio.content)
    assert load_audio(path).duration > 0.2
    cached = list((cloning_service.data_dir / "voice-cache").rglob("*.pt"))
    assert len(cached) == 1, "latents are cached under the data directory, per sample"
    short = cloning_service.data_dir / "short.wav"
    save_wav(voice_like(1.0, 140.0), short)
    too_short = cloning_service.client.post(
        "/tts",
        data={"text": "Hallo."},
        files={"voice_clone_wav": ("me.wav", short.read_bytes(), "audio/wav")},
    )
    assert too_short.status_code == 400
    assert too_short.json()["error"]["code"] == "voice_sample_too_short"
    thai = cloning_service.client.post(
        "/tts",
        data={"text": "สวัสดีครับ", "lang": "th"},
        files={"voice_clone_wav": ("me.wav", sample_files["a"].read_bytes(), "audio/wav")},
    )
    assert thai.status_code == 400
    assert thai.json()["error"]["code"] == "unsupported_language"
    assert os.environ.get("FACECAST_XTTS_MODEL_DIR") is None  # the test process stayed clean


def test_hostile_samples_on_a_cloning_server_cost_the_api_nothing(
    cloning_service: LiveService,
) -> None:
    """Issue 21: headers claiming 200 MHz, 768 kHz, 3 Hz, 255 channels, 8 at once, on a server
    that does clone: each refused from its header (invalid_voice_sample) within seconds, and
    the API's memory stays put (+2.5 GiB before)."""
    from test_attacks_round3 import hostile_sample_posts, rss_mib

    api = cloning_service.processes["serve"].pid
    before = rss_mib(api)
    times = hostile_sample_posts(cloning_service, "/tts", None)
    assert max(times) < 10.0, times
    assert rss_mib(api) - before < 40


def test_streaming_synthesis_stops_at_the_cap(
    xtts: XttsBackend, sample_files: dict[str, Path]
) -> None:
    voice = xtts.clone(read_voice_sample(sample_files["a"]))
    pieces = list(xtts.stream("guten tag, wie geht es.", "de", voice))
    assert len(pieces) >= 2, "audio arrives in pieces while it is generated"
    text = "Guten Tag, wie geht es Ihnen heute? " * 40
    speech = synthesize_capped(xtts, text, "de", voice, max_seconds=1.0)
    assert 0.5 < speech.audio.duration <= 1.0


def test_named_speakers_of_the_weights(xtts_dir: Path, tmp_path: Path) -> None:
    """With the release's speakers_xtts.pth, XTTS speaks without a sample (its first voice by
    default) and by speaker name."""
    from xtts_checkpoint import write_speakers

    folder = tmp_path / "with-speakers"
    folder.mkdir()
    for name in ("config.json", "model.pth", "vocab.json"):
        (folder / name).symlink_to(xtts_dir / name)
    write_speakers(folder / "speakers_xtts.pth", ("Ana Florence", "Claribel Dervla"))
    backend = XttsBackend(folder, tmp_path / "cache")
    assert backend.speakers() == ("Ana Florence", "Claribel Dervla")
    assert backend.synthesize("hello there.", "en").audio.duration > 0
    assert backend.synthesize("hallo.", "de", "Claribel Dervla").audio.duration > 0
    with pytest.raises(FacecastError, match="Ana Florence"):
        backend.synthesize("hallo.", "de", "Nobody")


def test_cli_renders_remotely_with_a_cloned_voice(
    cloning_service: LiveService, sample_files: dict[str, Path], grace: Path, tmp_path: Path
) -> None:
    """`facecast render --server --clone-voice` uploads the sample with the job (client)."""
    out = tmp_path / "remote.mp4"
    run = facecast(
        "render",
        "--server",
        cloning_service.base_url,
        "--consent",
        "--image",
        grace,
        "--text",
        "Guten Tag.",
        "--clone-voice",
        sample_files["a"],
        "--size",
        "256",
        "-o",
        out,
        cwd=tmp_path,
    )
    assert run.code == 0, run.stderr + cloning_service.dump_logs()
    assert out.is_file() and load_audio(out).duration > 0.2

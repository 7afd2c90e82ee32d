"""Speech at submit time, as an attacker or a careless client tries it: texts that would speak
for too long and bad voice samples are refused with a clear 4xx before any job exists."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest_service import LiveService
from facecast.audio import AudioTrack, save_wav
from facecast.client import FacecastClient
from facecast.errors import VoiceSampleError
from facecast.speech.cloning import read_voice_sample
from test_cli import facecast

CJK_BOMB = "会议在下午开始我们讨论了很多问题" * 312  # 4992 characters: ~22 min from espeak
RATE = 22_050


def error_of(answer: httpx.Response, status: int) -> dict[str, str]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    error: dict[str, str] = body["error"]
    return error


def job_dirs(service: LiveService) -> set[str]:
    return (
        {p.name for p in service.data_dir.iterdir() if p.is_dir()}
        if service.data_dir.is_dir()
        else set()
    )


def tone(seconds: float) -> AudioTrack:
    """A voice-like signal: a 140 Hz buzz with harmonics, gently modulated."""
    t = np.arange(int(seconds * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return AudioTrack((0.2 * buzz * envelope).astype(np.float32), RATE)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("samples")
    made = {}
    for name, seconds in (("good", 4.0), ("short", 1.5), ("long", 35.0)):
        made[name] = folder / f"{name}.wav"
        save_wav(tone(seconds), made[name])
    made["silent"] = folder / "silent.wav"
    save_wav(AudioTrack(np.zeros(4 * RATE, np.float32), RATE), made["silent"])
    made["png"] = folder / "not-audio.wav"
    made["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    made["empty"] = folder / "empty.wav"
    made["empty"].write_bytes(b"")
    return made


def test_cjk_bomb_is_refused_at_submit_on_every_route(
    live_service: LiveService, portrait: Path
) -> None:
    before = job_dirs(live_service)
    tts = live_service.client.post("/tts", json={"text": CJK_BOMB, "lang": "cmn"})
    assert error_of(tts, 400)["code"] == "speech_too_long"
    multipart = live_service.client.post(
        "/tts", files={"text": (None, CJK_BOMB), "lang": (None, "ja")}
    )
    assert error_of(multipart, 400)["code"] == "speech_too_long"
    animate = live_service.animate(portrait, text=CJK_BOMB, lang="cmn")
    assert error_of(animate, 400)["code"] == "speech_too_long"
    assert "limit" in error_of(animate, 400)["message"]
    assert job_dirs(live_service) == before, "a refused request left a job behind"


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        ("empty", "voice_sample_missing"),
        ("short", "voice_sample_too_short"),
        ("long", "voice_sample_too_long"),
        ("png", "invalid_voice_sample"),
        ("silent", "invalid_voice_sample"),
    ],
)
def test_voice_sample_errors(samples: dict[str, Path], sample: str, code: str) -> None:
    """What a cloning server answers for each bad sample (test_xtts.py checks it through a
    live one)."""
    with pytest.raises(VoiceSampleError) as caught:
        read_voice_sample(samples[sample])
    assert caught.value.code == code


@pytest.mark.parametrize("sample", ["empty", "short", "long", "png", "silent", "good"])
def test_cloning_errors_on_tts(
    live_service: LiveService, samples: dict[str, Path], sample: str
) -> None:
    """No XTTS on this server: every sample is refused before it is stored or decoded."""
    code = "backend_unavailable"
    before = job_dirs(live_service)
    answer = live_service.client.post(
        "/tts",
        data={"text": "Klon mich."},
        files={"voice_clone_wav": ("me.wav", samples[sample].read_bytes(), "audio/wav")},
    )
    error = error_of(answer, 400)
    assert error["code"] == code, error
    assert job_dirs(live_service) == before


def test_cloning_errors_on_animate(
    live_service: LiveService, portrait: Path, samples: dict[str, Path]
) -> None:
    def animate(sample: str, **fields: str) -> httpx.Response:
        with portrait.open("rb") as photo:
            return live_service.client.post(
                "/animate",
                data={"consent": "true", **fields},
                files={
                    "source_image": (portrait.name, photo, "image/jpeg"),
                    "voice_clone_wav": ("me.wav", samples[sample].read_bytes(), "audio/wav"),
                },
            )

    # No cloning backend: refused before the sample is read, whatever it holds.
    assert error_of(animate("short", text="Hallo."), 400)["code"] == "backend_unavailable"
    assert error_of(animate("png", text="Hallo."), 400)["code"] == "backend_unavailable"
    absent = error_of(animate("good", text="Hallo."), 400)
    assert absent["code"] == "backend_unavailable" and "cloning" in absent["message"].lower()
    assert error_of(animate("good"), 422)["code"] == "invalid_request"  # a voice needs text


def test_voice_sample_sent_as_text_is_refused(live_service: LiveService) -> None:
    answer = live_service.client.post(
        "/tts", files={"text": (None, "Hallo."), "voice_clone_wav": (None, "not a file")}
    )
    assert error_of(answer, 400)["code"] == "voice_sample_missing"


def test_cli_refuses_the_bomb_with_one_plain_line(tmp_path: Path) -> None:
    out = tmp_path / "bomb.wav"
    run = facecast("tts", "--text", CJK_BOMB, "--lang", "cmn", "-o", out, cwd=tmp_path)
    assert run.code == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().startswith("error:") and "limit" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_cloning_without_xtts_is_one_plain_line(
    tmp_path: Path, samples: dict[str, Path]
) -> None:
    out = tmp_path / "clone.wav"
    run = facecast(
        "tts", "--text", "Hallo.", "--clone-voice", samples["good"], "-o", out, cwd=tmp_path
    )
    assert run.code == 2
    assert run.stderr.strip().startswith("error:") and "XTTS" in run.stderr
    assert not out.exists()


def test_cli_render_cloning_without_xtts_is_one_plain_line(
    tmp_path: Path, samples: dict[str, Path], portrait: Path
) -> None:
    out = tmp_path / "clone.mp4"
    run = facecast(
        "render",
        "--image",
        portrait,
        "--text",
        "Hallo.",
        "--clone-voice",
        samples["good"],
        "-o",
        out,
        cwd=tmp_path,
    )
    assert run.code == 2
    assert run.stderr.strip().startswith("error:") and "XTTS" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_model_dir_without_weights_offers_no_cloning(tmp_path: Path) -> None:
    """FACECAST_XTTS_MODEL_DIR alone once made the API accept cloning that then failed in the
    worker; now the registry offers cloning only with the package and all weight files."""
    import subprocess
    import sys

    (tmp_path / "config.json").write_text("{}")
    env = {
        **os.environ,
        "FACECAST_XTTS_MODEL_DIR": str(tmp_path),
        "FACECAST_DATA_DIR": str(tmp_path),
    }
    probe = (
        "from facecast.speech.registry import available, cloning_backend; "
        "print('xtts' in available(), cloning_backend())"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "False None"


def test_text_normalize_says_what_will_be_spoken(live_service: LiveService) -> None:
    answer = live_service.client.post(
        "/text/normalize",
        json={
            "text": "Am 3.12. zahlt Nguyen 5 € [pause 400ms] danke",
            "lang": "de",
            "lexicon": "[de]\nNguyen = Nujen",
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["spoken"] == "Am dritten Dezember zahlt Nujen fünf Euro [pause 400ms] danke"
    assert 1.5 < body["estimated_seconds"] < 8


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "a", "lexicon": "Nguyen = Nujen"}, 400, "invalid_lexicon"),
        ({"text": "a [pause 30s] b"}, 400, "invalid_text"),
        ({"text": "x" * 5001}, 400, "invalid_text"),
        ({"text": "a", "lang": "../etc"}, 422, "invalid_request"),
        ({"text": "a", "ssml": True}, 422, "invalid_request"),
    ],
)
def test_text_normalize_refuses_plainly(
    live_service: LiveService, body: dict[str, object], status: int, code: str
) -> None:
    error = error_of(live_service.client.post("/text/normalize", json=body), status)
    assert error["code"] == code, error


def test_lexicon_and_pauses_reach_the_voice(live_service: LiveService, portrait: Path) -> None:
    before = job_dirs(live_service)
    bad = live_service.client.post("/tts", json={"text": "Hallo", "lexicon": "[de]\nHallo"})
    assert error_of(bad, 400)["code"] == "invalid_lexicon"
    animate = live_service.animate(portrait, text="Hallo", lexicon="oops")
    assert error_of(animate, 400)["code"] == "invalid_lexicon"
    assert job_dirs(live_service) == before

    def seconds(**body: str) -> float:
        answer = live_service.client.post("/tts", json={"lang": "en", **body})
        assert answer.status_code == 200, answer.text
        audio = live_service.client.get(answer.json()["audio_url"])
        with wave.open(io.BytesIO(audio.content)) as wav:
            return wav.getnframes() / wav.getframerate()

    with FacecastClient(live_service.base_url) as client:
        assert client.spoken("GIF [pause 1s]", "en", "[en]\nGIF = jiff") == "jiff [pause 1000ms]"
    plain = seconds(text="GIF")
    assert seconds(text="GIF", lexicon="[en]\nGIF = graphics interchange format") > plain + 0.5
    assert seconds(text="GIF [pause 1500ms] GIF") > 2 * plain + 1.2

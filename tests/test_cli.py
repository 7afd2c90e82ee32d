"""The real `facecast` console script in a subprocess: outputs, and plain one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from _measure import encode_audio, frames_digest
from conftest import astronaut_photo
from facecast.audio import load_audio, save_wav
from facecast.pipeline import synthesize
from facecast.video import probe

FACECAST = Path(sys.executable).with_name("facecast")
TEXT = "Hallo, schön dich zu sehen."
CLI_TIMEOUT_S = 120
WROTE = re.compile(r"wrote (?P<path>\S+) \((?P<seconds>[\d.]+) s, (?P<count>\d+) (?P<unit>\w+)\)")


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        """What a terminal would show: progress redraws (carriage returns) split lines too."""
        return [part.strip() for part in re.split(r"[\r\n]+", self.stderr) if part.strip()]


def facecast(*args: str | Path, cwd: Path) -> Run:
    done = subprocess.run(
        [str(FACECAST), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _assert_plain_error(run: Run, expected: str) -> None:
    assert run.code != 0, run.stdout
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr_lines if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert run.stderr_lines[-1] == errors[0], "something was printed after the error"
    assert expected.lower() in errors[0].lower(), errors[0]


# --- working commands --------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, grace: Path) -> tuple[Run, Path]:
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "hallo.mp4"
    run = facecast(
        "render", "--image", grace, "--text", TEXT, "-o", out, "--size", "256", cwd=folder
    )
    return run, out


def test_render_text_writes_an_mp4_and_says_where(rendered: tuple[Run, Path]) -> None:
    run, out = rendered
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    said = WROTE.search(run.stdout)
    assert said, run.stdout
    assert Path(said["path"]) == out
    info = probe(out)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (256, 256)
    assert int(said["count"]) == info.n_frames and said["unit"] == "frames"
    assert float(said["seconds"]) == pytest.approx(info.audio_duration, abs=0.06)
    # "Nx real time", or "N s per second of video" when slower (a cold start on a busy machine).
    assert "x real time" in run.stdout or " s per second of video" in run.stdout


def test_same_command_gives_the_same_video(
    rendered: tuple[Run, Path], grace: Path, tmp_path: Path
) -> None:
    """Two fresh processes: espeak starts from the same state, so the frames match exactly."""
    _, first = rendered
    out = tmp_path / "again.mp4"
    run = facecast(
        "render", "--image", grace, "--text", TEXT, "-o", out, "--size", "256", cwd=tmp_path
    )
    assert run.code == 0, run.stderr
    assert frames_digest(out) == frames_digest(first)


def test_render_audio_full_frame(tmp_path: Path, astronaut: Path) -> None:
    wav = tmp_path / "speech.wav"
    save_wav(synthesize("Guten Tag.", "de").audio, wav)
    out = tmp_path / "full.mp4"
    run = facecast(
        "render",
        "--image",
        astronaut,
        "--audio",
        wav,
        "-o",
        out,
        "--size",
        "300",
        "--full-frame",
        "--fps",
        "30",
        "--seed",
        "4",
        cwd=tmp_path,
    )
    assert run.code == 0, run.stderr
    info = probe(out)
    assert (info.width, info.height, info.fps) == (300, 300, 30.0)


def test_tts_writes_a_wav(tmp_path: Path) -> None:
    out = tmp_path / "gruss.wav"
    run = facecast("tts", "--text", TEXT, "--lang", "de", "-o", out, cwd=tmp_path)
    assert run.code == 0, run.stderr
    said = WROTE.search(run.stdout)
    assert said and said["unit"] == "phonemes", run.stdout
    assert out.read_bytes()[:4] == b"RIFF"
    track = load_audio(out)
    assert track.duration == pytest.approx(float(said["seconds"]), abs=0.06)
    assert float(np.sqrt(np.mean(track.samples**2))) > 0.02


def test_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo.mp4"
    run = facecast("demo", "-o", out, "--size", "256", cwd=tmp_path)
    assert run.code == 0, run.stderr
    info = probe(out)
    assert info.has_video and info.has_audio and info.n_frames > 50
    assert WROTE.search(run.stdout)


# --- bad input ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, grace: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    notes = folder / "notes.jpg"
    notes.write_text("Dies ist kein Foto.\n" * 10)
    half_photo = folder / "half.jpg"
    jpeg = grace.read_bytes()
    half_photo.write_bytes(jpeg[: len(jpeg) // 2])
    speech = synthesize(TEXT, "de").audio
    mp3 = folder / "speech.mp3"
    encode_audio(speech.samples, speech.sample_rate, mp3, "mp3", "libmp3lame")
    half_mp3 = folder / "half.mp3"
    half_mp3.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 2])
    wav = folder / "speech.wav"
    save_wav(speech, wav)
    half_wav = folder / "half.wav"
    half_wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])
    return {
        "photo": grace,
        "notes": notes,
        "half_photo": half_photo,
        "coffee": astronaut_photo().with_name("coffee.png"),
        "wav": wav,
        "half_mp3": half_mp3,
        "half_wav": half_wav,
    }


BAD_INPUT = {
    "not_an_image": (["--image", "{notes}", "--text", TEXT], "not an image"),
    "no_face": (["--image", "{coffee}", "--text", TEXT], "no face"),
    "truncated_image": (["--image", "{half_photo}", "--text", TEXT], "damaged or truncated"),
    "truncated_mp3": (["--image", "{photo}", "--audio", "{half_mp3}"], "damaged or truncated"),
    "empty_text": (["--image", "{photo}", "--text", ""], "empty"),
    "unknown_language": (["--image", "{photo}", "--text", TEXT, "--lang", "xx"], "'xx'"),
    "text_and_audio": (["--image", "{photo}", "--text", TEXT, "--audio", "{wav}"], "exactly one"),
    "neither_text_nor_audio": (["--image", "{photo}"], "exactly one"),
    "unknown_expression": (
        ["--image", "{photo}", "--text", TEXT, "--expression", "grin"],
        "'grin'",
    ),
}


def _args(template: list[str], files: dict[str, Path]) -> list[str]:
    return [arg.format(**files) if arg.startswith("{") else arg for arg in template]


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gives_one_plain_error_line(
    case: str, bad_files: dict[str, Path], tmp_path: Path
) -> None:
    template, expected = BAD_INPUT[case]
    out = tmp_path / "out.mp4"
    run = facecast("render", *_args(template, bad_files), "-o", out, "--size", "256", cwd=tmp_path)
    _assert_plain_error(run, expected)
    assert run.code == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "a partial file was left behind"


def test_truncated_wav_is_refused(bad_files: dict[str, Path], tmp_path: Path) -> None:
    run = facecast(
        "render",
        "--image",
        bad_files["photo"],
        "--audio",
        bad_files["half_wav"],
        "-o",
        tmp_path / "out.mp4",
        "--size",
        "256",
        cwd=tmp_path,
    )
    _assert_plain_error(run, "truncated")


def test_error_is_the_only_thing_on_stderr(bad_files: dict[str, Path], tmp_path: Path) -> None:
    run = facecast(
        "render",
        "--image",
        bad_files["coffee"],
        "--text",
        TEXT,
        "-o",
        tmp_path / "out.mp4",
        cwd=tmp_path,
    )
    assert run.code == 2
    assert run.stderr.splitlines() == [run.stderr_lines[-1]], run.stderr

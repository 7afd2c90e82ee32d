"""What a newcomer types: text from standard input or a file, outputs in folders that do not
exist, and the face list as JSON (the real console script in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
from PIL import Image

from test_cli import CLI_TIMEOUT_S, FACECAST


def run(*args: str | Path, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FACECAST), *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def test_text_from_standard_input_and_from_a_file(tmp_path: Path) -> None:
    said = "Guten Abend, wie geht es Ihnen heute?"
    piped = run("tts", "--text", "-", "-o", "piped.wav", cwd=tmp_path, stdin=said)
    assert piped.returncode == 0, piped.stderr
    (tmp_path / "said.txt").write_text(said, encoding="utf-8")
    filed = run("tts", "--text-file", "said.txt", "-o", "filed.wav", cwd=tmp_path)
    assert filed.returncode == 0, filed.stderr
    assert seconds(tmp_path / "piped.wav") == seconds(tmp_path / "filed.wav") > 1.5
    shown = run("tts", "--show-text", "--text", "-", cwd=tmp_path, stdin="Um 9 Uhr")
    assert shown.stdout.strip() == "Um neun Uhr"


def test_text_input_mistakes_are_one_plain_line(tmp_path: Path) -> None:
    (tmp_path / "said.txt").write_text("Hallo", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Grüße".encode("latin-1"))
    cases = {
        ("tts",): "Give --text",
        ("tts", "--text", "a", "--text-file", "said.txt"): "not both",
        ("tts", "--text-file", "latin1.txt"): "not UTF-8",
    }
    for args, message in cases.items():
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 2, args
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_an_output_in_a_missing_folder_is_named_before_any_work(
    tmp_path: Path, grace: Path
) -> None:
    target = tmp_path / "no" / "such" / "out.mp4"
    for args in (
        ("tts", "--text", "Hallo", "-o", target.with_suffix(".wav")),
        ("render", "--image", grace, "--text", "Hallo", "-o", target),
        ("demo", "-o", target),
    ):
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 2
        folder = target.parent
        assert done.stderr.strip().splitlines() == [
            f"error: cannot write {target if args[0] != 'tts' else target.with_suffix('.wav')}: "
            f"the folder {folder} does not exist."
        ], done.stderr
    assert not (tmp_path / "no").exists()


def test_faces_json_is_what_post_faces_answers(tmp_path: Path, grace: Path) -> None:
    done = run("faces", "--image", grace, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert set(found) == {"width", "height", "rotation", "faces"}
    assert found["rotation"] == 0 and len(found["faces"]) == 1
    face = found["faces"][0]
    assert face["index"] == 0 and 0 <= face["x0"] < face["x1"] <= found["width"]


def test_preview_is_the_first_frame_as_png(tmp_path: Path, grace: Path) -> None:
    done = run(
        "render", "--image", grace, "--preview", "--size", "256", "-o", "f.png", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "f.png") as picture:
        assert picture.format == "PNG" and picture.size == (256, 256)
        first = np.asarray(picture.convert("RGB"), dtype=np.float64)
    video = tmp_path / "v.mp4"
    made = run(
        "render", "--image", grace, "--text", "Hallo.", "--size", "256", "-o", video, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float64)
    assert np.abs(first - frame).mean() < 4.0  # the video's own first frame, up to H.264's loss
    wrong = run("render", "--image", grace, "--preview", "-o", "f.mp4", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        "error: --preview writes a PNG: name it with -o NAME.png."
    )

"""`facecast batch`: a CSV manifest rendered here (a failing row, a row already done), its
mistakes as one plain line, and the same manifest through a real `facecast serve`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from facecast.audio import save_wav
from facecast.batch import ManifestError, read_manifest
from facecast.pipeline import synthesize
from facecast.video import probe
from test_cli import CLI_TIMEOUT_S, FACECAST


def batch(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FACECAST), "batch", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S * 3,
        check=False,
    )


@pytest.fixture
def job_folder(tmp_path: Path, grace: Path, astronaut: Path) -> Path:
    """A folder as a user would lay it out: photos, a recording, the manifest, out/."""
    folder = tmp_path / "job"
    (folder / "photos").mkdir(parents=True)
    shutil.copy(grace, folder / "photos" / "grace.jpg")
    shutil.copy(astronaut, folder / "photos" / "astronaut.png")
    Image.new("RGB", (256, 256), "white").save(folder / "photos" / "wall.png")
    save_wav(synthesize("Ein kurzer Gruß.", "de").audio, folder / "greeting.wav")
    (folder / "out").mkdir()
    (folder / "out" / "done.mp4").write_bytes(b"made earlier")
    (folder / "manifest.csv").write_text(
        "image,text,audio,voice,lang,output\n"
        'photos/grace.jpg,"Guten Tag, ich bin Grace.",,,,out/grace.mp4\n'
        "photos/astronaut.png,,greeting.wav,,,out/astronaut.mp4\n"
        "photos/wall.png,Hallo,,,,out/wall.mp4\n"
        "photos/grace.jpg,Hello there.,,pico:en-US,en,out/done.mp4\n",
        encoding="utf-8",
    )
    return folder


def test_batch_renders_skips_and_reports_failures(job_folder: Path, tmp_path: Path) -> None:
    done = batch(job_folder / "manifest.csv", "--size", "128", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "2 rendered, 1 skipped (output exists), 1 failed"
    failures = [line for line in done.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1 and failures[0].startswith(f"failed: line 4 ({job_folder}/out/wall")
    assert "face" in failures[0].lower()
    for name in ("grace", "astronaut"):
        info = probe(job_folder / "out" / f"{name}.mp4")
        assert info.width == 128 and info.has_audio and info.video_duration > 0.8
    assert (job_folder / "out" / "done.mp4").read_bytes() == b"made earlier"
    assert not (job_folder / "out" / "wall.mp4").exists()

    again = batch(job_folder / "manifest.csv", "--size", "128", cwd=tmp_path)
    assert again.stdout.strip() == "0 rendered, 3 skipped (output exists), 1 failed"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("image,text,out\nx.jpg,Hallo,a.mp4\n", "unknown column(s) out"),
        ("image,text\nx.jpg,Hallo\n", "needs the column(s) output"),
        ("image,text,audio,output\nx.jpg,Hallo,a.wav,a.mp4\n", "line 2: give text or audio"),
        ("image,text,output\nx.jpg,,a.mp4\n", "line 2: give text or audio"),
        ("image,text,output\n,Hallo,a.mp4\n", "line 2: every row needs an image"),
        ("image,text,output\nx.jpg,Hallo,a.mp4,extra\n", "line 2: more cells"),
        ("image,text,output\n", "no rows"),
        ("image,text,output\nx.jpg,a,same.mp4\ny.jpg,b,same.mp4\n", "several rows write"),
    ],
)
def test_manifest_mistakes_are_named(tmp_path: Path, manifest: str, message: str) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text(manifest, encoding="utf-8")
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(path)


def test_a_broken_manifest_is_one_plain_line(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("picture,words\na.jpg,hi\n", encoding="utf-8")
    done = batch(tmp_path / "m.csv", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unknown column" in lines[0]


def test_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.csv"
    path.write_text("\ufeffImage,Text,Output\nme.jpg,Hallo,videos/me.mp4\n\n", encoding="utf-8")
    (row,) = read_manifest(path)
    assert row.image == tmp_path / "sub" / "me.jpg"
    assert row.output == tmp_path / "sub" / "videos" / "me.mp4"
    assert (row.line, row.text, row.audio) == (2, "Hallo", None)

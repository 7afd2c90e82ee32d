"""WebM (VP9/Opus) beside MP4: chosen by --format or the output's name, playable, as sharp as
the MP4 where nothing moves, and refused where only H.264 will do."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from facecast.audio import AudioTrack
from facecast.video import VideoWriter
from test_cli_inputs import run


def test_a_still_photo_stays_sharp_in_both_formats(tmp_path: Path, grace: Path) -> None:
    photo = np.asarray(Image.open(grace).convert("RGB").resize((512, 512)))
    audio = AudioTrack(np.zeros(48_000 * 2, np.float32), 48_000)
    worst: dict[str, float] = {}
    for container in ("mp4", "webm"):
        path = tmp_path / f"still.{container}"
        with VideoWriter(
            path, fps=25, width=512, height=512, audio=audio, container=container
        ) as w:
            for _ in range(50):
                w.write(photo.copy())
        with av.open(str(path)) as video:
            frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
        assert len(frames) == 50
        worst[container] = min(
            structural_similarity(photo, frame, channel_axis=2) for frame in frames[::7]
        )
    # Grace Hopper's grainy photo, whole frame: x264 at CRF 19 keeps 0.968.
    assert worst["mp4"] >= 0.95 and worst["webm"] >= worst["mp4"] - 0.005, worst


def test_cli_webm_by_name_and_by_flag(tmp_path: Path, astronaut: Path) -> None:
    done = run(
        "render",
        "--image",
        astronaut,
        "--text",
        "Hallo.",
        "--size",
        "128",
        "-o",
        "a.webm",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    flagged = run(
        "render",
        "--image",
        astronaut,
        "--text",
        "Hallo.",
        "--size",
        "128",
        "--format",
        "webm",
        cwd=tmp_path,
    )
    assert flagged.returncode == 0, flagged.stderr
    for name in ("a.webm", "out.webm"):
        with av.open(str(tmp_path / name)) as video:
            assert video.format.name.startswith("matroska")
            codecs = {s.type: s.codec_context.name for s in video.streams}
            assert codecs == {"video": "vp9", "audio": "opus"}
            assert sum(1 for _ in video.decode(video=0)) > 10
    mismatch = run(
        "render",
        "--image",
        astronaut,
        "--text",
        "Hallo.",
        "--format",
        "webm",
        "-o",
        "b.mp4",
        cwd=tmp_path,
    )
    assert mismatch.returncode == 2 and mismatch.stderr.strip().startswith("error: ")
    assert "is not a .webm file" in mismatch.stderr and not (tmp_path / "b.mp4").exists()

"""Video stage: real libx264/AAC MP4s written by the streaming writer, probed and decoded back."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from matplotlib import cbook

from facecast.audio import AudioTrack, load_audio, n_video_frames
from facecast.video import VideoInfo, VideoWriter, iter_frames, probe

FPS = 25
WIDTH, HEIGHT = 256, 192
AUDIO_RATE = 16_000
AUDIO_SECONDS = 2.0
FRAME_S = 1 / FPS
MIN_PSNR_DB = 30.0


def photo_frames(n: int, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Natural frames: a real photo with a small shift per frame."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    photo = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (width + 16, height + 16), interpolation=cv2.INTER_AREA)
    return [
        np.ascontiguousarray(photo[i % 16 : i % 16 + height, (2 * i) % 16 : (2 * i) % 16 + width])
        for i in range(n)
    ]


def tone(seconds: float = AUDIO_SECONDS, rate: int = AUDIO_RATE) -> AudioTrack:
    t = np.arange(round(seconds * rate)) / rate
    return AudioTrack((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


def encoder_threads_alive() -> bool:
    return any(t.name == "facecast-encoder" and t.is_alive() for t in threading.enumerate())


METADATA = {"title": "Talking photo", "comment": "made by facecast", "description": "a test"}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    audio = tone()
    frames = photo_frames(n_video_frames(audio.duration, FPS))
    with VideoWriter(
        path, fps=FPS, width=WIDTH, height=HEIGHT, audio=audio, metadata=METADATA
    ) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.frames_written == len(frames) == 50
    return path, frames


@pytest.fixture(scope="module")
def info(written: tuple[Path, list[np.ndarray]]) -> VideoInfo:
    return probe(written[0])


def test_streams(info: VideoInfo) -> None:
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.fps == FPS
    assert info.n_frames == 50
    assert info.video_codec == "h264"
    assert info.pixel_format == "yuv420p"
    assert info.audio_codec == "aac"
    assert info.audio_channels == 1
    assert info.audio_rate == 48_000


def test_durations_match(info: VideoInfo) -> None:
    assert info.video_duration == pytest.approx(AUDIO_SECONDS, abs=FRAME_S)
    assert info.audio_duration == pytest.approx(AUDIO_SECONDS, abs=FRAME_S)
    assert abs(info.video_duration - info.audio_duration) <= FRAME_S


def test_metadata_round_trips(info: VideoInfo) -> None:
    for key, value in METADATA.items():
        assert info.metadata[key] == value


def test_custom_metadata_keys_survive(tmp_path: Path) -> None:
    path = tmp_path / "tags.mp4"
    tags = {"title": "t", "facecast_job": "1234", "facecast_version": "0.1.0"}
    with VideoWriter(path, fps=FPS, width=64, height=64, audio=tone(0.2), metadata=tags) as w:
        for frame in photo_frames(5, 64, 64):
            w.write(frame)
    assert {k: probe(path).metadata[k] for k in tags} == tags


def test_faststart(written: tuple[Path, list[np.ndarray]]) -> None:
    data = written[0].read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_packets_are_interleaved(written: tuple[Path, list[np.ndarray]]) -> None:
    with av.open(str(written[0])) as container:
        kinds = "".join(p.stream.type[0] for p in container.demux() if p.size)
    assert kinds.count("v") == 50
    assert max(len(run) for run in kinds.split("a")) <= 5
    assert max(len(run) for run in kinds.split("v")) <= 5


def test_frames_decode_close_to_input(written: tuple[Path, list[np.ndarray]]) -> None:
    path, frames = written
    decoded = list(iter_frames(path))
    assert len(decoded) == len(frames)
    for original, back in zip(frames, decoded, strict=True):
        assert back.shape == original.shape
        assert back.dtype == np.uint8
        assert psnr(original, back) > MIN_PSNR_DB


def test_audio_reads_back(written: tuple[Path, list[np.ndarray]]) -> None:
    track = load_audio(written[0])
    assert track.duration == pytest.approx(AUDIO_SECONDS, abs=FRAME_S)
    rms = float(np.sqrt(np.mean(track.samples[1000:-1000] ** 2)))
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.1)


def test_audio_longer_than_video_is_written_at_close(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    with VideoWriter(path, fps=FPS, width=64, height=64, audio=tone(1.0)) as writer:
        for frame in photo_frames(10, 64, 64):  # 0.4 s of video
            writer.write(frame)
    info = probe(path)
    assert info.n_frames == 10
    assert info.audio_duration == pytest.approx(1.0, abs=FRAME_S)


def test_encoder_error_reaches_the_producer(tmp_path: Path) -> None:
    frames = photo_frames(30, 64, 64)
    writer = VideoWriter(
        tmp_path / "bad.mp4", fps=FPS, width=64, height=64, audio=tone(1.0), preset="no-such"
    )
    with pytest.raises(av.FFmpegError):
        for frame in frames:
            writer.write(frame)
        writer.close()
    with pytest.raises(av.FFmpegError):
        writer.close()
    assert not encoder_threads_alive()


def test_caller_error_stops_the_encoder(tmp_path: Path) -> None:
    with (
        pytest.raises(KeyError),
        VideoWriter(tmp_path / "x.mp4", fps=FPS, width=64, height=64, audio=tone()) as writer,
    ):
        writer.write(photo_frames(1, 64, 64)[0])
        raise KeyError("render failed")
    assert not encoder_threads_alive()


@pytest.mark.parametrize(("width", "height"), [(255, 192), (256, 191), (0, 192)])
def test_odd_or_empty_size_is_rejected(tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError, match=r"even|positive"):
        VideoWriter(tmp_path / "odd.mp4", fps=FPS, width=width, height=height, audio=tone())


def test_wrong_frames_are_rejected(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "w.mp4", fps=FPS, width=64, height=64, audio=tone(0.2)) as w:
        with pytest.raises(ValueError, match="uint8"):
            w.write(np.zeros((64, 64, 3), np.float32))
        with pytest.raises(ValueError):
            w.write(np.zeros((64, 66, 3), np.uint8))
        w.write(photo_frames(1, 128, 128)[0][::2, ::2])  # a strided view is fine
    with pytest.raises(RuntimeError, match="closed"):
        w.write(np.zeros((64, 64, 3), np.uint8))
    assert probe(tmp_path / "w.mp4").n_frames == 1


def test_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    frames = photo_frames(20)
    n = 200
    audio = tone(n / FPS)
    tracemalloc.start()
    try:
        with VideoWriter(
            tmp_path / "long.mp4", fps=FPS, width=WIDTH, height=HEIGHT, audio=audio
        ) as writer:
            for i in range(n):
                writer.write(frames[i % len(frames)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    frame_bytes = WIDTH * HEIGHT * 3
    assert peak < 30 * frame_bytes  # all 200 frames would be 200 * frame_bytes
    assert probe(tmp_path / "long.mp4").n_frames == n


def test_probe_rejects_non_media(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(10_000))
    with pytest.raises(ValueError, match="not a readable media file"):
        probe(path)

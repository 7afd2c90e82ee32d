"""Live output: the HLS stream beside the MP4, MPEG-TS on a pipe, and playback while rendering.

Segments are judged by demuxing them the way a player does (init section + segment), the
service through a real API and Celery worker on Redis, the playground in real Chromium.
"""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest
from playwright.sync_api import Browser, sync_playwright

from conftest_service import LiveService
from facecast.audio import AudioTrack, n_video_frames
from facecast.video import (
    HLS_INIT,
    HLS_PLAYLIST,
    SEGMENT_SECONDS,
    VideoWriter,
    hls_target,
    mpegts_target,
    probe,
)

FPS = 25
SIZE = 128
SECONDS = 3.3
FACECAST = Path(sys.executable).with_name("facecast")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
LONG_TEXT = (
    "Guten Tag! Ich erzähle Ihnen heute eine etwas längere Geschichte, damit das Video "
    "schon läuft, während der Rest noch entsteht. Der erste Abschnitt ist nach einer "
    "Sekunde fertig, und der Browser beginnt sofort mit dem Abspielen. Danach folgen weitere "
    "Abschnitte, einer nach dem anderen, bis die ganze Geschichte erzählt ist."
)
"""About 20 s of speech: the job renders for a while after its first segment."""


def tone(seconds: float = SECONDS, rate: int = 16_000) -> AudioTrack:
    t = np.arange(round(seconds * rate)) / rate
    return AudioTrack((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def frames(n: int) -> Iterator[np.ndarray]:
    """Moving gradients: every frame differs, like a render."""
    ramp = np.linspace(0, 255, SIZE, dtype=np.float32)
    for i in range(n):
        value = (ramp[None, :, None] + ramp[:, None, None] * 0.5 + i * 7) % 256
        yield np.broadcast_to(value, (SIZE, SIZE, 3)).astype(np.uint8)


def playlist_segments(text: str) -> list[tuple[float, str]]:
    """(EXTINF duration, file name) of each media segment."""
    lines = text.splitlines()
    return [
        (float(line.split(":", 1)[1].rstrip(",")), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


def demux_segment(folder: Path, name: str) -> tuple[list[bool], list[str]]:
    """Read one segment as a player does (init + segment): the keyframe flag of each video
    packet, and the codec of each audio packet."""
    data = (folder / HLS_INIT).read_bytes() + (folder / name).read_bytes()
    video: list[bool] = []
    audio: list[str] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for packet in container.demux():
            if packet.size and packet.stream.type == "video":
                video.append(packet.is_keyframe)
            elif packet.size and packet.stream.type == "audio":
                audio.append(packet.stream.codec_context.name)
    return video, audio


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    """One clip written as MP4, HLS and MPEG-TS at once."""
    root = tmp_path_factory.mktemp("stream")
    audio = tone()
    sink = io.BytesIO()
    with VideoWriter(
        root / "clip.mp4",
        fps=FPS,
        width=SIZE,
        height=SIZE,
        audio=audio,
        streams=[hls_target(root / "hls"), mpegts_target(sink)],
    ) as writer:
        for frame in frames(n_video_frames(audio.duration, FPS)):
            writer.write(frame)
    return root / "clip.mp4", root / "hls", sink.getvalue()


def test_playlist_is_a_closed_event_stream(streamed: tuple[Path, Path, bytes]) -> None:
    _, folder, _ = streamed
    text = (folder / HLS_PLAYLIST).read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    assert f'#EXT-X-MAP:URI="{HLS_INIT}"' in text
    segments = playlist_segments(text)
    assert len(segments) == math.ceil(SECONDS)
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))  # type: ignore[union-attr]
    # RFC 8216: every EXTINF rounded to the nearest integer is at most the target duration.
    assert all(round(duration) <= target for duration, _ in segments)
    assert target == SEGMENT_SECONDS
    assert [d for d, _ in segments[:-1]] == pytest.approx([SEGMENT_SECONDS] * (len(segments) - 1))
    assert sum(d for d, _ in segments) == pytest.approx(SECONDS, abs=1 / FPS)


def test_every_segment_starts_with_a_keyframe_and_has_sound(
    streamed: tuple[Path, Path, bytes],
) -> None:
    _, folder, _ = streamed
    total = 0
    for duration, name in playlist_segments((folder / HLS_PLAYLIST).read_text()):
        video, audio = demux_segment(folder, name)
        assert video[0], f"{name} does not start with a keyframe"
        assert sum(video) == 1, name
        assert len(video) == round(duration * FPS), name
        assert audio, f"{name} has no sound"
        assert set(audio) == {"aac"}
        total += len(video)
    assert total == n_video_frames(SECONDS, FPS)


def test_mp4_still_lands_whole(streamed: tuple[Path, Path, bytes]) -> None:
    mp4, _, _ = streamed
    info = probe(mp4)
    assert info.n_frames == n_video_frames(SECONDS, FPS)
    head = mp4.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # faststart


def test_mpegts_holds_the_same_video(streamed: tuple[Path, Path, bytes], tmp_path: Path) -> None:
    _, _, ts = streamed
    assert ts[0] == 0x47 and len(ts) % 188 == 0  # transport stream packets
    path = tmp_path / "clip.ts"
    path.write_bytes(ts)
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.n_frames == n_video_frames(SECONDS, FPS)


NAL_HEADERS = frozenset({7, 8, 9})
"""SPS, PPS and access unit delimiters: an MPEG-TS muxer repeats the first two before every
keyframe (they live in the MP4's header) and may add the third; they are not the picture."""


def nal_units(data: bytes, annex_b: bool) -> list[bytes]:
    """The NAL units of one H.264 packet (Annex B start codes, or MP4's 4-byte lengths),
    without the parameter sets and delimiters, so MP4 and MPEG-TS packets compare."""
    units: list[bytes] = []
    if annex_b:
        units = [u.rstrip(b"\0") for u in data.split(b"\0\0\1")[1:]]
    else:
        at = 0
        while at < len(data):
            size = int.from_bytes(data[at : at + 4], "big")
            units.append(data[at + 4 : at + 4 + size])
            at += 4 + size
    return [u for u in units if u and u[0] & 0x1F not in NAL_HEADERS]


def video_packets(source: str | Path, annex_b: bool) -> list[tuple[bool, list[bytes]]]:
    """(keyframe, NAL units) of every video packet of a file or playlist, in decoding order."""
    with av.open(str(source)) as container:
        return [
            (packet.is_keyframe, nal_units(bytes(packet), annex_b))
            for packet in container.demux(video=0)
            if packet.size
        ]


def test_mp4_hls_and_mpegts_carry_the_same_video_packets(
    streamed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    mp4, folder, ts = streamed
    (tmp_path / "clip.ts").write_bytes(ts)
    from_mp4 = video_packets(mp4, annex_b=False)
    assert len(from_mp4) == n_video_frames(SECONDS, FPS)
    # One keyframe a second, and no other: one fixed GOP for every output.
    assert [i for i, (key, _) in enumerate(from_mp4) if key] == list(range(0, len(from_mp4), FPS))
    assert video_packets(folder / HLS_PLAYLIST, annex_b=False) == from_mp4
    assert video_packets(tmp_path / "clip.ts", annex_b=True) == from_mp4


def decoded(source: str | Path) -> list[tuple[float, np.ndarray]]:
    """(time, RGB) of every video frame a player decodes from a file or playlist."""
    with av.open(str(source)) as container:
        return [
            (float(f.time or 0.0), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)
        ]


def test_mp4_decodes_whole_and_seeks_to_every_second(streamed: tuple[Path, Path, bytes]) -> None:
    mp4, _, _ = streamed
    frames = decoded(mp4)
    assert len(frames) == n_video_frames(SECONDS, FPS)
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        for second in range(1, math.ceil(SECONDS)):
            container.seek(round(second / stream.time_base), stream=stream)
            first = next(container.decode(stream))
            # A keyframe opens every second: the seek lands on it, not before.
            assert first.key_frame
            assert first.time == pytest.approx(second, abs=1 / (2 * FPS))
            assert np.array_equal(first.to_ndarray(format="rgb24"), frames[second * FPS][1])


def test_hls_playlist_and_mpegts_play_the_mp4s_pictures(
    streamed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    mp4, folder, ts = streamed
    (tmp_path / "clip.ts").write_bytes(ts)
    reference = [rgb for _, rgb in decoded(mp4)]
    for source in (folder / HLS_PLAYLIST, tmp_path / "clip.ts"):
        pictures = [rgb for _, rgb in decoded(source)]
        assert len(pictures) == len(reference), source.name
        assert all(np.array_equal(a, b) for a, b in zip(pictures, reference, strict=True))


def test_cli_streams_mpegts_to_stdout_while_rendering(grace: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    command = [str(FACECAST), "render", "--image", str(grace), "--text", LONG_TEXT]
    process = subprocess.Popen(
        [*command, "--size", str(SIZE), "-o", str(output), "--stream", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    first = process.stdout.read(188 * 8)
    mp4_there_at_first_bytes = output.exists()
    rest = process.stdout.read()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()
    assert not mp4_there_at_first_bytes, "stdout got nothing before the render was complete"
    assert first[0] == 0x47
    assert b"wrote" in stderr  # the summary goes to stderr, stdout is only video
    path = tmp_path / "stdout.ts"
    path.write_bytes(first + rest)
    assert probe(path).n_frames == probe(output).n_frames


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_service_links_the_stream_while_the_job_renders(
    live_service: LiveService, portrait: Path
) -> None:
    job_id = live_service.submit_text(portrait, LONG_TEXT, size=256)
    deadline = time.monotonic() + 120
    view = live_service.job(job_id)
    while not view["stream_url"] and view["status"] not in ("done", "error"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
        view = live_service.job(job_id)
    assert view["status"] == "running", "the stream was not linked before the job ended"
    client = live_service.client
    playlist = client.get(view["stream_url"])
    assert playlist.status_code == 200
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert playlist.headers["cache-control"] == "no-cache"
    assert "#EXT-X-ENDLIST" not in playlist.text
    base = view["stream_url"].rsplit("/", 1)[0]
    first = playlist_segments(playlist.text)[0][1]
    assert client.get(f"{base}/{HLS_INIT}").status_code == 200
    assert client.get(f"{base}/{first}").headers["content-type"] == "video/iso.segment"
    done = live_service.wait_job(job_id)
    assert done["status"] == "done" and done["video_url"] and done["stream_url"]
    final = client.get(done["stream_url"]).text
    assert final.rstrip().endswith("#EXT-X-ENDLIST")
    seconds = sum(d for d, _ in playlist_segments(final))
    video = client.get(done["video_url"])
    path = Path(live_service.data_dir) / "check.mp4"
    path.write_bytes(video.content)
    assert seconds == pytest.approx(probe(path).video_duration, abs=1 / FPS)
    for name in ("job.json", "../job.json", "seg1.m4s", "index.m3u8.tmp", "seg99999.m4s"):
        answer = client.get(f"{base}/{name}")
        assert answer.status_code == 404, name
        assert answer.json()["error"]["code"] == "not_found"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def test_playground_plays_from_the_first_segment(
    live_service: LiveService, browser: Browser, portrait: Path
) -> None:
    page = browser.new_page()
    page.goto(f"{live_service.base_url}/")
    page.evaluate(
        """() => {
            window.plays = [];
            const video = document.getElementById("video");
            video.addEventListener("timeupdate", () => {
                if (video.currentTime > 0) {
                    window.plays.push({at: Date.now() / 1000, source: video.dataset.source});
                }
            });
        }"""
    )
    page.set_input_files("#photo", str(portrait))
    page.fill("#text", LONG_TEXT + " Ende.")
    page.check("#consent")
    with page.expect_response("**/animate") as created:
        page.click("#submit")
    job_id = created.value.json()["job_id"]
    page.wait_for_function("window.plays.some(p => p.source === 'stream')", timeout=120_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground-stream.png"), full_page=True)
    page.wait_for_function(
        "document.getElementById('video').dataset.source === 'mp4'", timeout=120_000
    )
    job = live_service.wait_job(job_id)
    plays = page.evaluate("window.plays")
    streamed = [p["at"] for p in plays if p["source"] == "stream"]
    assert streamed, f"the stream never played: {plays[:5]}"
    assert min(streamed) < _epoch(job["finished_at"]), "playback started only after the job"
    page.wait_for_function("document.getElementById('video').currentTime > 0")
    assert page.evaluate("document.getElementById('video').src").endswith("/video.mp4")
    page.close()

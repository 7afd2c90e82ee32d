"""Video out: a streaming H.264/AAC MP4 writer that encodes on a background thread, plus probing.

Frames go straight from the renderer to libx264 through a small bounded queue, so memory
stays flat however long the clip is, and rendering (caller's thread) overlaps encoding
(one worker thread; PyAV releases the GIL while encoding). Audio is encoded alongside the
video, up to the time of each written frame, so the muxer interleaves the two.

One encoder per clip: its H.264 packets go to the MP4 and, unchanged, to every live copy
(`StreamTarget`: an HLS folder, MPEG-TS to a pipe), as do the AAC packets. A keyframe opens
every second (a fixed GOP, no scene cuts), so each HLS segment starts with one and a player
can seek to any second of the MP4. A second encoder for the live copies cost a service job
about 37 % more CPU than the same render from the CLI; the fixed GOP costs the MP4 bytes
instead (with the veryfast preset 2.4x those of x264's default 10 s GOP on the Grace Hopper
clip at CRF 19; the encoder's settings: DEFAULT_PRESET, X264_EXTRA).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, cast

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from facecast.audio import AudioTrack
from facecast.options import VIDEO_FORMATS

VIDEO_CODEC = "libx264"
AUDIO_CODEC = "aac"
PIXEL_FORMAT = "yuv420p"
AUDIO_RATE = 48_000
"""AAC sample rate of the output (the track is resampled by PyAV on encode)."""
AUDIO_LAYOUT = "mono"
AUDIO_BIT_RATE = 96_000
DEFAULT_CRF = 19
"""x264 quality. The background is static, so every later frame copies what the keyframe
kept: at CRF 23 grainy backgrounds lost SSIM 0.956 against the source, at 19 they keep 0.973
(grace, biden; about 1.45x the bytes)."""
DEFAULT_PRESET = "veryfast"
X264_EXTRA = ""
"""x264 options on top of the preset ("a=1:b=2"). Measured with the 1 s GOP at CRF 19 on 512 px
renders (grace, biden, astronaut; worst frame's background SSIM of the decoded video, encoder
CPU per frame on the shared 2-core machine, noisy): veryfast 0.978 / 0.974 / 0.988, 2.4-2.9 ms,
1.0x bytes (grace: 1.2 MB for 11.6 s, 0.8 Mbit/s); superfast 2.2-2.3 ms, 2.0x bytes; ultrafast
with CABAC and two B-frames 0.980 / 0.979 / 0.983, 1.1-2.1 ms, 2.0x bytes; plain ultrafast
3.2x bytes. veryfast is kept: about 1 ms more a frame (4 % of real time at 25 fps) buys half
the bytes every viewer downloads. ultrafast at CRF 21 fell to 0.972 / 0.972."""
X264_THREADS = 0
"""libx264 threads; 0 lets x264 choose (measured fastest on 2 cores, even beside a renderer)."""
QUEUE_FRAMES = 8
"""Frames buffered between the producer and the encoder thread."""
FASTSTART_FLAGS = "+faststart"
SEGMENT_SECONDS = 1
"""Length of a live segment and of the GOP: every segment starts with a keyframe."""
HLS_PLAYLIST = "index.m3u8"
"""The stream's entry: the video's playlist, or with captions a master playlist naming it."""
HLS_MEDIA_PLAYLIST = "video.m3u8"
"""The video's own playlist when index.m3u8 is a master playlist (captions beside it)."""
HLS_CAPTIONS_PLAYLIST = "captions.m3u8"
HLS_CAPTIONS = "captions.vtt"
HLS_CAPTIONS_GROUP = "captions"
HLS_NOMINAL_BANDWIDTH = 1_500_000
"""BANDWIDTH of the one variant (bits/s, required by the master playlist): a 512 px talking
head at CRF 23 stays below it."""
HLS_INIT = "init.mp4"
HLS_SEGMENT_PREFIX = "seg"
HLS_SEGMENT_SUFFIX = ".m4s"
WEBM_VIDEO_CODEC = "libvpx-vp9"
WEBM_AUDIO_CODEC = "libopus"
WEBM_OPTIONS = {"crf": "24", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
"""VP9 in constant quality, tuned for speed (realtime, cpu-used 8: about the H.264 encoder's
cost per frame here). CRF 24 keeps a grainy still photo (Grace Hopper, 512 px) at SSIM 0.972,
as x264 at CRF 19 does (0.968); CRF 28 fell to 0.969, 33 to 0.959 (tests/test_webm.py)."""
FORMATS = VIDEO_FORMATS
"""Containers the writer makes: H.264/AAC in MP4 (streamable, live copies) or VP9/Opus in WebM."""
TS_BUFFER_BYTES = 4096
"""I/O buffer of an MPEG-TS pipe: small, so a player gets each frame soon after it is encoded."""
METADATA_TAGS_FLAG = "+use_metadata_tags"

MP4_STANDARD_TAGS = frozenset(
    {
        "title",
        "artist",
        "album_artist",
        "composer",
        "album",
        "date",
        "comment",
        "genre",
        "copyright",
        "grouping",
        "lyrics",
        "description",
        "synopsis",
        "keywords",
    }
)
"""Keys the MP4 muxer stores as iTunes-style tags; any other key switches the file to
QuickTime `mdta` tags (use_metadata_tags), where arbitrary keys survive. FFmpeg always
overwrites "encoder"."""


class Writable(Protocol):
    """A binary sink."""

    def write(self, data: bytes, /) -> int | None: ...


@dataclass(frozen=True)
class StreamTarget:
    """A live copy of the video, fed the encoded packets as they come (see `hls_target`)."""

    target: str | Writable
    """A file name (HLS: the playlist) or a binary sink."""
    format: str
    options: Mapping[str, str] = field(default_factory=dict)
    buffer_size: int = 32768
    subtitles: Path | None = None
    """HLS with captions: the folder their WebVTT rendition goes to (`add_hls_subtitles`)."""


def hls_target(folder: Path, captions: bool = False) -> StreamTarget:
    """An HLS event stream in `folder`: `index.m3u8`, `init.mp4` and ~1 s fMP4 segments.

    The playlist (`#EXT-X-PLAYLIST-TYPE:EVENT`) is rewritten atomically after each segment
    and ends with `#EXT-X-ENDLIST` when the writer closes. With `captions` the video's
    playlist is `video.m3u8` and `index.m3u8` a master playlist that names it beside a
    subtitle rendition (`add_hls_subtitles`). The folder starts empty: a stream left by an
    earlier attempt is removed first.
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    options = {
        "hls_time": str(SEGMENT_SECONDS),
        "hls_segment_type": "fmp4",
        "hls_playlist_type": "event",
        "hls_flags": "independent_segments+temp_file",
        "hls_fmp4_init_filename": HLS_INIT,
        "hls_segment_filename": str(folder / f"{HLS_SEGMENT_PREFIX}%05d{HLS_SEGMENT_SUFFIX}"),
    }
    playlist = HLS_MEDIA_PLAYLIST if captions else HLS_PLAYLIST
    return StreamTarget(
        str(folder / playlist), "hls", options, subtitles=folder if captions else None
    )


def add_hls_subtitles(target: StreamTarget, webvtt: str, duration: float, language: str) -> None:
    """Write the captions of an HLS target with `subtitles`: `captions.vtt` (one WebVTT
    segment covering the clip, known before the first frame), its playlist, and the master
    `index.m3u8` naming it (EXT-X-MEDIA TYPE=SUBTITLES) beside the video's playlist."""
    folder = target.subtitles
    if folder is None:
        return
    seconds = max(duration, 0.001)
    media = (
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        f"#EXT-X-TARGETDURATION:{math.ceil(seconds)}\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:{seconds:.3f},\n{HLS_CAPTIONS}\n#EXT-X-ENDLIST\n"
    )
    master = (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{HLS_CAPTIONS_GROUP}",NAME="Captions",'
        f'LANGUAGE="{language}",DEFAULT=YES,AUTOSELECT=YES,URI="{HLS_CAPTIONS_PLAYLIST}"\n'
        f'#EXT-X-STREAM-INF:BANDWIDTH={HLS_NOMINAL_BANDWIDTH},SUBTITLES="{HLS_CAPTIONS_GROUP}"\n'
        f"{HLS_MEDIA_PLAYLIST}\n"
    )
    for name, text in (
        (HLS_CAPTIONS, webvtt),
        (HLS_CAPTIONS_PLAYLIST, media),
        (HLS_PLAYLIST, master),
    ):
        partial = folder / f"{name}.tmp"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, folder / name)


def stream_playlist(target: StreamTarget) -> str:
    """The name of the playlist the muxer itself writes for an HLS target."""
    return Path(str(target.target)).name


def mpegts_target(sink: BinaryIO) -> StreamTarget:
    """MPEG-TS written to `sink` (a pipe, stdout) as the video is encoded."""
    return StreamTarget(_Flushing(sink), "mpegts", {}, TS_BUFFER_BYTES)


class _Flushing:
    """A binary sink that passes every write on at once (a pipe's reader sees it now)."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        written = self._sink.write(data)
        self._sink.flush()
        return written if written is not None else len(data)


@dataclass(frozen=True)
class VideoInfo:
    """What an MP4 holds. Numbers are 0 and codec names None for a missing stream."""

    has_video: bool
    has_audio: bool
    width: int
    height: int
    fps: float
    n_frames: int
    """Counted video packets (one per frame in MP4/H.264)."""
    video_duration: float
    audio_duration: float
    video_codec: str | None = None
    audio_codec: str | None = None
    pixel_format: str | None = None
    audio_rate: int = 0
    audio_channels: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


class VideoWriter:
    """Write RGB frames plus an audio track to an H.264 (yuv420p) + AAC MP4, streaming.

    Use as a context manager; `write` each frame, `close` (or leaving the block) flushes.
    Write `audio.n_video_frames(track.duration, fps)` frames so the video and audio lengths
    match within one frame; audio left after the last frame is written at close.
    Errors raised by the encoder thread surface on the next `write` or on `close`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: int,
        width: int,
        height: int,
        audio: AudioTrack,
        metadata: dict[str, str] | None = None,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        streams: Sequence[StreamTarget] = (),
        container: str = "mp4",
    ) -> None:
        _check_size(width, height)
        if container not in FORMATS:
            raise ValueError(f"container must be one of {', '.join(FORMATS)}, not {container!r}")
        if streams and container != "mp4":
            raise ValueError("live copies take the H.264 packets: only an MP4 can have them")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.width = width
        self.height = height
        self._audio = audio
        self._audio_pos = 0
        self._n_frames = 0
        self._closed = False
        self._abort = False
        self._error: BaseException | None = None
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=QUEUE_FRAMES)

        tags = dict(metadata or {})
        webm = container == "webm"
        flags = FASTSTART_FLAGS
        if not set(tags) <= MP4_STANDARD_TAGS:
            flags += METADATA_TAGS_FLAG
        self._container = av.open(
            str(path), "w", format=container, options={} if webm else {"movflags": flags}
        )
        self._live: list[tuple[av.container.OutputContainer, dict[int, av.stream.Stream]]] = []
        try:
            self._container.metadata.update(tags)
            self._video = self._add_video_stream(crf, preset, webm)
            self._audio_stream = cast(
                av.AudioStream,
                self._container.add_stream(
                    WEBM_AUDIO_CODEC if webm else AUDIO_CODEC,
                    rate=AUDIO_RATE,
                    layout=AUDIO_LAYOUT,
                    bit_rate=AUDIO_BIT_RATE,
                ),
            )
            if streams:
                # Open the encoders now: the live copies need their extradata (SPS/PPS, ASC).
                self._container.start_encoding()
                for target in streams:
                    self._live.append(self._open_live(target))
        except BaseException:
            with contextlib.suppress(Exception):  # keep the first error
                self._close_all()
            raise
        self._thread = threading.Thread(target=self._run, name="facecast-encoder", daemon=True)
        self._thread.start()

    def _add_video_stream(self, crf: int, preset: str, webm: bool) -> av.VideoStream:
        keyint = self.fps * SEGMENT_SECONDS
        options = {
            "crf": str(crf),
            "preset": preset,
            "x264-params": ":".join(
                part
                for part in (f"keyint={keyint}:min-keyint={keyint}:scenecut=0", X264_EXTRA)
                if part
            ),
        }
        if webm:
            options = {**WEBM_OPTIONS, "g": str(keyint)}
        codec = WEBM_VIDEO_CODEC if webm else VIDEO_CODEC
        stream = cast(
            av.VideoStream, self._container.add_stream(codec, rate=self.fps, options=options)
        )
        stream.width = self.width
        stream.height = self.height
        stream.pix_fmt = PIXEL_FORMAT
        ctx = stream.codec_context
        ctx.time_base = Fraction(1, self.fps)
        ctx.thread_count = X264_THREADS
        # cv2's RGB->I420 is BT.601 limited range: say so, so players convert back right.
        ctx.colorspace = Colorspace.ITU601
        ctx.color_range = ColorRange.MPEG
        return stream

    def _open_live(
        self, target: StreamTarget
    ) -> tuple[av.container.OutputContainer, dict[int, av.stream.Stream]]:
        container = av.open(
            target.target,
            "w",
            format=target.format,
            options=dict(target.options),
            buffer_size=target.buffer_size,
        )
        try:
            streams: dict[int, av.stream.Stream] = {
                source.index: container.add_stream_from_template(source)
                for source in (self._video, self._audio_stream)
            }
        except BaseException:
            container.close()
            raise
        return container, streams

    def _close_all(self) -> None:
        """Close the live copies (an HLS playlist gets its end tag), then the MP4.

        The live ones first: the MP4's faststart pass rewrites the whole file, and players
        should not wait for that to get the last segment.
        """
        error: Exception | None = None
        for container in [*(live for live, _ in self._live), self._container]:
            try:
                container.close()
            except Exception as exc:  # close the others all the same
                error = error or exc
        if error is not None:
            raise error

    @property
    def frames_written(self) -> int:
        """Frames accepted by `write` so far."""
        return self._n_frames

    def write(self, frame: np.ndarray) -> None:
        """Queue one RGB uint8 frame of shape (height, width, 3); blocks while the queue is full.

        The array is handed over: the encoder thread converts it to YUV later, so the caller
        must not change it afterwards (a renderer returns a new array per frame).
        """
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        self._raise_worker_error()
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 RGB frame, "
                f"got {frame.shape} {frame.dtype}"
            )
        self._queue.put(frame)
        self._n_frames += 1

    def close(self) -> None:
        """Encode what is queued and the rest of the audio, then finish the file.

        Re-raises an error from the encoder thread.
        """
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        self._raise_worker_error()

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # The caller failed: stop without flushing and keep their exception.
        self._abort = True
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    # --- encoder thread -------------------------------------------------------------

    def _run(self) -> None:
        stopped = False
        try:
            index = 0
            while (rgb := self._queue.get()) is not None:
                self._encode_video(rgb, index)
                index += 1
                self._encode_audio_until(index / self.fps)
            stopped = True
            if not self._abort:
                self._flush()
        except Exception as exc:  # handed to the producer thread
            self._error = exc
            if not stopped:
                while self._queue.get() is not None:
                    pass
        finally:
            try:
                self._close_all()
            except Exception as exc:  # a failed trailer write still has to reach the caller
                if self._error is None and not self._abort:
                    self._error = exc

    def _encode_video(self, rgb: np.ndarray, index: int) -> None:
        # The colour conversion runs here, beside the encoder, not on the renderer's thread.
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format=PIXEL_FORMAT)
        frame.pts = index
        frame.time_base = Fraction(1, self.fps)
        self._mux(self._video.encode(frame))

    def _encode_audio_until(self, seconds: float | None) -> None:
        """Encode the audio not yet encoded, up to `seconds` (None: to the end)."""
        track = self._audio
        end = len(track.samples)
        if seconds is not None:
            end = min(end, math.ceil(seconds * track.sample_rate))
        if end <= self._audio_pos:
            return
        chunk = np.ascontiguousarray(track.samples[self._audio_pos : end], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = track.sample_rate
        frame.pts = self._audio_pos
        frame.time_base = Fraction(1, track.sample_rate)
        self._audio_pos = end
        self._mux(self._audio_stream.encode(frame))

    def _flush(self) -> None:
        self._encode_audio_until(None)
        self._mux(self._video.encode(None))
        self._mux(self._audio_stream.encode(None))

    def _mux(self, packets: list[av.Packet]) -> None:
        """Write encoded packets to the MP4, then the same packets to every live copy."""
        for packet in packets:
            index = packet.stream.index
            self._container.mux_one(packet)
            for container, streams in self._live:
                packet.stream = streams[index]
                container.mux_one(packet)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if width % 2 or height % 2:
        raise ValueError(f"{PIXEL_FORMAT} needs an even width and height, got {width}x{height}")


def _stream_seconds(stream: av.stream.Stream) -> float:
    if stream.duration is None or stream.time_base is None:
        return 0.0
    return float(stream.duration * stream.time_base)


def probe(path: str | Path) -> VideoInfo:
    """Streams, size, rate, frame count, durations and metadata of a media file (like ffprobe)."""
    try:
        with av.open(str(path)) as container:
            return _describe(container)
    except av.FFmpegError as exc:
        raise ValueError(f"{Path(path).name} is not a readable media file") from exc


def _describe(container: av.container.InputContainer) -> VideoInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    metadata = dict(container.metadata)
    n_frames = 0
    fps = 0.0
    if video is not None:
        n_frames = sum(1 for packet in container.demux(video) if packet.size)
        rate = video.average_rate or video.base_rate
        fps = float(rate) if rate else 0.0
    vctx = video.codec_context if video is not None else None
    actx = audio.codec_context if audio is not None else None
    return VideoInfo(
        has_video=video is not None,
        has_audio=audio is not None,
        width=vctx.width if vctx else 0,
        height=vctx.height if vctx else 0,
        fps=fps,
        n_frames=n_frames,
        video_duration=_stream_seconds(video) if video else 0.0,
        audio_duration=_stream_seconds(audio) if audio else 0.0,
        video_codec=vctx.name if vctx else None,
        audio_codec=actx.name if actx else None,
        pixel_format=vctx.pix_fmt if vctx else None,
        audio_rate=actx.sample_rate if actx else 0,
        audio_channels=actx.channels if actx else 0,
        metadata=metadata,
    )


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode the first video stream of `path` to RGB uint8 frames, one at a time."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")

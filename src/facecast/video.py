"""Video out: a streaming H.264/AAC MP4 writer that encodes on a background thread, plus probing.

Frames go straight from the renderer to libx264 through a small bounded queue, so memory
stays flat however long the clip is, and rendering (caller's thread) overlaps encoding
(one worker thread; PyAV releases the GIL while encoding). Audio is encoded alongside the
video, up to the time of each written frame, so the muxer interleaves the two.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from facecast.audio import AudioTrack

VIDEO_CODEC = "libx264"
AUDIO_CODEC = "aac"
PIXEL_FORMAT = "yuv420p"
AUDIO_RATE = 48_000
"""AAC sample rate of the output (the track is resampled by PyAV on encode)."""
AUDIO_LAYOUT = "mono"
AUDIO_BIT_RATE = 96_000
DEFAULT_CRF = 23
DEFAULT_PRESET = "veryfast"
X264_THREADS = 0
"""libx264 threads; 0 lets x264 choose (measured fastest on 2 cores, even beside a renderer)."""
QUEUE_FRAMES = 8
"""Frames buffered between the producer and the encoder thread."""
FASTSTART_FLAGS = "+faststart"
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
    ) -> None:
        _check_size(width, height)
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
        flags = FASTSTART_FLAGS
        if not set(tags) <= MP4_STANDARD_TAGS:
            flags += METADATA_TAGS_FLAG
        self._container = av.open(str(path), "w", format="mp4", options={"movflags": flags})
        try:
            self._container.metadata.update(tags)
            self._video = self._add_video_stream(crf, preset)
            self._audio_stream = cast(
                av.AudioStream,
                self._container.add_stream(
                    AUDIO_CODEC, rate=AUDIO_RATE, layout=AUDIO_LAYOUT, bit_rate=AUDIO_BIT_RATE
                ),
            )
        except BaseException:
            self._container.close()
            raise
        self._thread = threading.Thread(target=self._run, name="facecast-encoder", daemon=True)
        self._thread.start()

    def _add_video_stream(self, crf: int, preset: str) -> av.VideoStream:
        stream = cast(
            av.VideoStream,
            self._container.add_stream(
                VIDEO_CODEC, rate=self.fps, options={"crf": str(crf), "preset": preset}
            ),
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

    @property
    def frames_written(self) -> int:
        """Frames accepted by `write` so far."""
        return self._n_frames

    def write(self, frame: np.ndarray) -> None:
        """Queue one RGB uint8 frame of shape (height, width, 3); blocks while the queue is full."""
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        self._raise_worker_error()
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 RGB frame, "
                f"got {frame.shape} {frame.dtype}"
            )
        self._queue.put(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420))
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
            while (yuv := self._queue.get()) is not None:
                self._encode_video(yuv, index)
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
                self._container.close()
            except Exception as exc:  # a failed trailer write still has to reach the caller
                if self._error is None and not self._abort:
                    self._error = exc

    def _encode_video(self, yuv: np.ndarray, index: int) -> None:
        frame = av.VideoFrame.from_ndarray(yuv, format=PIXEL_FORMAT)
        frame.pts = index
        frame.time_base = Fraction(1, self.fps)
        self._container.mux(self._video.encode(frame))

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
        self._container.mux(self._audio_stream.encode(frame))

    def _flush(self) -> None:
        self._encode_audio_until(None)
        self._container.mux(self._video.encode(None))
        self._container.mux(self._audio_stream.encode(None))


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

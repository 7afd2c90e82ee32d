"""The outgoing media: a video track rendering the face and an audio track playing speech,
both paced by one session clock so that frame k and audio sample k * 48000 / fps leave
together."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from facecast.live.idle import IdleMotion
from facecast.live.playout import NO_SOUND, OUT_RATE, Event, Playout
from facecast.motion import MotionFrame
from facecast.render import Animator

AUDIO_FRAME_S = 0.02
AUDIO_SAMPLES = int(OUT_RATE * AUDIO_FRAME_S)
VIDEO_CLOCK = 90_000
MAX_LATE_FRAMES = 2
"""A video frame later than this many frame times is skipped (the clock is kept, not the
count), so a busy moment never turns into lasting delay."""
PCM_SCALE = 32767.0


class SessionClock:
    """The moment both tracks count from: the first time either is asked for media."""

    def __init__(self) -> None:
        self._start: float | None = None

    def start(self) -> float:
        """The session's time zero (set on first use)."""
        if self._start is None:
            self._start = time.monotonic()
        return self._start

    def now(self) -> float:
        """Seconds since time zero."""
        return time.monotonic() - self.start()


async def _until(clock: SessionClock, at: float) -> None:
    wait = clock.start() + at - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)


class FaceTrack(MediaStreamTrack):
    """Frames of the rigged photo at `fps`: the idle motion, with the playout's mouth."""

    kind = "video"

    def __init__(
        self,
        animator: Animator,
        playout: Playout,
        idle: IdleMotion,
        clock: SessionClock,
        fps: int,
        finish: Callable[[np.ndarray], np.ndarray] = lambda frame: frame,
    ) -> None:
        super().__init__()
        self.animator = animator
        self.playout = playout
        self.idle = idle
        self.clock = clock
        self.fps = fps
        self.finish = finish
        self.frames = 0
        # One thread: the renderer's canvas is drawn by one caller at a time, and the event
        # loop stays free for the network and the audio while a frame renders.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="facecast-live-render")
        self._index = 0

    def values(self, index: int) -> dict[str, float]:
        """Channel values of frame `index`: idle motion, speech's mouth where it plays."""
        t = index / self.fps
        values = self.idle.at(t)
        mouth = self.playout.mouth_at(index * OUT_RATE // self.fps)
        if mouth is not None:
            values.update(mouth)
        return values

    def _render(self, frame: MotionFrame) -> np.ndarray:
        return self.finish(self.animator.render_batch([frame], NO_SOUND)[0])

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = self._index
        late = int(self.clock.now() * self.fps) - index
        if late > MAX_LATE_FRAMES:
            index += late
        await _until(self.clock, index / self.fps)
        self._index = index + 1
        rgb = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._render, MotionFrame(index, self.fps, self.values(index))
        )
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = index * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.frames += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)


class SpeechTrack(MediaStreamTrack):
    """20 ms frames of the playout's sound (silence between utterances) at 48 kHz mono."""

    kind = "audio"

    def __init__(
        self, playout: Playout, clock: SessionClock, on_events: Callable[[list[Event]], None]
    ) -> None:
        super().__init__()
        self.playout = playout
        self.clock = clock
        self.on_events = on_events
        self._index = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = self._index
        await _until(self.clock, index * AUDIO_FRAME_S)
        self._index += 1
        samples, events = self.playout.pull(AUDIO_SAMPLES)
        if events:
            self.on_events(events)
        pcm = (np.clip(samples, -1.0, 1.0) * PCM_SCALE).astype("<i2")
        frame = av.AudioFrame.from_ndarray(pcm[np.newaxis, :], format="s16", layout="mono")
        frame.sample_rate = OUT_RATE
        frame.pts = index * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, OUT_RATE)
        return frame

"""facecast as a LiveKit Agents avatar (`pip install 'facecast[livekit]'`): a VideoGenerator
for livekit-agents' AvatarRunner, rendered in the agent's own process.

The agent's speech arrives as audio frames (`push_audio`), one segment per reply, ended by
AudioSegmentEnd. The generator yields, at `fps`, a video frame of the face (idle motion
between replies, the mouth of the sound while it plays) and the audio slice that goes with
each frame, then AudioSegmentEnd when a reply has played out. `clear_buffer` stops the reply
at once; the mouth relaxes shut within about 0.15 s.

livekit-agents needs protobuf >= 5 and mediapipe (which finds the face) protobuf < 5, so the
photo is rigged once in a facecast environment (facecast.live.rig.save_rig) and the agent
loads the rig (`load_rig`); see docs/live.md.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarOptions, VideoGenerator

from facecast.audio import AudioTrack
from facecast.live.idle import IdleMotion
from facecast.live.playout import NO_SOUND, OUT_RATE, Playout
from facecast.live.utterances import AudioStream
from facecast.motion import MotionFrame
from facecast.render import Animator

FLUSH_S = 0.2
"""Pushed audio is analysed in pieces of at least this length (a 10 ms frame alone would cost
a motion analysis each, about 20 to 50 ms)."""
MAX_REPLY_S = 600.0
MAX_LATE = 2
"""Frames the generator may fall behind its clock before it skips ahead."""
OPAQUE = 255


def avatar_options(animator: Animator, fps: int = 25) -> AvatarOptions:
    """AvatarRunner's options for a generator of `animator` at `fps` (48 kHz mono sound)."""
    width, height = animator.size
    return AvatarOptions(
        video_width=width,
        video_height=height,
        video_fps=fps,
        audio_sample_rate=OUT_RATE,
        audio_channels=1,
    )


def load_rig(path: Path) -> Animator:
    """A rigged photo written by facecast.live.rig.save_rig (only load files you made)."""
    animator: Animator = pickle.loads(Path(path).read_bytes())
    return animator


class FacecastVideoGenerator(VideoGenerator):
    """Frames of a rigged photo speaking the agent's audio, for livekit-agents' AvatarRunner."""

    def __init__(self, animator: Animator, *, fps: int = 25, seed: int = 0) -> None:
        if OUT_RATE % fps:
            raise ValueError(f"fps must divide {OUT_RATE}: each frame carries whole samples")
        self.animator = animator
        self.fps = fps
        self.playout = Playout()
        self.idle = IdleMotion(seed)
        self._per_frame = OUT_RATE // fps
        self._names = (f"reply-{n}" for n in itertools.count(1))
        self._stream: AudioStream | None = None
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._render = ThreadPoolExecutor(1, thread_name_prefix="facecast-avatar")
        self._analysis = ThreadPoolExecutor(1, thread_name_prefix="facecast-avatar-audio")
        self._generation = 0

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        """Take the agent's next audio frame (or the end of its reply)."""
        if isinstance(frame, AudioSegmentEnd):
            if self._stream is not None:
                await self._flush(final=True)
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        samples = pcm.mean(axis=1).astype(np.float32) / 32768.0
        if self._stream is None or self._stream.rate != frame.sample_rate:
            if self._stream is not None:
                await self._flush(final=True)
            self._stream = AudioStream(next(self._names), frame.sample_rate, self.fps, MAX_REPLY_S)
        self._pending.append(samples)
        self._pending_samples += len(samples)
        if self._pending_samples >= FLUSH_S * frame.sample_rate:
            await self._flush(final=False)

    async def _flush(self, final: bool) -> None:
        """Analyse what was pushed on a thread of its own (the frames keep their pace)."""
        stream = self._stream
        assert stream is not None
        joined = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        self._pending, self._pending_samples = [], 0
        if final:
            self._stream = None
        generation = self._generation
        loop = asyncio.get_running_loop()
        track = AudioTrack(joined, stream.rate)
        segment = await loop.run_in_executor(self._analysis, stream.add, track, final)
        if generation == self._generation:  # not cleared meanwhile
            self.playout.add(segment)

    def clear_buffer(self) -> None:
        """Stop the reply now: its sound ends, the mouth relaxes, nothing queued is played."""
        self._generation += 1
        self.playout.clear()
        self._stream = None
        self._pending, self._pending_samples = [], 0

    def _frame(self, index: int) -> rtc.VideoFrame:
        values = self.idle.at(index / self.fps)
        mouth = self.playout.mouth_at(index * self._per_frame)
        if mouth is not None:
            values.update(mouth)
        rgb = self.animator.render_batch([MotionFrame(index, self.fps, values)], NO_SOUND)[0]
        height, width = rgb.shape[:2]
        rgba = np.dstack([rgb, np.full((height, width), OPAQUE, np.uint8)])
        return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes())

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        index = 0
        while True:
            wait = start + index / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            # Behind the clock: frames are skipped, their sound is not (it goes out with the
            # next frame), so the picture catches up and the sound stays whole.
            ticks = 1 + max(int((time.monotonic() - start) * self.fps) - index - MAX_LATE, 0)
            speaking = self.playout.speaking
            samples, events = self.playout.pull(self._per_frame * ticks)
            index += ticks
            yield await loop.run_in_executor(self._render, self._frame, index - 1)
            started = any(e.kind == "speech_started" for e in events)
            if speaking or started:
                pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
                yield rtc.AudioFrame(pcm.tobytes(), OUT_RATE, 1, len(pcm))
            for event in events:
                if event.kind == "speech_ended" and not event.interrupted:
                    yield AudioSegmentEnd()

    async def aclose(self) -> None:
        """Release the render thread."""
        self._render.shutdown(wait=False, cancel_futures=True)
        self._analysis.shutdown(wait=False, cancel_futures=True)

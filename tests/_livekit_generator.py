"""Run by tests/test_live_avatar.py in an environment where livekit-agents imports (protobuf
>= 5, so no mediapipe): drives FacecastVideoGenerator through livekit-agents' own
QueueAudioOutput (the AudioReceiver AvatarRunner reads) and writes what came out.

python tests/_livekit_generator.py RIG SPEECH.npy OUT.npz
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, QueueAudioOutput, VideoGenerator

from facecast.live.avatar import FacecastVideoGenerator, avatar_options, load_rig

RATE = 24_000
FRAME = RATE // 50


async def feed(receiver: QueueAudioOutput, generator: FacecastVideoGenerator) -> None:
    """What AvatarRunner._read_audio does: every frame of the receiver into the generator."""
    async for frame in receiver:
        await generator.push_audio(frame)


async def speak(receiver: QueueAudioOutput, pcm: np.ndarray) -> None:
    """What the agent's TTS does: a reply's frames into the audio output, then flush."""
    for i in range(0, len(pcm), FRAME):
        chunk = pcm[i : i + FRAME]
        await receiver.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk)))
    receiver.flush()


async def main(rig: Path, speech: Path, out: Path) -> None:
    animator = load_rig(rig)
    generator = FacecastVideoGenerator(animator, fps=25)
    assert isinstance(generator, VideoGenerator)
    options = avatar_options(animator)
    samples = np.load(speech)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    receiver = QueueAudioOutput(sample_rate=RATE)
    feeder = asyncio.create_task(feed(receiver, generator))
    log: list[tuple[str, float, int]] = []  # (kind, seconds since start, samples)
    frames: dict[str, np.ndarray] = {}
    start = time.monotonic()
    phase = "idle"
    cleared_at = again_at = -1.0
    tasks: list[asyncio.Task[None]] = []
    async for item in generator:
        now = time.monotonic() - start
        if isinstance(item, rtc.VideoFrame):
            assert (item.width, item.height) == (options.video_width, options.video_height)
            log.append(("video", now, 0))
            if (
                sum(k == "video" for k, _, _ in log) % 3 == 0
            ):  # every third frame is enough to judge the lips
                rgba = np.frombuffer(item.data, np.uint8).reshape(item.height, item.width, 4)
                frames[f"{phase}_{now:.3f}"] = rgba[:, :, :3].copy()
        elif isinstance(item, rtc.AudioFrame):
            assert item.sample_rate == options.audio_sample_rate and item.num_channels == 1
            loud = float(np.abs(np.frombuffer(item.data, np.int16)).max()) / 32768
            log.append(("audio", now, item.samples_per_channel))
            log.append(("level", now, int(loud * 1000)))
        else:
            assert isinstance(item, AudioSegmentEnd)
            log.append(("end", now, 0))
        if phase == "idle" and now > 1.0:
            phase = "speech"
            tasks.append(asyncio.create_task(speak(receiver, pcm)))
        elif phase == "speech" and any(k == "end" for k, _, _ in log):
            phase = "again"
            tasks.append(asyncio.create_task(speak(receiver, pcm)))
            again_at = now
        elif phase == "again" and now > again_at + 1.0:
            phase = "cleared"
            cleared_at = now
            receiver.clear_buffer()
            generator.clear_buffer()
        elif phase == "cleared" and now > cleared_at + 1.0:
            break
    feeder.cancel()
    await generator.aclose()
    kinds = np.array([k for k, _, _ in log])
    np.savez(
        out,
        kinds=kinds,
        times=np.array([t for _, t, _ in log]),
        values=np.array([v for _, _, v in log]),
        clear_time=cleared_at,
        **frames,
    )


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))

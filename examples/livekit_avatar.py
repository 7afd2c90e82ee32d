"""A LiveKit agent whose replies are spoken by a facecast talking photo, rendered in-process.

Setup (see docs/live.md; livekit-agents needs protobuf >= 5, mediapipe < 5):

    # 1. In a facecast environment, rig the photo once:
    python -c "from facecast.live.rig import save_rig; save_rig('me.jpg', 'me.rig')"
    # 2. In the agent's environment (pip install 'facecast[livekit]' plus your STT/LLM/TTS
    #    plugins, protobuf 5 first on the path), with LIVEKIT_URL, LIVEKIT_API_KEY and
    #    LIVEKIT_API_SECRET set:
    python examples/livekit_avatar.py dev me.rig

`python examples/livekit_avatar.py room-check me.rig` joins a room named `facecast-check`,
publishes the avatar's video for a few seconds and prints `published video` (the end-to-end
test in tests/test_live_avatar.py runs it where a LiveKit server is configured).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from livekit import api, rtc
from livekit.agents import Agent, AgentSession, JobContext, WorkerOptions, cli
from livekit.agents.voice.avatar import AvatarRunner, QueueAudioOutput

from facecast.live.avatar import FacecastVideoGenerator, avatar_options, load_rig

RIG = Path(sys.argv.pop(2)) if len(sys.argv) > 2 else Path("me.rig")
INSTRUCTIONS = "You are a friendly assistant. Answer in one or two short sentences."
CHECK_ROOM = "facecast-check"
CHECK_SECONDS = 5.0


async def start_avatar(room: rtc.Room) -> QueueAudioOutput:
    """Run the facecast avatar in this process; the audio output the agent speaks into."""
    animator = load_rig(RIG)
    options = avatar_options(animator)
    audio = QueueAudioOutput(sample_rate=options.audio_sample_rate)
    runner = AvatarRunner(
        room, audio_recv=audio, video_gen=FacecastVideoGenerator(animator), options=options
    )
    await runner.start()
    return audio


async def entrypoint(ctx: JobContext) -> None:
    """The agent: your STT, LLM and TTS, speaking through the avatar."""
    await ctx.connect()
    audio = await start_avatar(ctx.room)
    # Pick your models here, e.g. AgentSession(stt=..., llm=..., tts=..., vad=...).
    session = AgentSession()
    session.output.audio = audio
    await session.start(agent=Agent(instructions=INSTRUCTIONS), room=ctx.room)


async def room_check() -> None:
    """Join CHECK_ROOM as the avatar and publish its idle video for a few seconds."""
    token = (
        api.AccessToken()
        .with_identity("facecast-avatar")
        .with_grants(api.VideoGrants(room_join=True, room=CHECK_ROOM))
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(os.environ["LIVEKIT_URL"], token)
    audio = await start_avatar(room)
    await audio.capture_frame(rtc.AudioFrame(bytes(960 * 2), 48_000, 1, 960))
    audio.flush()
    await asyncio.sleep(CHECK_SECONDS)
    kinds = {p.kind for p in room.local_participant.track_publications.values()}
    if rtc.TrackKind.KIND_VIDEO in kinds:
        print("published video")
    await room.disconnect()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "room-check":
        asyncio.run(room_check())
    else:
        cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))

"""The client side of a live session (aiortc): offer, data-channel messages, received media.

Used by `facecast.client.Client.live`, bench/live.py and the tests:

    peer = LivePeer()
    answer = post_offer(await peer.offer())      # POST /live with the offer
    await peer.accept(answer)
    await peer.opened()
    peer.say("Hello!")
    await peer.event("speech_ended")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from facecast.live.protocol import CHANNEL_LABEL

EVENT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Received:
    """A decoded frame and when it arrived (time.monotonic())."""

    at: float
    frame: av.VideoFrame | av.AudioFrame


def rgb_of(frame: av.VideoFrame | av.AudioFrame) -> np.ndarray:
    """A received video frame as RGB pixels."""
    assert isinstance(frame, av.VideoFrame), "an audio frame has no pixels"
    return frame.to_ndarray(format="rgb24")


class LivePeer:
    """One client peer connection: receives video and audio, speaks on the data channel."""

    def __init__(
        self,
        on_video: Callable[[Received], None] | None = None,
        on_audio: Callable[[Received], None] | None = None,
    ) -> None:
        self.pc = RTCPeerConnection()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.channel = self.pc.createDataChannel(CHANNEL_LABEL)
        self.on_video = on_video
        self.on_audio = on_audio
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.history: list[tuple[float, dict[str, Any]]] = []
        self.video_frames = 0
        self.audio_frames = 0
        self._open = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []
        self.channel.on("open", self._open.set)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)

    def _on_message(self, raw: str | bytes) -> None:
        body = json.loads(raw)
        self.history.append((time.monotonic(), body))
        self.events.put_nowait(body)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                received = Received(time.monotonic(), frame)  # type: ignore[arg-type]
                if track.kind == "video":
                    self.video_frames += 1
                    if self.on_video is not None:
                        self.on_video(received)
                else:
                    self.audio_frames += 1
                    if self.on_audio is not None:
                        self.on_audio(received)

    async def offer(self) -> str:
        """The SDP offer to send as POST /live's `offer` (ICE gathered)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        """Apply the server's SDP answer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def opened(self, timeout: float = EVENT_TIMEOUT_S) -> None:
        """Wait until the data channel is open."""
        await asyncio.wait_for(self._open.wait(), timeout)

    def send(self, body: dict[str, Any]) -> None:
        """Send one message as it is (tests send wrong ones on purpose)."""
        self.channel.send(json.dumps(body))

    def say(self, text: str, utterance: str | None = None) -> str:
        """Speak `text` after what is queued; the utterance id."""
        utterance = utterance or uuid.uuid4().hex[:12]
        self.send({"type": "say", "id": utterance, "text": text})
        return utterance

    def audio(self, utterance: str, samples: np.ndarray, rate: int, final: bool = False) -> None:
        """Speak float samples (mono, -1..1) at `rate` as a chunk of utterance `utterance`."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        body = {"type": "audio", "id": utterance, "rate": rate, "final": final}
        self.send({**body, "pcm": base64.b64encode(pcm).decode()})

    def clear(self) -> None:
        """Interrupt: stop speaking now, drop what is queued."""
        self.send({"type": "clear"})

    async def event(
        self,
        kind: str | None = None,
        utterance: str | None = None,
        timeout: float = EVENT_TIMEOUT_S,
    ) -> dict[str, Any]:
        """The next message of `kind` (and `utterance`), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            body = await asyncio.wait_for(self.events.get(), max(left, 0.001))
            if (kind is None or body.get("type") == kind) and (
                utterance is None or body.get("id") == utterance
            ):
                return body

    async def close(self) -> None:
        """Hang up."""
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


class LiveConnection:
    """A started session: the peer plus its id; `close` hangs up and ends it on the server."""

    def __init__(
        self, session_id: str, peer: LivePeer, end: Callable[[], Awaitable[object]]
    ) -> None:
        self.session_id = session_id
        self.peer = peer
        self._end = end

    async def __aenter__(self) -> LiveConnection:
        await self.peer.opened()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def say(self, text: str, utterance: str | None = None) -> str:
        """Speak `text` after what is queued; the utterance id."""
        return self.peer.say(text, utterance)

    def audio(self, utterance: str, samples: np.ndarray, rate: int, final: bool = False) -> None:
        """Speak a chunk of audio another system synthesised."""
        self.peer.audio(utterance, samples, rate, final)

    def clear(self) -> None:
        """Interrupt."""
        self.peer.clear()

    async def event(self, kind: str | None = None, utterance: str | None = None) -> dict[str, Any]:
        """The next message from the server (of `kind`, about `utterance`)."""
        return await self.peer.event(kind, utterance)

    async def close(self) -> None:
        """Hang up and end the session on the server (a session already gone is fine)."""
        await self.peer.close()
        with contextlib.suppress(Exception):
            await self._end()

"""One live session: a WebRTC peer that renders a rigged photo, speaks what the data channel
asks, and ends on request, on disconnect, after an idle limit or at its maximum length.

`LiveSession.start` rigs the photo and answers the offer; `run` then serves until the end.
The service runs each session in a process of its own (facecast.live.process), so rendering
never shares the API's event loop or its cores' time slices with other sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from facecast import pipeline
from facecast.errors import ErrorCode, FacecastError
from facecast.image import load_photo
from facecast.live import protocol
from facecast.live.idle import IdleMotion
from facecast.live.playout import Event, Playout, Segment
from facecast.live.tracks import FaceTrack, SessionClock, SpeechTrack
from facecast.live.utterances import AudioStream, decode_pcm, text_segments
from facecast.options import RenderOptions
from facecast.service.inputs import clean_text

logger = logging.getLogger("facecast.live")

CONNECT_S = 30.0
"""A peer that has not connected this long after the answer never will."""
DISCONNECT_GRACE_S = 5.0
"""A `disconnected` peer may come back (ICE recovers) within this time."""
WATCH_S = 0.5
"""How often the idle and length limits are checked."""
NO_SAMPLES = np.zeros(0, dtype=np.float32)


class OfferError(FacecastError):
    """The SDP offer cannot be answered (malformed, or it receives no video and audio)."""

    code = ErrorCode.INVALID_OFFER


@dataclass(frozen=True)
class SessionRequest:
    """Everything a session process needs, checked by the API before it was sent."""

    session_id: str
    photo: bytes
    offer: str
    options: RenderOptions
    """Voice and language resolved (pipeline.choose_voice); size, fps, face choice."""
    idle_seconds: float
    max_seconds: float
    max_text_chars: int
    max_audio_seconds: float
    max_image_pixels: int
    screen: bool = False
    nudity_model: Path | None = None
    nudity_threshold: float = 0.5


def rig(request: SessionRequest) -> pipeline.RiggedPhoto:
    """Decode, screen (like a job's photo) and rig the photo; FacecastError when it cannot be
    animated (no face, the chosen face missing, explicit content)."""
    photo = load_photo(request.photo, max_pixels=request.max_image_pixels)
    if request.screen:
        from facecast.safety import NudityScreen, bundled_model

        model = request.nudity_model or bundled_model()
        NudityScreen(model, request.nudity_threshold).check(photo.rgb)
    return pipeline.rig_photo(photo, request.options)


class LiveSession:
    """A peer connection, its two tracks, its data channel and its limits."""

    def __init__(self, request: SessionRequest, rigged: pipeline.RiggedPhoto) -> None:
        self.request = request
        self.options = request.options
        self.playout = Playout()
        self.clock = SessionClock()
        self.pc = RTCPeerConnection()
        watermark = self.options.watermark
        self.video = FaceTrack(
            rigged.animator,
            self.playout,
            IdleMotion(self.options.seed),
            self.clock,
            self.options.fps,
            (lambda frame: pipeline.watermark_frame(frame, watermark)) if watermark else _same,
        )
        self.audio = SpeechTrack(self.playout, self.clock, self._send_events)
        self.channel: RTCDataChannel | None = None
        self.ended = asyncio.Event()
        self.reason = ""
        self.last_activity = time.monotonic()
        self.started = time.monotonic()
        self.connected = False
        self._work: asyncio.Queue[tuple[int, protocol.Message]] = asyncio.Queue()
        self._generation = 0
        self._pending: list[str] = []
        """Utterances accepted and not yet started."""
        self._streams: dict[str, AudioStream] = {}
        self._speech = ThreadPoolExecutor(1, thread_name_prefix="facecast-live-speech")

    # ------------------------------------------------------------------ start and end

    async def answer(self, offer: str) -> str:
        """The SDP answer to the client's offer; OfferError when there is none to give."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise OfferError(f"The offer is not a valid SDP offer ({exc}).") from None
        kinds = {t.kind for t in self.pc.getTransceivers()}
        if not {"audio", "video"} <= kinds:
            raise OfferError("The offer must receive one video and one audio track.")
        self.pc.addTrack(self.video)
        self.pc.addTrack(self.audio)
        self.pc.on("datachannel", self._on_channel)
        self.pc.on("connectionstatechange", self._on_state)
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise OfferError(f"The offer cannot be answered ({exc}).") from None
        return self.pc.localDescription.sdp

    def end(self, reason: str) -> None:
        """End the session (the first reason given is kept)."""
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()

    async def run(self) -> str:
        """Serve until the session ends; why it ended."""
        worker = asyncio.create_task(self._work_loop())
        watcher = asyncio.create_task(self._watch_limits())
        try:
            await self.ended.wait()
        finally:
            worker.cancel()
            watcher.cancel()
            for task in (worker, watcher):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.video.stop()
            self.audio.stop()
            await self.pc.close()
            self._speech.shutdown(wait=False, cancel_futures=True)
        logger.info("live session %s ended: %s", self.request.session_id, self.reason)
        return self.reason

    async def _watch_limits(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            now = time.monotonic()
            if self.playout.busy or self._pending:
                self.last_activity = now
            if now - self.started >= self.request.max_seconds:
                self.end("max_length")
            elif now - self.last_activity >= self.request.idle_seconds:
                self.end("idle")
            elif not self.connected and now - self.started >= CONNECT_S:
                self.end("never_connected")

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected = True
        elif state in ("failed", "closed"):
            self.end("disconnected")
        elif state == "disconnected":
            asyncio.get_running_loop().call_later(DISCONNECT_GRACE_S, self._still_gone)

    def _still_gone(self) -> None:
        if self.pc.connectionState in ("disconnected", "failed", "closed"):
            self.end("disconnected")

    # ------------------------------------------------------------------ messages

    def _on_channel(self, channel: RTCDataChannel) -> None:
        if channel.label != protocol.CHANNEL_LABEL:
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.end("disconnected"))

    def _send(self, body: dict[str, Any] | str) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(body if isinstance(body, str) else json.dumps(body))

    def _send_error(self, exc: FacecastError, utterance: str | None = None) -> None:
        self._send(protocol.error_message(exc.code, exc.message, utterance))

    def _send_events(self, events: list[Event]) -> None:
        for event in events:
            with contextlib.suppress(ValueError):
                self._pending.remove(event.utterance)
            self._send(event.message())

    def _on_message(self, raw: str | bytes) -> None:
        self.last_activity = time.monotonic()
        try:
            message = protocol.parse(raw)
        except protocol.MessageError as exc:
            self._send_error(exc, exc.utterance)
            return
        if isinstance(message, protocol.Clear):
            self.clear()
            return
        if message.id not in self._pending and message.id not in self._streams:
            self._pending.append(message.id)
        self._work.put_nowait((self._generation, message))

    def clear(self) -> None:
        """Silence now: the playing utterance and everything queued end as interrupted."""
        self._generation += 1
        events = self.playout.clear()
        named = {e.utterance for e in events}
        events += [Event("speech_ended", u, True) for u in self._pending if u not in named]
        self._pending.clear()
        self._streams.clear()
        self._send_events(events)

    async def _work_loop(self) -> None:
        """Synthesis and chunk analysis, one message after the other in the order sent."""
        while True:
            generation, message = await self._work.get()
            if generation != self._generation:
                continue
            try:
                if isinstance(message, protocol.Say):
                    await self._say(generation, message)
                elif isinstance(message, protocol.AudioChunk):
                    await self._audio(generation, message)
            except FacecastError as exc:
                self._fail(generation, message, exc)
            except Exception:
                logger.exception("live message failed")
                self._fail(generation, message, FacecastError("The message could not be spoken."))

    def _fail(self, generation: int, message: protocol.Message, exc: FacecastError) -> None:
        """Tell the client; an utterance that cannot go on still ends."""
        utterance = getattr(message, "id", None)
        self._send_error(exc, utterance)
        if utterance is None or generation != self._generation:
            return
        self._streams.pop(utterance, None)
        if utterance in self._pending:
            self._pending.remove(utterance)
            self._send(Event("speech_ended", utterance, True).message())
        else:  # it plays: a last, empty segment ends it after what was queued
            self.playout.add(Segment(utterance, NO_SAMPLES, {}, self.options.fps, first=False))

    async def _say(self, generation: int, message: protocol.Say) -> None:
        text = clean_text(message.text, self.request.max_text_chars)
        pieces = text_segments(text, message.id, self.options)
        loop = asyncio.get_running_loop()
        while True:
            segment = await loop.run_in_executor(self._speech, next, pieces, None)
            if segment is None or generation != self._generation:
                return
            self.playout.add(segment)

    async def _audio(self, generation: int, message: protocol.AudioChunk) -> None:
        stream = self._streams.get(message.id)
        if stream is None:
            stream = AudioStream(
                message.id, message.rate, self.options.fps, self.request.max_audio_seconds
            )
            self._streams[message.id] = stream
        track = decode_pcm(message.pcm, message.rate)
        loop = asyncio.get_running_loop()
        segment = await loop.run_in_executor(self._speech, stream.add, track, message.final)
        if generation != self._generation:
            return
        if message.final:
            self._streams.pop(message.id, None)
        self.playout.add(segment)


def _same(frame: Any) -> Any:
    return frame

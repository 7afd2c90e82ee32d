"""`facecast live`: a live session from the terminal, or the live page in a browser.

Each line (or --say) is spoken as it is typed; `/clear` interrupts. With --record the session
as the client received it (video and sound) is written to an MP4.
"""

from __future__ import annotations

import asyncio
import fractions
import sys
import webbrowser
from collections.abc import Iterable
from pathlib import Path

import av

from facecast.client import AsyncFacecastClient
from facecast.live.peer import LiveConnection, Received
from facecast.live.playout import OUT_RATE

CLEAR_COMMAND = "/clear"
RECORD_FPS = 25


class Recording:
    """Received frames and sound into an MP4 (H.264 + AAC), timed by their arrival."""

    def __init__(self, path: Path) -> None:
        self.container = av.open(str(path), "w")
        self.video = self.container.add_stream("libx264", rate=RECORD_FPS)
        self.video.pix_fmt = "yuv420p"
        self.sound = self.container.add_stream("aac", rate=OUT_RATE)
        self._start: float | None = None
        self._samples = 0
        self._last_pts = -1

    def _since(self, received: Received) -> float:
        if self._start is None:
            self._start = received.at
        return received.at - self._start

    def on_video(self, received: Received) -> None:
        frame = received.frame
        assert isinstance(frame, av.VideoFrame)
        if self._last_pts < 0:  # the encoder opens with the first frame's size
            self.video.width, self.video.height = frame.width, frame.height
        pts = round(self._since(received) * RECORD_FPS)
        if pts <= self._last_pts:
            return  # two frames in one tick of the recording's clock: the later one is dropped
        self._last_pts = pts
        out = frame.reformat(format="yuv420p")
        out.pts = pts
        out.time_base = fractions.Fraction(1, RECORD_FPS)
        self.container.mux(self.video.encode(out))

    def on_audio(self, received: Received) -> None:
        frame = received.frame
        assert isinstance(frame, av.AudioFrame)
        if self._last_pts < 0:
            return  # before the first frame: muxing would open the video encoder unsized
        self._since(received)
        frame.pts = self._samples
        self._samples += frame.samples
        self.container.mux(self.sound.encode(frame))

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        self.container.mux(self.video.encode(None))
        self.container.mux(self.sound.encode(None))
        self.container.close()


async def converse(connection: LiveConnection, lines: Iterable[str]) -> None:
    """Say each line and wait until it was spoken; `/clear` interrupts."""
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text == CLEAR_COMMAND:
            connection.clear()
            continue
        utterance = connection.say(text)
        while True:
            event = await connection.event(utterance=utterance)
            print(f"{event['type']}: {event.get('message', text)}", file=sys.stderr)
            if event["type"] in ("speech_ended", "error"):
                break


async def run(
    server: str,
    api_key: str | None,
    image: Path,
    says: list[str],
    *,
    consent: bool,
    lang: str | None = None,
    voice: str | None = None,
    record: Path | None = None,
) -> None:
    """Connect, speak `says` (standard input's lines when empty), hang up."""
    recording = Recording(record) if record else None
    async with AsyncFacecastClient(server, api_key) as client:
        connection = await client.live(
            image,
            consent=consent,
            lang=lang,
            voice=voice,
            on_video=recording.on_video if recording else None,
            on_audio=recording.on_audio if recording else None,
        )
        try:
            async with connection:
                await converse(connection, says or sys.stdin)
                await asyncio.sleep(0.5)  # the last frames on their way
        finally:
            if recording is not None:
                recording.close()


def open_page(server: str) -> str:
    """Open the server's live page in the default browser; its URL."""
    url = f"{server.rstrip('/')}/live.html"
    webbrowser.open(url)
    return url

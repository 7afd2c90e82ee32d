"""Live sessions through a real uvicorn API and a real aiortc peer on loopback: frames and
sound arrive, the lips move with speech and rest closed between utterances (the face mesh on
the received frames), say/audio/clear on the data channel, and the API's refusals."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from _measure import mouth_opening
from conftest_service import LiveService, free_port, service_env, spawn
from facecast import face
from facecast.errors import NoFaceError
from facecast.live.peer import LivePeer, Received, rgb_of

KEY_A, KEY_B = "live-key-a", "live-key-b"
CAPACITY = 2
SENTENCE = "Hello there. How are you today? I am very glad to meet you."
SPEECH_RMS = 0.02
"""Received 20 ms audio frames louder than this carry speech (silence is exactly zero)."""
OPEN_MOUTH = 0.12
"""Inner lip gap over mouth width that counts as open (grace at rest measures ~0.02)."""
CLOSED_MOUTH = 0.06
CLEAR_LIMIT_S = 0.15
IDLE_FRAMES = 36
"""Frames received before the first `say` (about 1.5 s at 25 fps)."""

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """The API alone (sessions need no worker) with two tenant keys and room for 2 sessions."""
    root = tmp_path_factory.mktemp("live")
    env = service_env(
        root / "data",
        None,
        FACECAST_API_KEYS=f"{KEY_A},{KEY_B}",
        FACECAST_LIVE_CAPACITY=str(CAPACITY),
    )
    port = free_port()
    log = root / "api.log"
    service = LiveService(f"http://127.0.0.1:{port}", root / "data", {"api": log})
    api = [sys.executable, "-m", "uvicorn", "--factory", "facecast.service.app:create_app"]
    service.processes["api"] = spawn([*api, "--host", "127.0.0.1", "--port", str(port)], env, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if service.client.get("/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    try:
        yield service
    finally:
        service.close()


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post_live(
    service: LiveService, photo: Path | bytes, offer: str, key: str = KEY_A, **fields: Any
) -> httpx.Response:
    data = {"offer": offer, "consent": "true", "lang": "en", **fields}
    content = photo if isinstance(photo, bytes) else photo.read_bytes()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=90) as client:
        return await client.post(
            "/live", data=data, files={"source_image": ("photo.jpg", content)}, headers=auth(key)
        )


class Recorder:
    """Frames and audio levels as they arrive."""

    def __init__(self) -> None:
        self.video: list[tuple[float, np.ndarray]] = []
        self.audio: list[tuple[float, float]] = []

    def on_video(self, received: Received) -> None:
        self.video.append((received.at, rgb_of(received.frame)))

    def on_audio(self, received: Received) -> None:
        pcm = received.frame.to_ndarray().astype(np.float32) / 32768.0
        self.audio.append((received.at, float(np.sqrt(np.mean(pcm**2)))))

    def frames_between(self, start: float, end: float) -> list[np.ndarray]:
        return [rgb for at, rgb in self.video if start <= at <= end]

    def loud_between(self, start: float, end: float) -> list[float]:
        return [at for at, rms in self.audio if start <= at <= end and rms > SPEECH_RMS]


async def connect(
    service: LiveService, photo: Path, recorder: Recorder | None = None, **fields: Any
) -> tuple[LivePeer, str]:
    peer = LivePeer(
        on_video=recorder.on_video if recorder else None,
        on_audio=recorder.on_audio if recorder else None,
    )
    answer = await post_live(service, photo, await peer.offer(), **fields)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    await peer.accept(body["answer"])
    await peer.opened()
    return peer, str(body["session_id"])


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def openings(frames: list[np.ndarray], step: int = 2) -> list[float]:
    out = []
    for rgb in frames[::step]:
        try:
            out.append(mouth_opening(face.detect_landmarks(rgb)))
        except NoFaceError:
            continue
    return out


def test_frames_and_speech_arrive_lips_move_only_while_speaking(
    live_api: LiveService, portrait: Path
) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        peer, _ = await connect(live_api, portrait, recorder)
        deadline = time.monotonic() + 30
        while len(recorder.video) < IDLE_FRAMES:  # a loaded machine may start slowly
            assert time.monotonic() < deadline, len(recorder.video)
            await asyncio.sleep(0.1)
        idle_end = time.monotonic()
        utterance = peer.say(SENTENCE)
        started = await peer.event("speech_started", utterance)
        started_at = time.monotonic()
        ended = await peer.event("speech_ended", utterance)
        ended_at = time.monotonic()
        await asyncio.sleep(1.0)
        await peer.close()
        assert started == {"type": "speech_started", "id": utterance}
        assert ended == {"type": "speech_ended", "id": utterance, "interrupted": False}
        first = recorder.video[0][0]
        idle = recorder.frames_between(recorder.video[5][0], idle_end)
        speaking = recorder.frames_between(started_at + 0.2, ended_at - 0.2)
        # 30 idle frames; more than 40 while speaking (> 2 s at 25 fps).
        assert len(idle) >= 20 and len(speaking) >= 40, (len(idle), len(speaking))
        assert idle[0].shape == (512, 512, 3)
        idle_open = openings(idle)
        speaking_open = openings(speaking)
        assert max(idle_open) < CLOSED_MOUTH, idle_open
        assert max(speaking_open) > OPEN_MOUTH, speaking_open
        assert np.percentile(speaking_open, 75) > 2 * np.median(idle_open)
        # Sound: silence while idle, speech between the events.
        assert not recorder.loud_between(first, idle_end)
        assert len(recorder.loud_between(started_at, ended_at)) > 30

    run(scenario)


def test_says_queue_in_order(live_api: LiveService, portrait: Path) -> None:
    async def scenario() -> None:
        peer, _ = await connect(live_api, portrait)
        first = peer.say("One, two.")
        second = peer.say("Three, four.")
        kinds = []
        for _ in range(4):
            body = await peer.event()
            kinds.append((body["type"], body["id"]))
        await peer.close()
        assert kinds == [
            ("speech_started", first),
            ("speech_ended", first),
            ("speech_started", second),
            ("speech_ended", second),
        ]

    run(scenario)


def test_audio_chunks_are_spoken_as_they_stream(live_api: LiveService, portrait: Path) -> None:
    from facecast.options import RenderOptions
    from facecast.pipeline import choose_voice, speak

    speech = speak(SENTENCE, choose_voice(RenderOptions(lang="en")))
    rate = speech.audio.sample_rate
    chunk = rate // 5  # 200 ms

    async def scenario() -> None:
        recorder = Recorder()
        peer, _ = await connect(live_api, portrait, recorder)
        samples = speech.audio.samples
        sent_at = time.monotonic()
        for start in range(0, len(samples), chunk):
            piece = samples[start : start + chunk]
            peer.audio("streamed", piece, rate, final=start + chunk >= len(samples))
            await asyncio.sleep(0.1)  # faster than it plays, as a TTS service sends
        started = await peer.event("speech_started", "streamed")
        ended = await peer.event("speech_ended", "streamed")
        ended_at = time.monotonic()
        await asyncio.sleep(0.3)
        await peer.close()
        assert started["id"] == "streamed" and ended["interrupted"] is False
        heard = recorder.loud_between(sent_at, ended_at + 0.3)
        frames = samples[: len(samples) // (rate // 50) * (rate // 50)].reshape(-1, rate // 50)
        loud = int((np.sqrt((frames**2).mean(axis=1)) > SPEECH_RMS).sum())
        assert len(heard) > 0.8 * loud, (len(heard), loud)
        speaking = openings(recorder.frames_between(sent_at + 0.3, ended_at - 0.2), step=3)
        assert max(speaking) > OPEN_MOUTH, speaking

    run(scenario)


def test_clear_silences_and_closes_the_mouth_and_drops_the_queue(
    live_api: LiveService, portrait: Path
) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        peer, _ = await connect(live_api, portrait, recorder)
        long = peer.say(SENTENCE * 3)
        queued = peer.say("This is never said.")
        await peer.event("speech_started", long)
        await asyncio.sleep(1.0)
        cleared_at = time.monotonic()
        peer.clear()
        ended = [await peer.event("speech_ended"), await peer.event("speech_ended")]
        await asyncio.sleep(1.0)
        await peer.close()
        assert {(e["id"], e["interrupted"]) for e in ended} == {(long, True), (queued, True)}
        assert recorder.loud_between(cleared_at - 0.5, cleared_at), "speech was playing"
        # Sound that left before the clear may still arrive; nothing later than the limit.
        assert not recorder.loud_between(cleared_at + CLEAR_LIMIT_S, cleared_at + 1.0)
        after = openings(recorder.frames_between(cleared_at + CLEAR_LIMIT_S, cleared_at + 1.0))
        assert after and max(after) < CLOSED_MOUTH, after
        assert all(
            body["id"] != queued for _, body in peer.history if body["type"] == "speech_started"
        )

    run(scenario)


def test_bad_messages_answer_errors_on_the_channel(live_api: LiveService, portrait: Path) -> None:
    async def scenario() -> None:
        peer, _ = await connect(live_api, portrait)
        peer.channel.send("not json")
        assert (await peer.event("error"))["code"] == "invalid_message"
        peer.send({"type": "dance"})
        assert (await peer.event("error"))["code"] == "invalid_message"
        peer.send({"type": "say", "id": "empty", "text": "   "})
        error = await peer.event("error")
        assert (error["code"], error["id"]) == ("invalid_text", "empty")
        assert (await peer.event("speech_ended", "empty"))["interrupted"] is True
        peer.send({"type": "audio", "id": "odd", "pcm": "AAAA", "rate": 16000})
        assert (await peer.event("error"))["code"] == "invalid_audio"
        peer.send({"type": "audio", "id": "slow", "pcm": "", "rate": 100, "final": True})
        assert (await peer.event("error"))["code"] == "invalid_audio"
        # The session still speaks after all that.
        fine = peer.say("Still here.")
        assert (await peer.event("speech_ended", fine))["interrupted"] is False
        await peer.close()

    run(scenario)


def plain_image() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 160, 200)).save(out, "JPEG")
    return out.getvalue()


def test_refusals_are_clear_http_errors(live_api: LiveService, portrait: Path) -> None:
    async def scenario() -> None:
        peer = LivePeer()
        offer = await peer.offer()
        bad_sdp = await post_live(live_api, portrait, "v=0 this is not sdp")
        assert (bad_sdp.status_code, bad_sdp.json()["error"]["code"]) == (400, "invalid_offer")
        no_face = await post_live(live_api, plain_image(), offer)
        assert (no_face.status_code, no_face.json()["error"]["code"]) == (400, "no_face")
        voice = await post_live(live_api, portrait, offer, voice="nosuch")
        assert (voice.status_code, voice.json()["error"]["code"]) == (400, "unknown_voice")
        consent = await post_live(live_api, portrait, offer, consent="false")
        assert consent.json()["error"]["code"] == "consent_required"
        unknown = await post_live(live_api, portrait, offer, text="hi")
        assert unknown.status_code == 422
        huge = await post_live(live_api, portrait, offer, size="2048")
        assert (huge.status_code, huge.json()["error"]["code"]) == (422, "invalid_request")
        assert "1024 px" in huge.json()["error"]["message"]
        out_of_bounds = await post_live(live_api, portrait, offer, size="4096")
        assert out_of_bounds.status_code == 422  # RenderOptions' own bound, as for /animate
        async with httpx.AsyncClient(base_url=live_api.base_url) as client:
            anonymous = await client.post("/live", data={"offer": offer, "consent": "true"})
        assert anonymous.status_code == 401
        await peer.close()

    run(scenario)


def test_capacity_tenants_delete_and_disconnect(live_api: LiveService, portrait: Path) -> None:
    async def scenario() -> None:
        first, first_id = await connect(live_api, portrait)
        second, second_id = await connect(live_api, portrait)
        third = LivePeer()
        full = await post_live(live_api, portrait, await third.offer())
        assert full.status_code == 503 and full.headers["Retry-After"], full.text
        async with httpx.AsyncClient(base_url=live_api.base_url) as client:
            other = await client.delete(f"/live/{first_id}", headers=auth(KEY_B))
            assert other.status_code == 404  # another tenant's session is not there for B
            mine = await client.delete(f"/live/{first_id}", headers=auth(KEY_A))
            assert mine.status_code == 200 and mine.json()["ended"] is True
            # The server hangs up on the peer.
            deadline = time.monotonic() + 10
            while first.pc.connectionState not in ("closed", "failed"):
                assert time.monotonic() < deadline, first.pc.connectionState
                await asyncio.sleep(0.1)
            # A client that goes away ends its session: its place is free again (two new
            # sessions fit only once the abandoned one has ended by itself).
            await second.close()
        await first.close()
        await third.close()
        peers = [LivePeer(), LivePeer()]
        placed = []
        deadline = time.monotonic() + 30
        for peer in peers:
            while True:
                answer = await post_live(live_api, portrait, await peer.offer())
                if answer.status_code == 201:
                    placed.append(answer.json()["session_id"])
                    break
                assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
                await asyncio.sleep(1.0)
        assert second_id not in placed
        async with httpx.AsyncClient(base_url=live_api.base_url) as client:
            for session_id in placed:
                assert (
                    await client.delete(f"/live/{session_id}", headers=auth())
                ).status_code == 200
            gone = await client.delete(f"/live/{second_id}", headers=auth())
            assert gone.status_code == 404
        for peer in peers:
            await peer.close()

    run(scenario)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


def test_live_page_connects_speaks_and_interrupts_in_chromium(
    live_api: LiveService, portrait: Path
) -> None:
    """The page in headless Chromium: real WebRTC to the API on loopback."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_api.base_url}/live.html")
            page.click("details summary")
            page.fill("#apikey", KEY_A)
            page.dispatch_event("#apikey", "change")
            page.wait_for_function("document.getElementById('voice').options.length > 1")
            page.set_input_files("#photo", str(portrait))
            page.check("#consent")
            page.click("#connect")
            page.wait_for_function("!document.getElementById('text').disabled", timeout=90_000)
            # Frames play: the video has the session's size and its clock advances.
            page.wait_for_function(
                "(() => { const v = document.getElementById('video');"
                " return v.videoWidth === 512 && v.currentTime > 0.5; })()",
                timeout=30_000,
            )
            page.fill("#text", "Hello from the browser. This sentence is long enough to stop.")
            page.click("#say")
            events = "document.getElementById('events').textContent"
            page.wait_for_function(f"{events}.includes('speech_started s1')", timeout=30_000)
            page.click("#clear")
            page.wait_for_function(f"{events}.includes('speech_ended s1 (interrupted)')")
            page.fill("#text", "Short.")
            page.click("#say")
            page.wait_for_function(
                f"{events}.includes('speech_ended s2') && !{events}.includes('s2 (interrupted)')",
                timeout=30_000,
            )
            frames = page.evaluate(
                "document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames"
            )
            assert frames > 25, frames
            page.click("#hangup")
            page.wait_for_function("document.getElementById('status').textContent === 'Hung up.'")
        finally:
            browser.close()


def test_python_client_speaks_through_a_live_session(live_api: LiveService, portrait: Path) -> None:
    from facecast.client import AsyncFacecastClient, FacecastAPIError

    async def scenario() -> None:
        async with AsyncFacecastClient(live_api.base_url, KEY_A) as client:
            with pytest.raises(FacecastAPIError) as refused:
                await client.live(portrait, consent=False)
            assert refused.value.code == "consent_required"
            async with await client.live(portrait, consent=True, lang="en", size=256) as session:
                utterance = session.say("Hello from Python.")
                assert (await session.event("speech_started", utterance))["id"] == utterance
                ended = await session.event("speech_ended", utterance)
                assert ended["interrupted"] is False
                assert session.peer.video_frames > 10 and session.peer.audio_frames > 20
            # Leaving the block ended the session on the server.
            gone = await client._http.delete(f"/live/{session.session_id}")
            assert gone.status_code == 404

    run(scenario)


def test_cli_live_says_lines_and_records_them(
    live_api: LiveService, portrait: Path, tmp_path: Path
) -> None:
    from facecast.video import probe

    command = [sys.executable, "-c", "from facecast.cli import main; main()", "live"]
    target = ["--image", str(portrait), "--server", live_api.base_url, "--api-key", KEY_A]
    refused = subprocess.run([*command, *target], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--consent" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    video = tmp_path / "live.mp4"
    done = subprocess.run(
        [
            *command,
            *target,
            "--consent",
            "--lang",
            "en",
            "--say",
            "Hello there, friend.",
            "--record",
            str(video),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=service_env(tmp_path, None),
    )
    assert done.returncode == 0, done.stderr
    assert "speech_ended" in done.stderr
    info = probe(video)
    assert info.width == 512 and info.video_duration > 1.0 and info.has_audio, info

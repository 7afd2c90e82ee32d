"""The live engine without HTTP: idle motion, the playout timeline, messages, and a session's
limits with a real aiortc peer in the same event loop."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import numpy as np
import pytest

from facecast import motion
from facecast.live import protocol
from facecast.live.idle import IdleMotion
from facecast.live.peer import LivePeer
from facecast.live.playout import OUT_RATE, Playout, Segment
from facecast.live.session import LiveSession, SessionRequest, rig
from facecast.live.utterances import AudioStream, sentences
from facecast.options import RenderOptions
from facecast.pipeline import RiggedPhoto, choose_voice

FPS = 25
PER_FRAME = OUT_RATE // FPS


def segment(utterance: str, seconds: float, jaw: float = 0.5, **flags: bool) -> Segment:
    n = round(seconds * FPS)
    mouth = {name: np.zeros(n, np.float32) for name in ("jaw", "width", "tongue", "smile")}
    mouth["jaw"][:] = jaw
    samples = np.full(n * PER_FRAME, 0.25, np.float32)
    return Segment(utterance, samples, mouth, FPS, **flags)


def test_idle_motion_blinks_sways_and_never_jumps() -> None:
    idle = IdleMotion(seed=3)
    frames = [idle.at(i / FPS) for i in range(60 * FPS)]
    blinks = np.array([f["blink_a"] for f in frames])
    yaw = np.array([f["yaw"] for f in frames])
    pitch = np.array([f["pitch"] for f in frames])
    closed = np.flatnonzero(blinks > 0.9)
    # Blinks every few seconds (motion's mean interval 3.4 s): 8 to 30 in a minute.
    assert 8 <= len(np.flatnonzero(np.diff(closed) > 1)) + 1 <= 30
    assert all(f["jaw"] == 0.0 and f["smile"] == 0.0 for f in frames)
    assert 0.2 < np.ptp(yaw) < 6 and 0.2 < np.ptp(pitch) < 6
    # Head motion is smooth: no step between frames larger than a fraction of a degree.
    assert np.abs(np.diff(yaw)).max() < 0.2 and np.abs(np.diff(pitch)).max() < 0.2


def test_playout_places_segments_in_order_and_tells_starts_and_ends() -> None:
    playout = Playout()
    playout.add(segment("a", 0.1))
    playout.add(segment("b", 0.06))
    events = []
    heard = []
    for _ in range(20):
        samples, new = playout.pull(960)
        events += [(e.kind, e.utterance) for e in new]
        heard.append(float(samples.max()))
    assert events == [
        ("speech_started", "a"),
        ("speech_ended", "a"),
        ("speech_started", "b"),
        ("speech_ended", "b"),
    ]
    assert heard[:8] == [0.25] * 8 and heard[8:] == [0.0] * 12
    assert not playout.busy


def test_playout_mouth_follows_the_sound_then_relaxes() -> None:
    playout = Playout()
    playout.add(segment("a", 0.2, jaw=0.8))
    assert playout.mouth_at(0) is None  # nothing placed yet: the idle mouth
    playout.pull(960)
    assert playout.mouth_at(960) == {"jaw": pytest.approx(0.8), "width": 0, "tongue": 0, "smile": 0}
    for _ in range(10):
        playout.pull(960)
    end = round(0.2 * OUT_RATE)
    relaxing = playout.mouth_at(end + 480)
    assert relaxing is not None and 0.3 < relaxing["jaw"] < 0.8
    assert playout.mouth_at(end + OUT_RATE // 4) is None  # at rest after a quarter second


def test_clear_ends_playing_and_queued_utterances_as_interrupted() -> None:
    playout = Playout()
    playout.add(segment("a", 1.0))
    playout.add(segment("b", 1.0))
    playout.pull(960)
    events = playout.clear()
    assert [(e.utterance, e.interrupted) for e in events] == [("a", True), ("b", True)]
    samples, new = playout.pull(960)
    assert not new and samples.max() == 0.0
    closing = playout.mouth_at(960 * 2 + round(0.15 * OUT_RATE))
    assert closing is None or closing["jaw"] < 0.05 * 0.5


def test_streamed_utterance_waits_for_more_without_ending() -> None:
    stream = AudioStream("s", 16_000, FPS, max_seconds=10)
    tone = 0.3 * np.sin(np.linspace(0, 400 * np.pi, 3200)).astype(np.float32)
    from facecast.audio import AudioTrack

    playout = Playout()
    playout.add(stream.add(AudioTrack(tone, 16_000), final=False))
    kinds = [e.kind for _ in range(20) for e in playout.pull(960)[1]]
    assert kinds == ["speech_started"] and playout.busy
    playout.add(stream.add(AudioTrack(tone, 16_000), final=True))
    kinds = [e.kind for _ in range(20) for e in playout.pull(960)[1]]
    assert kinds == ["speech_ended"] and not playout.busy


def test_messages_parse_or_say_what_is_wrong() -> None:
    pcm = base64.b64encode(b"\x00\x01" * 4).decode()
    assert protocol.parse(json.dumps({"type": "clear"})) == protocol.Clear()
    assert protocol.parse('{"type": "say", "id": "x", "text": "hi"}') == protocol.Say("x", "hi")
    chunk = protocol.parse(json.dumps({"type": "audio", "id": "y", "pcm": pcm, "final": True}))
    assert chunk == protocol.AudioChunk("y", b"\x00\x01" * 4, 16_000, True)
    for bad in (
        "[]",
        "{",
        '{"type": "say", "text": "no id"}',
        '{"type": "audio", "id": "z", "pcm": "!!"}',
        '{"type": "say", "id": "", "text": "x"}',
    ):
        with pytest.raises(protocol.MessageError):
            protocol.parse(bad)


def test_sentences_split_and_join_short_ones() -> None:
    assert sentences("Hi. How are you doing on this fine day? Good!") == [
        "Hi. How are you doing on this fine day?",
        "Good!",
    ]
    assert sentences("no marks at all") == ["no marks at all"]


@pytest.fixture(scope="module")
def rigged(portrait: Path) -> tuple[SessionRequest, RiggedPhoto]:
    options = choose_voice(RenderOptions(size=256, lang="en", expression="neutral"))
    request = SessionRequest(
        session_id="t",
        photo=portrait.read_bytes(),
        offer="",
        options=options,
        idle_seconds=1.0,
        max_seconds=60.0,
        max_text_chars=200,
        max_audio_seconds=30.0,
        max_image_pixels=50_000_000,
    )
    return request, rig(request)


async def _pair(request: SessionRequest, rigged: RiggedPhoto) -> tuple[LiveSession, LivePeer]:
    peer = LivePeer()
    session = LiveSession(request, rigged)
    await peer.accept(await session.answer(await peer.offer()))
    await peer.opened()
    return session, peer


@pytest.mark.timeout(120)
def test_session_ends_when_idle_at_its_length_and_on_disconnect(
    rigged: tuple[SessionRequest, RiggedPhoto],
) -> None:
    request, photo = rigged

    async def ends(request: SessionRequest, hang_up: bool = False) -> tuple[str, float]:
        session, peer = await _pair(request, photo)
        started = asyncio.get_running_loop().time()
        if hang_up:
            await peer.close()
        reason = await asyncio.wait_for(session.run(), 30)
        await peer.close()
        return reason, asyncio.get_running_loop().time() - started

    from dataclasses import replace

    async def scenario() -> None:
        reason, took = await ends(request)
        assert reason == "idle" and took < 3.0
        reason, _ = await ends(replace(request, idle_seconds=60.0, max_seconds=1.0))
        assert reason == "max_length"
        reason, took = await ends(replace(request, idle_seconds=60.0), hang_up=True)
        assert reason == "disconnected" and took < 10.0

    asyncio.run(scenario())


def test_curves_channels_are_the_renderers() -> None:
    assert set(IdleMotion().at(0.0)) == set(motion.CHANNELS)


def test_a_reply_starts_without_the_synthesisers_lead_silence() -> None:
    from facecast.audio import AudioTrack
    from facecast.live.utterances import trim_lead
    from facecast.speech import PhonemeEvent, Speech

    samples = np.zeros(16_000, np.float32)
    samples[1600:] = 0.3
    phonemes = (PhonemeEvent("_", 0.0, 0.1), PhonemeEvent("a", 0.1, 1.0))
    trimmed = trim_lead(Speech(AudioTrack(samples, 16_000), phonemes))
    assert len(trimmed.audio.samples) == 16_000 - 1600 + 320  # 20 ms of lead kept
    assert trimmed.phonemes[0].start == 0.0 and trimmed.phonemes[-1].start == pytest.approx(0.02)

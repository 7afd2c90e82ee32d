"""The LiveKit Agents avatar (facecast.live.avatar) against livekit-agents' own interfaces,
without a room: its VideoGenerator fed through QueueAudioOutput, the AudioReceiver that
AvatarRunner reads. livekit-agents needs protobuf >= 5 and mediapipe < 5, so the generator runs
in a child process with protobuf 5 first on its path (scripts/livekit-overlay makes the folder;
FACECAST_TEST_LIVEKIT_PATH names another); the photo is rigged and the lips measured here.

An end-to-end room test runs only where LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET
are set: no LiveKit server can be installed on this project's machines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _measure import mouth_opening
from facecast import face
from facecast.audio import resample
from facecast.errors import NoFaceError
from facecast.live.rig import save_rig
from facecast.options import RenderOptions
from facecast.pipeline import choose_voice, speak

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("_livekit_generator.py")
RATE = 24_000
OUT_RATE = 48_000
OPEN_MOUTH = 0.12
CLOSED_MOUTH = 0.06
PHASES = ("idle", "speech", "again", "cleared")


def livekit_path() -> list[str]:
    """PYTHONPATH entries under which livekit-agents imports; skip when there are none."""
    overlay = os.environ.get("FACECAST_TEST_LIVEKIT_PATH") or str(ROOT / ".livekit-overlay")
    src = str(ROOT / "src")
    for entries in ([src], [overlay, src]):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(entries)}
        probe = subprocess.run(
            [sys.executable, "-c", "import livekit.agents.voice.avatar"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        if probe.returncode == 0:
            return entries
    pytest.skip(
        "livekit-agents does not import here (pip install 'facecast[livekit]'; with mediapipe "
        "in the same environment run scripts/livekit-overlay for its protobuf 5)"
    )


def openings(frames: list[np.ndarray]) -> list[float]:
    out = []
    for rgb in frames:
        try:
            out.append(mouth_opening(face.detect_landmarks(rgb)))
        except NoFaceError:
            continue
    return out


@pytest.mark.timeout(300)
def test_video_generator_speaks_segments_idles_and_clears(portrait: Path, tmp_path: Path) -> None:
    entries = livekit_path()
    rig = save_rig(portrait, tmp_path / "grace.rig", size=512)
    speech = speak("Hello there. How are you today?", choose_voice(RenderOptions(lang="en")))
    samples = resample(speech.audio, RATE).samples
    np.save(tmp_path / "speech.npy", samples)
    out = tmp_path / "out.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entries)}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(rig), str(tmp_path / "speech.npy"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    data = np.load(out)
    kinds, times, values = data["kinds"], data["times"], data["values"]
    cleared_at = float(data["clear_time"])
    video = times[kinds == "video"]
    assert len(video) / (video[-1] - video[0]) > 10  # 25 fps asked; frames late are skipped
    ends = times[kinds == "end"]
    assert len(ends) == 1, ends  # the first reply played out; the cleared one never ends
    audio_times, audio_samples = times[kinds == "audio"], values[kinds == "audio"]
    first_reply = audio_samples[audio_times <= ends[0]].sum()
    # Matching slices: the whole reply, 48 kHz, one frame's worth per video frame.
    assert abs(first_reply / OUT_RATE - speech.audio.duration) < 0.1, first_reply
    assert not (audio_times < 1.0).any()  # no sound while idle before the reply
    assert not (audio_times > cleared_at + 0.05).any()  # nothing after clear_buffer
    by_phase: dict[str, list[tuple[float, np.ndarray]]] = {}
    for name in data.files:
        phase, _, at = name.rpartition("_")
        if phase in PHASES:
            by_phase.setdefault(phase, []).append((float(at), data[name]))
    idle = openings([rgb for at, rgb in by_phase["idle"] if at > 0.2])
    spoken = openings([rgb for at, rgb in by_phase["speech"] if at < ends[0] - 0.2])
    after = openings([rgb for at, rgb in by_phase["cleared"] if at > cleared_at + 0.15])
    assert idle and max(idle) < CLOSED_MOUTH, idle
    assert max(spoken) > OPEN_MOUTH, spoken
    assert after and max(after) < CLOSED_MOUTH, after


@pytest.mark.skipif(
    not all(os.environ.get(k) for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")),
    reason="needs a LiveKit server: LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET",
)
def test_avatar_joins_a_room_and_publishes_video(portrait: Path, tmp_path: Path) -> None:
    entries = livekit_path()
    rig = save_rig(portrait, tmp_path / "grace.rig", size=256)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entries)}
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "livekit_avatar.py"), "room-check", str(rig)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "published video" in run.stdout

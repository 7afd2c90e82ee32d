"""Live sessions under load: N aiortc peers on loopback, each saying sentences over and over.

python bench/live.py --sessions 2 --seconds 120          # starts its own API on loopback
python bench/live.py --url http://127.0.0.1:8000 --key K  # or measures a running one

Prints, over all sessions: the first frame with moving lips after `say` (p50/p95, from the
message leaving to the frame arriving), received frames per second, the audio-video offset
(lips opening minus sound starting, per utterance) at the start and at the end of the run,
`clear` latency (sound silent, mouth closed) and the CPU the session processes used per
session (psutil; only when the bench started the API itself).

The lips are judged as the tests judge them: mediapipe's face mesh on the received frames
(inner lip gap over mouth width), run after the sessions ended so that it costs them nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import matplotlib
import numpy as np
import psutil

from facecast import face
from facecast.errors import NoFaceError
from facecast.live.peer import LivePeer, Received, rgb_of

SENTENCE = "Hello there. It is good to see you again, and I hope you are well."
LONG_TEXT = SENTENCE * 4
SPEECH_RMS = 0.02
MOVING_LIPS = 0.06
"""Inner lip gap over mouth width beyond which the lips count as moving (rest is ~0.02)."""
CLOSED_LIPS = 0.05
WINDOW_S = 0.9
"""Frames kept after each `say` and `clear` for the lip measurement."""
PAUSE_S = 0.6
FULL_RATE = 25
STARTUP_S = 8.0
"""Seconds a session takes to start (process, photo rigging) before it speaks."""


@dataclass
class Probe:
    """What one peer received, with arrival times."""

    windows: list[tuple[float, float]] = field(default_factory=list)
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    audio: list[tuple[float, float]] = field(default_factory=list)
    video_times: list[float] = field(default_factory=list)
    says: list[float] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    cleared_events: list[float] = field(default_factory=list)

    def on_video(self, received: Received) -> None:
        self.video_times.append(received.at)
        if any(lo <= received.at <= hi for lo, hi in self.windows[-2:]):
            self.frames.append((received.at, rgb_of(received.frame)))

    def on_audio(self, received: Received) -> None:
        pcm = received.frame.to_ndarray().astype(np.float32) / 32768.0
        self.audio.append((received.at, float(np.sqrt(np.mean(pcm**2)))))

    def watch(self, at: float) -> None:
        self.windows.append((at, at + WINDOW_S))


def opening(rgb: np.ndarray) -> float | None:
    """Inner lip gap over mouth width (tests/_measure.py's mouth_opening), None: no face."""
    try:
        lm = face.detect_landmarks(rgb)
    except NoFaceError:
        return None
    upper = lm.xy[list(face.UPPER_INNER_LIP[3:8])]
    lower = lm.xy[list(face.LOWER_INNER_LIP[3:8])]
    corners = lm.xy[face.MOUTH_CORNERS[0]] - lm.xy[face.MOUTH_CORNERS[1]]
    return float((lower[:, 1] - upper[:, 1]).mean() / max(float(np.linalg.norm(corners)), 1e-6))


async def run_session(
    base: str, key: str | None, photo: Path, seconds: float, start_gap: float
) -> Probe:
    """One peer: idle a moment, then sentences until `seconds` pass, then one `clear`."""
    probe = Probe()
    peer = LivePeer(on_video=probe.on_video, on_audio=probe.on_audio)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    await asyncio.sleep(start_gap)
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=headers) as client:
        answer = await client.post(
            "/live",
            data={"offer": await peer.offer(), "consent": "true", "lang": "en"},
            files={"source_image": (photo.name, photo.read_bytes())},
        )
        if answer.status_code != 201:
            raise SystemExit(
                f"bench/live.py: POST /live answered {answer.status_code}: {answer.text}"
            )
        body = answer.json()
        await peer.accept(body["answer"])
        await peer.opened()
        await asyncio.sleep(1.5)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = time.monotonic()
            probe.says.append(now)
            probe.watch(now)
            utterance = peer.say(SENTENCE)
            await peer.event("speech_ended", utterance, timeout=60)
            await asyncio.sleep(PAUSE_S)
        utterance = peer.say(LONG_TEXT)
        await peer.event("speech_started", utterance, timeout=60)
        await asyncio.sleep(1.2)
        now = time.monotonic()
        probe.clears.append(now)
        probe.watch(now)
        peer.clear()
        await peer.event("speech_ended", utterance, timeout=10)
        probe.cleared_events.append(time.monotonic() - now)
        await asyncio.sleep(WINDOW_S)
        await client.delete(f"/live/{body['session_id']}")
    await peer.close()
    return probe


@dataclass(frozen=True)
class Figures:
    """One session's measurements."""

    first_lips: list[float]
    offsets: list[tuple[float, float]]
    """(time into the run, lips onset minus sound onset) per utterance."""
    fps: float
    clear_sound: list[float]
    clear_mouth: list[float]
    clear_event: list[float]


def measure(probe: Probe) -> Figures:
    """Lip onsets by the face mesh, sound onsets by level, rates from arrival times."""
    first_lips, offsets = [], []
    start = probe.says[0] if probe.says else 0.0
    for said in probe.says:
        lips = next(
            (
                at
                for at, rgb in probe.frames
                if said <= at <= said + WINDOW_S and (opening(rgb) or 0.0) > MOVING_LIPS
            ),
            None,
        )
        sound = next((at for at, rms in probe.audio if at >= said and rms > SPEECH_RMS), None)
        if lips is not None:
            first_lips.append(lips - said)
        if lips is not None and sound is not None:
            offsets.append((said - start, lips - sound))
    clear_sound, clear_mouth = [], []
    for cleared in probe.clears:
        loud = [at for at, rms in probe.audio if cleared <= at <= cleared + 1 and rms > SPEECH_RMS]
        clear_sound.append((max(loud) if loud else cleared) - cleared)
        closed = next(
            (
                at
                for at, rgb in probe.frames
                if cleared <= at <= cleared + WINDOW_S and (opening(rgb) or 1.0) < CLOSED_LIPS
            ),
            None,
        )
        if closed is not None:
            clear_mouth.append(closed - cleared)
    times = probe.video_times
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return Figures(first_lips, offsets, fps, clear_sound, clear_mouth, list(probe.cleared_events))


def start_api(port: int, capacity: int, data: Path) -> subprocess.Popen[bytes]:
    """An API on loopback (no keys, no worker: live sessions need neither)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACECAST_")}
    env.update(
        FACECAST_DATA_DIR=str(data),
        FACECAST_LIVE_CAPACITY=str(capacity),
        FACECAST_RATE_LIMIT_PER_MINUTE="0",
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "facecast.service.app:create_app"]
    api = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return api
        except httpx.TransportError:
            time.sleep(0.3)
    api.kill()
    raise SystemExit("bench/live.py: the API did not start")


class CpuSampler:
    """CPU seconds of each of the API's child processes (sessions, the spare), once a second,
    so that sessions that already ended still count."""

    def __init__(self, api: psutil.Process) -> None:
        self.api = api
        self.samples: list[tuple[float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now: dict[int, float] = {}
            for child in self.api.children(recursive=True):
                try:
                    times = child.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                now[child.pid] = times.user + times.system
            self.samples.append((time.monotonic(), now))

    def per_second(self, start: float, end: float, sessions: int) -> float:
        """CPU seconds a second the `sessions` busiest children used between `start` and `end`
        (monotonic): the sessions, not the spare process that waits for the next one."""
        self._stop.set()
        self._thread.join()
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, first), (t1, last) = inside[0], inside[-1]
        used = sorted((cpu - first[pid] for pid, cpu in last.items() if pid in first), reverse=True)
        return sum(used[:sessions]) / (t1 - t0)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(figures: list[Figures], cpu_per_session: float | None, args: argparse.Namespace) -> None:
    lips = [v for f in figures for v in f.first_lips]
    offsets = sorted(o for f in figures for o in f.offsets)
    span = max(1, len(offsets) // 4)
    early, late = offsets[:span], offsets[-span:]
    print(f"sessions {args.sessions}, {args.seconds:.0f} s each, 512 px at 25 fps")
    print(
        f"first frame with moving lips after say: p50 {pct(lips, 50) * 1000:.0f} ms, "
        f"p95 {pct(lips, 95) * 1000:.0f} ms ({len(lips)} utterances)"
    )
    print("received fps per session: " + ", ".join(f"{f.fps:.1f}" for f in figures))
    if len(offsets) >= 2:
        print(
            f"A/V offset (lips minus sound, median of a quarter of the utterances): "
            f"{statistics.median(o for _, o in early) * 1000:+.0f} ms at "
            f"{early[-1][0]:.0f} s, {statistics.median(o for _, o in late) * 1000:+.0f} ms "
            f"at {late[0][0]:.0f}-{late[-1][0]:.0f} s ({len(offsets)} utterances)"
        )
    else:
        print(f"A/V offset: {len(offsets)} utterances measured, too few")
    sound = [v for f in figures for v in f.clear_sound]
    mouth = [v for f in figures for v in f.clear_mouth]
    event = [v for f in figures for v in f.clear_event]
    print(
        f"clear: sound silent after {pct(sound, 50) * 1000:.0f} ms (max "
        f"{max(sound, default=float('nan')) * 1000:.0f}), mouth closed after "
        f"{pct(mouth, 50) * 1000:.0f} ms, speech_ended after {pct(event, 50) * 1000:.0f} ms"
    )
    if cpu_per_session is not None:
        fps = statistics.mean(f.fps for f in figures)
        at_full_rate = cpu_per_session * FULL_RATE / max(fps, 1.0)
        print(
            f"CPU per session: {cpu_per_session * 100:.0f} % of one core at {fps:.1f} fps, "
            f"{at_full_rate * 100:.0f} % at {FULL_RATE} fps: {os.cpu_count()} cores hold about "
            f"{int((os.cpu_count() or 1) / at_full_rate)} sessions"
        )
    print(f"host load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


async def run_all(base: str, args: argparse.Namespace, photo: Path) -> list[Probe]:
    return list(
        await asyncio.gather(
            *(
                run_session(base, args.key, photo, args.seconds, i * 0.5)
                for i in range(args.sessions)
            )
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--url", default=None, help="a running API (default: start one)")
    parser.add_argument("--key", default=None, help="its API key")
    parser.add_argument("--photo", type=Path, default=None)
    args = parser.parse_args()
    photo = args.photo or Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    api = None
    base = args.url
    if base is None:
        port = 18_000 + os.getpid() % 1000
        api = start_api(port, args.sessions, Path(tempfile.mkdtemp(prefix="facecast-live-")))
        base = f"http://127.0.0.1:{port}"
    try:
        sampler = CpuSampler(psutil.Process(api.pid)) if api else None
        started = time.monotonic()
        probes = asyncio.run(run_all(base, args, photo))
        # Steady speaking only: after every session (and the spare) started, before the clears.
        steady = (started + args.sessions * 0.5 + STARTUP_S, started + STARTUP_S + args.seconds)
        cpu = sampler.per_second(*steady, args.sessions) / args.sessions if sampler else None
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
    report([measure(p) for p in probes], cpu, args)


if __name__ == "__main__":
    main()

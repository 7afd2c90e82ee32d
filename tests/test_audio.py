"""Audio stage: decoding real encoder output, caps, damaged input, loudness and voice activity."""

from __future__ import annotations

import io
import itertools
import time
import wave
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np
import pytest
from scipy.signal import chirp, lfilter

from facecast.audio import (
    SAMPLE_RATE,
    AudioTrack,
    format_duration,
    frame_rms,
    load_audio,
    n_video_frames,
    resample,
    save_wav,
    to_pcm16,
    voice_activity,
)
from facecast.errors import AudioTooLongError, InvalidAudioError

SOURCE_RATE = 22_050
DURATION_TOLERANCE_S = 0.05

# extension -> (container format, codec, encoder rate or None for the source rate)
FORMATS: dict[str, tuple[str, str, int | None]] = {
    "wav": ("wav", "pcm_s16le", None),
    "mp3": ("mp3", "libmp3lame", None),
    "ogg": ("ogg", "libopus", 48_000),
    "flac": ("flac", "flac", None),
    "m4a": ("ipod", "aac", None),
}

# (F1, F2, F3) formant targets of a few vowels, Hz
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410)]


def encode_audio(
    samples: np.ndarray,
    rate: int,
    out: str | Path | Any,
    ext: str,
    options: dict[str, str] | None = None,
) -> None:
    """Encode mono float samples with a real FFmpeg encoder through PyAV."""
    fmt, codec, codec_rate = FORMATS[ext]
    with av.open(out, "w", format=fmt, options=options or {}) as container:
        stream = cast(
            av.AudioStream, container.add_stream(codec, rate=codec_rate or rate, layout="mono")
        )
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.float32)[np.newaxis, :], format="flt", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def chirp_signal(seconds: float = 2.5, rate: int = SOURCE_RATE) -> np.ndarray:
    """A 200 Hz -> 3 kHz sweep at half scale."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * chirp(t, f0=200, t1=seconds, f1=3000)).astype(np.float32)


def encode_silence_flac(out: str | Path | Any, seconds: float, rate: int = 8_000) -> None:
    """Cheap long input: FLAC compresses silence to almost nothing."""
    block_s = 10
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        pts = 0
        total = round(seconds * rate)
        while pts < total:
            n = min(block_s * rate, total - pts)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, n), np.int16), format="s16", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = pts
            pts += n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


class _WriteOnly:
    """A non-seekable sink: muxers cannot go back to write the total length."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def speech_like(seconds: float, rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """Voiced syllables: a 120 Hz glottal pulse train with intonation through gliding formant
    resonators, a syllable envelope and short fricative bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 * (1 + 0.15 * np.sin(2 * np.pi * 0.5 * t) + 0.05 * np.sin(2 * np.pi * 3.1 * t))
    pulses = np.diff(np.floor(np.cumsum(f0 / rate)), prepend=0)
    source = lfilter([1], [1, -0.97], pulses)
    bounds = [0]
    while bounds[-1] < n:
        bounds.append(bounds[-1] + int(rate * rng.uniform(0.15, 0.3)))
    targets = np.array([VOWELS[rng.integers(len(VOWELS))] for _ in bounds], float)
    formants = np.stack([np.interp(np.arange(n), bounds, targets[:, k]) for k in range(3)])
    voiced = np.zeros(n)
    hop = 160
    for a in range(0, n, hop):
        seg = source[a : a + hop]
        for k, (bandwidth, gain) in enumerate([(80, 1.0), (100, 0.5), (150, 0.25)]):
            r = np.exp(-np.pi * bandwidth / rate)
            theta = 2 * np.pi * formants[k, a] / rate
            voiced[a : a + hop] += gain * lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], seg)
    envelope = np.zeros(n)
    bursts = np.zeros(n)
    for a, b in itertools.pairwise(bounds):
        b = min(b, n)
        envelope[a:b] = np.sin(np.pi * np.arange(b - a) / (b - a)) ** 0.5
        bursts[a : a + int(0.04 * rate)] = 1
    hiss = lfilter([1, -1], [1], rng.standard_normal(n)) * bursts * 0.05
    out = voiced / np.abs(voiced).max() * envelope + hiss
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return chirp_signal()


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory, signal: np.ndarray) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    paths = {}
    for ext in FORMATS:
        paths[ext] = folder / f"chirp.{ext}"
        encode_audio(signal, SOURCE_RATE, paths[ext], ext)
    return paths


# --- decoding -------------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(FORMATS))
def test_load_each_format(encoded: dict[str, Path], signal: np.ndarray, ext: str) -> None:
    track = load_audio(encoded[ext])
    assert track.sample_rate == SAMPLE_RATE
    assert track.samples.ndim == 1
    assert track.samples.dtype == np.float32
    assert abs(track.duration - len(signal) / SOURCE_RATE) < DURATION_TOLERANCE_S
    assert np.abs(track.samples).max() <= 1.0
    rms = float(np.sqrt(np.mean(track.samples**2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.15)


@pytest.mark.parametrize("ext", ["wav", "m4a"])
def test_load_from_bytes_matches_path(encoded: dict[str, Path], ext: str) -> None:
    from_path = load_audio(encoded[ext])
    from_bytes = load_audio(encoded[ext].read_bytes())
    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)


def test_load_at_other_rate_and_downmix(tmp_path: Path, signal: np.ndarray) -> None:
    path = tmp_path / "stereo.wav"
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=SOURCE_RATE, layout="stereo")
        stereo = np.stack([signal, np.zeros_like(signal)])
        frame = av.AudioFrame.from_ndarray(stereo, format="fltp", layout="stereo")
        frame.sample_rate = SOURCE_RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    track = load_audio(path, sample_rate=24_000)
    assert track.sample_rate == 24_000
    assert track.samples.ndim == 1
    assert abs(track.duration - len(signal) / SOURCE_RATE) < DURATION_TOLERANCE_S
    # one silent channel: the mono mix has half the amplitude, not the full signal
    assert 0.1 < np.abs(track.samples).max() < 0.45


# --- length cap ------------------------------------------------------------------------


def test_declared_length_over_cap_is_rejected_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "long.flac"
    encode_silence_flac(path, 12 * 60 + 3)
    start = time.perf_counter()
    with pytest.raises(AudioTooLongError) as caught:
        load_audio(path)
    assert time.perf_counter() - start < 1.0
    assert caught.value.message == "Audio is 12 min 3 s long; the limit is 10 min."


def test_unknown_length_stops_decoding_at_cap() -> None:
    sink = _WriteOnly()
    encode_silence_flac(sink, 2 * 3600)  # no seek-back: the header holds no length
    with av.open(io.BytesIO(bytes(sink.data)), "r") as container:
        assert container.duration is None
    start = time.perf_counter()
    with pytest.raises(AudioTooLongError, match="longer than the 10 min limit"):
        load_audio(bytes(sink.data))
    assert time.perf_counter() - start < 5.0  # a full 2-hour decode would take far longer


def test_cap_checked_while_decoding(encoded: dict[str, Path]) -> None:
    # declared 2.5 s is within the up-front margin of 2.45 s; decoding catches it
    with pytest.raises(AudioTooLongError):
        load_audio(encoded["flac"], max_seconds=2.45)
    assert load_audio(encoded["flac"], max_seconds=2.6).duration == pytest.approx(2.5, abs=0.01)


def test_format_duration() -> None:
    assert format_duration(723) == "12 min 3 s"
    assert format_duration(600) == "10 min"
    assert format_duration(45.2) == "45 s"


# --- bad input -------------------------------------------------------------------------


def _png_bytes() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((32, 32, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def _video_only_mp4(path: Path) -> bytes:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


def _empty_wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("mp3_half", "damaged or truncated"),
        ("mp3_100_bytes", None),
        ("m4a_half", None),
        ("m4a_faststart_half", None),
        ("m4a_100_bytes", None),
        ("flac_half", "damaged or truncated"),
        ("random_bytes", None),
        ("png_image", "no audio track"),
        ("video_without_audio", "no audio track"),
        ("empty", "empty"),
        ("zero_length_wav", "no sound"),
    ],
)
def test_invalid_audio(
    tmp_path: Path,
    encoded: dict[str, Path],
    signal: np.ndarray,
    case: str,
    expected: str | None,
) -> None:
    def faststart_m4a() -> bytes:
        path = tmp_path / "faststart.m4a"
        encode_audio(signal, SOURCE_RATE, path, "m4a", {"movflags": "+faststart"})
        return path.read_bytes()

    mp3 = encoded["mp3"].read_bytes()
    m4a = encoded["m4a"].read_bytes()
    flac = encoded["flac"].read_bytes()
    sources: dict[str, Callable[[], bytes]] = {
        "mp3_half": lambda: mp3[: len(mp3) // 2],
        "mp3_100_bytes": lambda: mp3[:100],
        "m4a_half": lambda: m4a[: len(m4a) // 2],
        "m4a_faststart_half": lambda: (raw := faststart_m4a())[: len(raw) // 2],
        "m4a_100_bytes": lambda: m4a[:100],
        "flac_half": lambda: flac[: len(flac) // 2],
        "random_bytes": lambda: np.random.default_rng(0).bytes(20_000),
        "png_image": _png_bytes,
        "video_without_audio": lambda: _video_only_mp4(tmp_path / "silent.mp4"),
        "empty": lambda: b"",
        "zero_length_wav": _empty_wav,
    }
    data = sources[case]()
    path = tmp_path / f"{case}.bin"
    path.write_bytes(data)
    for source in (path, data):
        with pytest.raises(InvalidAudioError) as caught:
            load_audio(source)
        message = caught.value.message
        assert message.endswith(".")
        assert message.count(".") == 1, message
        assert "av." not in message
        if expected:
            assert expected in message


def _headerless_mp3(layout: str, seconds: float) -> bytes:
    """MP3 frames only: no ID3 tag and no Xing/Info frame, so the length must be estimated."""
    buf = io.BytesIO()
    options = {"write_xing": "0", "id3v2_version": "0"}
    with av.open(buf, "w", format="mp3", options=options) as container:
        stream = cast(av.AudioStream, container.add_stream("libmp3lame", rate=SOURCE_RATE))
        stream.layout = layout
        x = chirp_signal(seconds)
        channels = np.stack([x] * stream.layout.nb_channels)
        frame = av.AudioFrame.from_ndarray(channels, format="fltp", layout=layout)
        frame.sample_rate = SOURCE_RATE
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def test_estimated_length_is_not_called_truncated() -> None:
    # joined MP3s: the bitrate, and the channel layout, change after 2 s, so FFmpeg's
    # bitrate-based length estimate (4.2 s) is far off the real 3 s
    data = _headerless_mp3("mono", 2.0) + _headerless_mp3("stereo", 1.0)
    track = load_audio(data)
    assert track.duration == pytest.approx(3.0, abs=0.2)
    with pytest.raises(AudioTooLongError):  # the cap still holds, found by decoding
        load_audio(data, max_seconds=2.5)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidAudioError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")


# --- conversions -----------------------------------------------------------------------


def _peak_hz(track: AudioTrack) -> float:
    spectrum = np.abs(np.fft.rfft(track.samples))
    return float(np.fft.rfftfreq(len(track.samples), 1 / track.sample_rate)[spectrum.argmax()])


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
def test_resample_keeps_length_and_pitch(rate: int) -> None:
    t = np.arange(SOURCE_RATE * 2) / SOURCE_RATE
    track = AudioTrack((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SOURCE_RATE)
    out = resample(track, rate)
    assert out.sample_rate == rate
    assert out.samples.dtype == np.float32
    assert out.duration == pytest.approx(track.duration, abs=1 / rate)
    assert _peak_hz(out) == pytest.approx(440, abs=1)


def test_resample_same_rate_is_identity() -> None:
    track = AudioTrack(np.zeros(10, np.float32), SAMPLE_RATE)
    assert resample(track, SAMPLE_RATE) is track


def test_pcm16_and_wav_round_trip(tmp_path: Path) -> None:
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5], np.float32)
    track = AudioTrack(samples, SAMPLE_RATE)
    pcm = np.frombuffer(to_pcm16(track), dtype="<i2")
    np.testing.assert_array_equal(pcm, [0, 16384, -16384, 32767, -32767, 32767])
    path = tmp_path / "out.wav"
    save_wav(track, path)
    with wave.open(str(path), "rb") as reader:
        assert reader.getnchannels() == 1
        assert reader.getsampwidth() == 2
        assert reader.getframerate() == SAMPLE_RATE
        assert reader.readframes(reader.getnframes()) == to_pcm16(track)
    long_track = AudioTrack(chirp_signal(1.0, SAMPLE_RATE), SAMPLE_RATE)
    save_wav(long_track, path)
    back = load_audio(path)
    np.testing.assert_allclose(back.samples, long_track.samples, atol=1e-4)


# --- per-frame features ------------------------------------------------------------------


def test_frame_rms() -> None:
    fps = 25
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # 1 s tone, then 1 s silence
    tone = 0.4 * np.sin(2 * np.pi * 200 * t)
    track = AudioTrack(
        np.concatenate([tone, np.zeros(SAMPLE_RATE)]).astype(np.float32), SAMPLE_RATE
    )
    rms = frame_rms(track, fps, 60)  # 10 frames past the end of the audio
    assert rms.shape == (60,)
    assert rms.dtype == np.float32
    np.testing.assert_allclose(rms[:25], 0.4 / np.sqrt(2), rtol=0.02)
    assert np.all(rms[25:] == 0)


def test_voice_activity_speech_vs_silence() -> None:
    fps = 25
    silence = np.zeros(2 * SAMPLE_RATE, np.float32)
    track = AudioTrack(np.concatenate([silence, speech_like(3.0), silence]), SAMPLE_RATE)
    n = n_video_frames(track.duration, fps)
    probs = voice_activity(track, fps, n + 5)
    assert probs.shape == (n + 5,)
    assert probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    lead, speech, tail = probs[:45], probs[55:120], probs[135:n]
    assert np.median(speech) > 0.8
    assert lead.max() < 0.1
    assert tail.max() < 0.1
    assert np.all(probs[n:] == 0)
    # the cached detector is reset between calls: same input, same answer
    np.testing.assert_array_equal(voice_activity(track, fps, n + 5), probs)


def test_voice_activity_on_other_rate_and_empty() -> None:
    track = AudioTrack(resample(AudioTrack(speech_like(2.0), SAMPLE_RATE), 22_050).samples, 22_050)
    assert np.median(voice_activity(track, 30, 60)[10:50]) > 0.5
    empty = AudioTrack(np.zeros(0, np.float32), SAMPLE_RATE)
    assert voice_activity(empty, 25, 3).tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("duration", "fps", "frames"),
    [
        (2.0, 25, 50),
        (2.01, 25, 51),
        (0.0, 25, 1),
        (0.12, 25, 3),
        (1.0, 30, 30),
        (10.0 / 3, 30, 100),
    ],
)
def test_n_video_frames(duration: float, fps: int, frames: int) -> None:
    assert n_video_frames(duration, fps) == frames
    n = n_video_frames(duration, fps)
    if duration:
        assert 0 <= n / fps - duration < 1 / fps

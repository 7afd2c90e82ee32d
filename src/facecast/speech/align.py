"""Move phoneme timings from one rendition of a text onto another rendition of the same text.

Pico gives audio only. espeak-ng speaks the same text with phoneme events; this module maps
those events onto Pico's audio:

1. both recordings are cut into phrases at the pauses they make (energy below the clip's peak
   for at least `MIN_PAUSE_S`); when both made as many, and each pair lasts about as long
   relative to the other as the clips do, phrase i of one is paired with phrase i of the other;
2. inside each phrase pair, dynamic time warping over cepstral features (slope 1/2 to 2)
   pairs every 10 ms frame of one with a frame of the other;
3. when they paused in different places (Pico stops at a comma where espeak-ng runs on), the
   whole clip is warped in one piece if it is short enough (MAX_DTW_CELLS, about 24 s each);
   a longer one pairs phrases after ignoring the shortest pauses of the one that made more;
4. every event start is carried across through the resulting monotone time map.

Why both (tests/test_voices.py's bilabial check on four sentences, Pico against espeak-ng):
with equal pause counts, pairing phrases put 77-83 % of the lip closures in quiet audio and
the whole-clip warp 67-69 %; with unequal counts pairing by count fell to 33 % and 80 % where
the whole-clip warp reached 100 % and 87 %. On words (two sentences given extra pauses after
their commas) pairing by count missed by 221 ms on average where the pauses did not pair up,
the whole-clip warp by 14 ms.

Pure functions over `AudioTrack`s and `PhonemeEvent`s; no backend is imported here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.fft import dct
from scipy.ndimage import uniform_filter1d
from scipy.signal import resample_poly

from facecast.audio import AudioTrack
from facecast.speech import PhonemeEvent

FEATURE_RATE = 16_000
"""Both tracks are compared at this sample rate."""
HOP_S = 0.010
WINDOW_S = 0.025
N_BANDS = 24
N_CEPSTRA = 13
PAUSE_DB = -35.0
"""A frame is quiet this far below the loudest (smoothed) frame of its clip."""
MIN_PAUSE_S = 0.15
"""Quiet stretches shorter than this are stop closures, not pauses between phrases."""
MAX_DTW_CELLS = 6_000_000
"""Phrase pairs larger than this (about a minute each) are mapped linearly instead."""
MAX_SLOPE = 2.0
"""Dynamic time warping may run one rendition at most this much faster than the other."""
PAIR_TEMPO_SLACK = 1.5
"""Phrases pair up when each pair's length ratio is within this factor of the clips' ratio
(Pico pausing after phrase one and espeak-ng after phrase three gives ratios of 2 and 0.2)."""
ENERGY_WEIGHT = 2.0
"""Weight of the normalised log energy beside the cepstra (loudness carries the syllables)."""


@dataclass(frozen=True)
class Span:
    """A stretch of a recording in seconds."""

    start: float
    end: float


def features(track: AudioTrack) -> np.ndarray:
    """Cepstra plus log energy per 10 ms frame, mean- and variance-normalised per clip."""
    samples = _at_rate(track)
    hop, window = round(HOP_S * FEATURE_RATE), round(WINDOW_S * FEATURE_RATE)
    n_frames = max(1, 1 + (len(samples) - window) // hop) if len(samples) >= window else 1
    padded = np.pad(samples, (0, max(0, window + hop * (n_frames - 1) - len(samples))))
    index = np.arange(window)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = padded[index] * np.hanning(window)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.geomspace(60, FEATURE_RATE / 2, N_BANDS + 1) / (FEATURE_RATE / 2)
    bins = np.clip((edges * (power.shape[1] - 1)).astype(int), 0, power.shape[1] - 1)
    bands = np.stack(
        [power[:, lo : max(hi, lo + 1)].sum(axis=1) for lo, hi in _band_pairs(bins)], axis=1
    )
    log_bands = np.log(bands + 1e-10)
    cepstra = dct(log_bands, type=2, axis=1, norm="ortho")[:, 1:N_CEPSTRA]
    energy = np.log(power.sum(axis=1) + 1e-10)[:, None] * ENERGY_WEIGHT
    table = np.concatenate([cepstra, energy], axis=1)
    table -= table.mean(axis=0)
    table /= table.std(axis=0) + 1e-6
    return table.astype(np.float32)


def _band_pairs(values: np.ndarray) -> list[tuple[int, int]]:
    """Neighbouring pairs of band edges."""
    return [(int(a), int(b)) for a, b in itertools.pairwise(values)]


def _at_rate(track: AudioTrack) -> np.ndarray:
    samples = track.samples.astype(np.float64)
    if track.sample_rate == FEATURE_RATE:
        return samples
    divisor = np.gcd(track.sample_rate, FEATURE_RATE)
    return resample_poly(samples, FEATURE_RATE // divisor, track.sample_rate // divisor)


def phrases(track: AudioTrack) -> list[Span]:
    """The stretches of speech between pauses of at least MIN_PAUSE_S."""
    samples = _at_rate(track)
    hop = round(HOP_S * FEATURE_RATE)
    n = max(1, len(samples) // hop)
    rms = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    level = 20 * np.log10(uniform_filter1d(rms, size=3, mode="nearest"))
    loud = level > level.max() + PAUSE_DB
    spans: list[Span] = []
    start: int | None = None
    for i, is_loud in enumerate(np.append(loud, False)):
        if is_loud and start is None:
            start = i
        elif not is_loud and start is not None:
            spans.append(Span(start * HOP_S, i * HOP_S))
            start = None
    merged: list[Span] = []
    for span in spans:
        if merged and span.start - merged[-1].end < MIN_PAUSE_S:
            merged[-1] = Span(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def _drop_shortest_pauses(spans: list[Span], count: int) -> list[Span]:
    """Merge phrases across their shortest pauses until `count` phrases remain."""
    spans = list(spans)
    while len(spans) > max(count, 1):
        gaps = [b.start - a.end for a, b in itertools.pairwise(spans)]
        i = int(np.argmin(gaps))
        spans[i : i + 2] = [Span(spans[i].start, spans[i + 1].end)]
    return spans


def paired_phrases(source: AudioTrack, target: AudioTrack) -> list[tuple[Span, Span]]:
    """Phrase i of `source` with phrase i of `target`, after evening out the counts."""
    ours, theirs = phrases(source), phrases(target)
    if not ours or not theirs:
        return [(Span(0.0, source.duration), Span(0.0, target.duration))]
    count = min(len(ours), len(theirs))
    return list(
        zip(_drop_shortest_pauses(ours, count), _drop_shortest_pauses(theirs, count), strict=True)
    )


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Frame pairs (i, j) that align feature rows `a` onto `b`, start to end.

    Steps (1,1), (1,2) and (2,1) keep the slope within [1/2, 2], so each row only depends on
    the two rows before it and the recursion is vectorised per row. None when the lengths
    are too different (or too long) for that.
    """
    n, m = len(a), len(b)
    if n < 2 or m < 2 or n * m > MAX_DTW_CELLS:
        return None
    if not (m / MAX_SLOPE <= n <= m * MAX_SLOPE):
        return None
    # |a-b|^2 = |a|^2 + |b|^2 - 2ab: one n x m matrix, not n x m x features.
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    cost = np.sqrt(np.maximum(squared, 0.0, dtype=np.float64))
    total = np.full((n, m), np.inf)
    step = np.zeros((n, m), dtype=np.int8)
    total[0, 0] = cost[0, 0]
    for i in range(1, n):
        diag = np.full(m, np.inf)
        diag[1:] = total[i - 1, :-1]
        flat = np.full(m, np.inf)  # (1, 2): one row, two columns
        flat[2:] = total[i - 1, :-2] + cost[i, 1:-1]
        steep = np.full(m, np.inf)  # (2, 1): two rows, one column
        if i >= 2:
            steep[1:] = total[i - 2, :-1] + cost[i - 1, 1:]
        options = np.stack([diag, flat, steep])
        choice = options.argmin(axis=0)
        total[i] = cost[i] + options[choice, np.arange(m)]
        step[i] = choice
    if not np.isfinite(total[-1, -1]):
        return None
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while (i, j) != (0, 0):
        kind = step[i, j]
        if kind == 0:
            i, j = i - 1, j - 1
        elif kind == 1:
            path.append((i, j - 1))
            i, j = i - 1, j - 2
        else:
            path.append((i - 1, j))
            i, j = i - 2, j - 1
        path.append((i, j))
    return np.array(path[::-1], dtype=np.float64)


def time_map(source: AudioTrack, target: AudioTrack) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points (source seconds, target seconds), both increasing, from start to end."""
    src_feat, tgt_feat = features(source), features(target)
    pairs = paired_phrases(source, target)
    if not _pairs_agree(pairs, source, target):
        whole = Span(0.0, source.duration), Span(0.0, target.duration)
        path = _phrase_path(src_feat, tgt_feat, *whole)
        if path is not None:
            return _monotone(path[:, 0], path[:, 1])
    xs: list[float] = [0.0]
    ys: list[float] = [0.0]
    for ours, theirs in pairs:
        path = _phrase_path(src_feat, tgt_feat, ours, theirs)
        if path is None:
            xs += [ours.start, ours.end]
            ys += [theirs.start, theirs.end]
            continue
        xs += list(path[:, 0])
        ys += list(path[:, 1])
    xs.append(source.duration)
    ys.append(target.duration)
    return _monotone(np.array(xs), np.array(ys))


def _pairs_agree(pairs: list[tuple[Span, Span]], source: AudioTrack, target: AudioTrack) -> bool:
    """True when both made as many pauses and each phrase pair has about the clips' tempo
    ratio (within PAIR_TEMPO_SLACK): then the pauses pair up."""
    if len(phrases(source)) != len(phrases(target)):
        return False
    overall = target.duration / max(source.duration, 1e-9)
    for ours, theirs in pairs:
        ratio = (theirs.end - theirs.start) / max(ours.end - ours.start, 1e-9)
        if not overall / PAIR_TEMPO_SLACK <= ratio <= overall * PAIR_TEMPO_SLACK:
            return False
    return True


def _phrase_path(
    src_feat: np.ndarray, tgt_feat: np.ndarray, ours: Span, theirs: Span
) -> np.ndarray | None:
    """DTW anchors (seconds) inside one phrase pair, or None when DTW does not apply."""
    a0, a1 = round(ours.start / HOP_S), round(ours.end / HOP_S)
    b0, b1 = round(theirs.start / HOP_S), round(theirs.end / HOP_S)
    path = dtw_path(src_feat[a0:a1], tgt_feat[b0:b1])
    if path is None:
        return None
    # Frame i covers [i, i+1) hops: its middle is the time both renditions agree on.
    seconds = (path + 0.5) * HOP_S
    seconds[:, 0] += ours.start
    seconds[:, 1] += theirs.start
    edges = np.array([[ours.start, theirs.start], [ours.end, theirs.end]])
    return np.concatenate([edges[:1], seconds, edges[1:]])


def _monotone(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strictly increasing source times, each with the mean target time given for it."""
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], np.maximum.accumulate(ys[order])
    unique, inverse = np.unique(np.round(xs, 6), return_inverse=True)
    mean_y = np.bincount(inverse, weights=ys) / np.bincount(inverse)
    return unique, np.maximum.accumulate(mean_y)


def map_events(
    events: Sequence[PhonemeEvent], xs: np.ndarray, ys: np.ndarray
) -> list[tuple[float, str]]:
    """(start in target seconds, phoneme) for each event timed against the source, through
    the anchors (`xs` source seconds -> `ys` target seconds) `time_map` gives."""
    starts = np.interp([event.start for event in events], xs, ys)
    return [(float(t), event.phoneme) for t, event in zip(starts, events, strict=True)]

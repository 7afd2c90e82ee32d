"""Face landmarks: the face mesh, which way is up, which face, and the portrait crop.

Photos are decoded by facecast.image.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from facecast.errors import FaceChoiceError, NoFaceError
from facecast.image import Photo

MIN_FACE_SIDE = 24
"""A face smaller than this many pixels across cannot be animated."""
DETECT_CONFIDENCE = 0.5
MAX_FACES = 8
QUARTER_TURN = 90
CROP_FACE_SCALE = 2.4
"""Crop side as a multiple of the face's height (forehead to chin): head and shoulders."""
CROP_FACE_CENTER = 0.42
"""Where the face centre sits in the crop, as a fraction of the crop height from the top."""
SEARCH_MARGIN = 0.6
"""Around a face found by the full-range detector, this much of its size is added per side."""

# Landmark indices of mediapipe's 478-point face mesh.
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
# Eyes as they appear in the image: "a" is the one on the image's left.
EYE_A_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_A_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_B_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_B_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
BROW_A = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
BROW_B = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
MOUTH_CORNERS = (61, 291)
"""Outer corners of the mouth, image left then right."""
INNER_CORNERS = (78, 308)
IRIS_A = (468, 469, 470, 471, 472)
"""Iris of eye "a" (centre first), from the refined mesh."""
IRIS_B = (473, 474, 475, 476, 477)
CHIN_MIDLINE = (17, 18, 200, 199, 175, 152)
"""From the lower lip's outer edge down to the chin's lowest point."""
JAW_PAIRS = ((148, 377), (176, 400), (149, 378), (150, 379), (136, 365), (172, 397), (58, 288))
"""The jaw line from the chin up towards the ears, one (image-left, image-right) pair a step."""
EAR_LEVEL = (234, 454)
"""The face outline's widest points, level with the jaw joints in front of the ears."""
NOSE_AND_CHEEKS = (1, 2, 98, 327, 4, 5, 195, 197, 6, 168, 205, 425, 50, 280, 187, 411, 36, 266)
"""Nose and upper cheeks: they stay put while the mouth moves."""
UPPER_FOREHEAD = (10, 109, 67, 103, 338, 297, 332, 151, 108, 337, 69, 299)
NASOLABIAL = (92, 322, 165, 391, 206, 426, 216, 436, 186, 410)
"""Along the folds from the nose's wings down past the mouth corners."""
LOWER_CHEEKS = (212, 432, 214, 434, 202, 422, 210, 430, 169, 394, 135, 364, 138, 367)
"""Cheek and jaw skin lateral to and below the mouth corners."""
MALAR = (123, 352, 147, 376, 117, 346, 118, 347, 101, 330, 36, 266)
"""The cheek bones' soft tissue: lifts in a smile."""
CHEEK_SAMPLES = (205, 425, 50, 280, 101, 330)
"""Plain cheek skin, for sampling the skin's colour."""
LIP_SAMPLES = (17, 84, 314, 0, 37, 267)
"""Lip tissue, for sampling the lips' colour."""
NOSE_TIP = 1
NOSE_BASE = 2
CHIN = 152
FOREHEAD = 10
BROW_MID = (105, 334)


@dataclass(frozen=True)
class FaceLandmarks:
    """478 face-mesh points in pixels of the image they were found in (z on the x scale)."""

    points: np.ndarray  # (478, 3) float32

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    @property
    def face_height(self) -> float:
        """Brow-to-chin distance: the unit that motion amplitudes are measured in."""
        brow = self.xy[list(BROW_MID)].mean(axis=0)
        return float(np.linalg.norm(self.xy[CHIN] - brow))

    @property
    def mouth_opening(self) -> float:
        """Gap between the middle inner-lip points over the mouth's width (corner to corner)."""
        upper = self.xy[list(UPPER_INNER_LIP[3:8])]
        lower = self.xy[list(LOWER_INNER_LIP[3:8])]
        width = float(np.linalg.norm(self.xy[MOUTH_CORNERS[0]] - self.xy[MOUTH_CORNERS[1]]))
        return float((lower[:, 1] - upper[:, 1]).mean() / max(width, 1e-6))

    @property
    def oval_box(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 of the face outline."""
        oval = self.xy[list(FACE_OVAL)]
        x0, y0 = oval.min(axis=0)
        x1, y1 = oval.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    def transformed(self, scale: float, dx: float, dy: float) -> FaceLandmarks:
        """The same points after `p * scale + (dx, dy)` (z scales too)."""
        pts = self.points * np.float32(scale)
        pts[:, 0] += dx
        pts[:, 1] += dy
        return FaceLandmarks(pts.astype(np.float32))


@dataclass(frozen=True)
class Portrait:
    """The photo as the renderer sees it: an RGB image and the face landmarks on it."""

    rgb: np.ndarray  # (H, W, 3) uint8
    landmarks: FaceLandmarks


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what mediapipe's C++ side prints to fd 2 while its graphs start up.

    TFLite and glog announce themselves there ("Created TensorFlow Lite XNNPACK delegate"),
    which would bury a CLI's one-line error; Python's own stderr is left alone.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceMesh:
    """mediapipe's face mesh (models inside the mediapipe wheel), one instance per process."""

    def __init__(self) -> None:
        with _quiet_native_stderr():
            import mediapipe as mp  # heavy: imported only when a mesh is first needed

            self._build(mp)
        self._lock = threading.Lock()

    def _build(self, mp: Any) -> None:
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=MAX_FACES,
            refine_landmarks=True,
            min_detection_confidence=DETECT_CONFIDENCE,
        )
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=DETECT_CONFIDENCE
        )

    def _run(self, name: str, graph: Any, rgb: np.ndarray) -> Any:
        """Run one graph, kept off stderr: its first run announces the model it loads, and
        later ones warn about each new image shape ("NORM_RECT without IMAGE_DIMENSIONS")."""
        with self._lock, _quiet_native_stderr():
            return graph.process(np.ascontiguousarray(rgb))

    def all_faces(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        """Every face the mesh finds in `rgb`, in pixel coordinates."""
        h, w = rgb.shape[:2]
        result = self._run("mesh", self._mesh, rgb)
        faces = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], dtype=np.float32)
            faces.append(FaceLandmarks(pts))
        return faces

    def face_boxes(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Boxes (x0, y0, x1, y1) from the full-range detector, which also finds small faces."""
        h, w = rgb.shape[:2]
        result = self._run("detector", self._detector, rgb)
        boxes = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            x0, y0 = int(rel.xmin * w), int(rel.ymin * h)
            boxes.append((x0, y0, x0 + int(rel.width * w), y0 + int(rel.height * h)))
        return boxes


@lru_cache(maxsize=1)
def face_mesh() -> FaceMesh:
    """The per-process face mesh, built on first use."""
    return FaceMesh()


def _area(face: FaceLandmarks) -> float:
    x0, y0, x1, y1 = face.oval_box
    return (x1 - x0) * (y1 - y0)


@dataclass(frozen=True)
class FaceSearch:
    """The faces in a photo, largest first, on the photo turned so that they stand upright."""

    rgb: np.ndarray  # (H, W, 3) uint8: the photo after `rotation`
    rotation: int
    """Degrees the photo was turned clockwise (0, 90, 180 or 270)."""
    faces: tuple[FaceLandmarks, ...]


def _faces_in(mesh: FaceMesh, rgb: np.ndarray) -> tuple[FaceLandmarks, ...]:
    """Every face in `rgb` as it stands, largest first."""
    faces = tuple(mesh.all_faces(rgb))
    faces += tuple(_faces_via_detector(mesh, rgb, faces))
    return tuple(sorted(faces, key=_area, reverse=True))


def quarter_turns_to_upright(face: FaceLandmarks) -> int:
    """Clockwise quarter turns of the photo that put this face's chin below its forehead."""
    dx, dy = face.xy[CHIN] - face.xy[FOREHEAD]
    angle = math.degrees(math.atan2(float(dy), float(dx)))  # 90: chin straight below
    return round((90.0 - angle) / QUARTER_TURN) % 4


def _turned(rgb: np.ndarray, quarters: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, -quarters)) if quarters else rgb


def find_faces(rgb: np.ndarray) -> FaceSearch:
    """Every face, largest first, on the photo turned upright.

    The photo is searched as it stands, then turned by a quarter, three quarters and a half
    until a face is found (a phone photo without EXIF orientation may lie on its side). A face
    the mesh finds at an angle says which way is up, and the photo is turned to match.
    """
    mesh = face_mesh()
    for quarters in (0, 1, 3, 2):
        turned = _turned(rgb, quarters)
        faces = _faces_in(mesh, turned)
        if quarters:
            # Turned photos of things that are not faces (a coffee cup) fool the mesh's own
            # detector now and then: there the full-range detector must agree.
            boxes = mesh.face_boxes(turned)
            faces = tuple(f for f in faces if any(_inside(f, box) for box in boxes))
        if not faces:
            continue
        extra = quarter_turns_to_upright(faces[0])
        if extra:
            upright = _turned(turned, extra)
            again = _faces_in(mesh, upright)
            if again:
                return FaceSearch(upright, (quarters + extra) % 4 * QUARTER_TURN, again)
        return FaceSearch(turned, quarters * QUARTER_TURN, faces)
    return FaceSearch(rgb, 0, ())


def choose_face(
    faces: tuple[FaceLandmarks, ...],
    *,
    index: int | None = None,
    at: tuple[float, float] | None = None,
) -> FaceLandmarks:
    """The face numbered `index` (0: largest), the face at the point `at`, or the largest."""
    if not faces:
        raise NoFaceError("No face was found in the photo; use a clear, front-facing portrait.")
    if index is not None:
        if not 0 <= index < len(faces):
            raise FaceChoiceError(
                f"There is no face {index}: the photo shows {len(faces)} face(s), numbered "
                "from 0, largest first."
            )
        chosen = faces[index]
    elif at is not None:
        chosen = _face_at(faces, at)
    else:
        chosen = faces[0]
    x0, y0, x1, y1 = chosen.oval_box
    if min(x1 - x0, y1 - y0) < MIN_FACE_SIDE:
        raise NoFaceError("The face in the photo is too small; use a closer portrait.")
    return chosen


def _face_at(faces: tuple[FaceLandmarks, ...], at: tuple[float, float]) -> FaceLandmarks:
    """The face whose outline box holds the point, or the nearest within one face size."""
    x, y = at

    def distance(face: FaceLandmarks) -> float:
        x0, y0, x1, y1 = face.oval_box
        return math.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1))

    nearest = min(faces, key=lambda face: (distance(face), _area(face)))
    x0, y0, x1, y1 = nearest.oval_box
    if distance(nearest) > max(x1 - x0, y1 - y0):
        raise FaceChoiceError(f"There is no face at ({x:.0f}, {y:.0f}) in the photo.")
    return nearest


def detect_landmarks(rgb: np.ndarray) -> FaceLandmarks:
    """Landmarks of the largest face in `rgb` as it stands; small faces are found by cropping
    around a detection."""
    return choose_face(_faces_in(face_mesh(), rgb))


def _inside(face: FaceLandmarks, box: tuple[float, float, float, float]) -> bool:
    """True when the centre of the face's outline lies in `box`."""
    x0, y0, x1, y1 = face.oval_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _faces_via_detector(
    mesh: FaceMesh, rgb: np.ndarray, known: tuple[FaceLandmarks, ...] = ()
) -> list[FaceLandmarks]:
    """Faces the full-range detector sees and the mesh missed (small ones, in wide photos),
    meshed on a crop around each detection."""
    h, w = rgb.shape[:2]
    found: list[FaceLandmarks] = []
    for box in mesh.face_boxes(rgb):
        x0, y0, x1, y1 = box
        if any(_inside(face, box) for face in (*known, *found)):
            continue
        m = SEARCH_MARGIN * max(x1 - x0, y1 - y0)
        cx0, cy0 = max(int(x0 - m), 0), max(int(y0 - m), 0)
        cx1, cy1 = min(int(x1 + m), w), min(int(y1 + m), h)
        if cx1 - cx0 < MIN_FACE_SIDE or cy1 - cy0 < MIN_FACE_SIDE:
            continue
        crop = rgb[cy0:cy1, cx0:cx1]
        scale = 512.0 / max(crop.shape[:2])
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        meshed = [f.transformed(1.0 / scale, cx0, cy0) for f in mesh.all_faces(crop)]
        # A crop may show a neighbour's face too: keep the one this detection is about.
        found += [f for f in meshed if _inside(f, box)][:1]
    return found


ASPECTS = {"square": 1.0, "portrait": 9 / 16, "landscape": 16 / 9}
"""Width over height of each face-framed output."""
EXTEND_BLUR = 0.04
"""Where a framing reaches past the photo, the photo is extended from its edges and blurred with
this sigma (of the output's longer side), so the extension reads as soft background."""


@dataclass(frozen=True)
class FaceBox:
    """A face's outline box in pixels of the upright photo (x0, y0 top left)."""

    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class PhotoFaces:
    """The faces a photo shows, largest first, for a caller that lets the user choose."""

    width: int
    height: int
    """Size of the upright photo (EXIF orientation and `rotation` applied)."""
    rotation: int
    """Degrees the photo was turned clockwise to stand its faces upright."""
    boxes: tuple[FaceBox, ...]

    def as_json(self) -> dict[str, object]:
        """The shape POST /faces answers with (`facecast faces --json` prints the same)."""
        return {
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "faces": [
                {"index": i, "x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1}
                for i, b in enumerate(self.boxes)
            ],
        }


def search_photo(photo: Photo) -> tuple[FaceSearch, float, tuple[int, int]]:
    """The face search over a decoded photo, working pixels per photo pixel, and the upright
    photo's size."""
    search = find_faces(photo.rgb)
    width, height = photo.width, photo.height
    if search.rotation % 180:
        width, height = height, width
    return search, search.rgb.shape[1] / width, (width, height)


def photo_faces(photo: Photo) -> PhotoFaces:
    """The faces in a decoded photo with their boxes in the photo's own pixels, largest first
    (the API's face search runs this in a helper process, without the pipeline)."""
    search, scale, (width, height) = search_photo(photo)
    boxes = []
    for found in search.faces:
        x0, y0, x1, y1 = (round(v / scale) for v in found.oval_box)
        boxes.append(FaceBox(max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)))
    return PhotoFaces(width, height, search.rotation, tuple(boxes))


def frame_portrait(rgb: np.ndarray, face: FaceLandmarks, size: int, framing: str) -> Portrait:
    """Crop and scale the photo for rendering.

    "square", "portrait" (9:16), "landscape" (16:9): a head-and-shoulders frame on the face,
    `size` its shorter side; a square is shrunk to fit a photo that is too small, the others
    extend the photo past its edges (mirrored and blurred, never stretched). "full": the whole
    photo, longer side `size`. Sides are even (H.264 needs that).
    """
    if framing == "full":
        return _whole(rgb, face, size)
    aspect = ASPECTS[framing]
    out_w, out_h = (size, _even(size / aspect)) if aspect < 1 else (_even(size * aspect), size)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = face.oval_box
    # The square's side is the unit: a portrait frame adds body below, a landscape one room
    # beside the head; the face keeps its place and size in every framing.
    side = CROP_FACE_SCALE * (y1 - y0)
    if framing == "square":
        side = min(side, w, h)
    box_w, box_h = (side, side / aspect) if aspect < 1 else (side * aspect, side)
    cx = (x0 + x1) / 2.0
    cy = (y0 + y1) / 2.0
    left = cx - box_w / 2.0
    top = cy - CROP_FACE_CENTER * side
    # Inside the photo where it can be; past its edge only where the photo is too small.
    left = min(max(left, 0.0), w - box_w) if box_w <= w else (w - box_w) / 2.0
    top = min(max(top, 0.0), h - box_h) if box_h <= h else min(max(top, h - box_h), 0.0)
    left_px, top_px = round(left), round(top)
    box_w_px, box_h_px = max(int(box_w), 2), max(int(box_h), 2)
    pad = (
        max(-top_px, 0),
        max(top_px + box_h_px - h, 0),
        max(-left_px, 0),
        max(left_px + box_w_px - w, 0),
    )
    # Above and below, the edge row goes on (a body continues down, a wall up); beside, the
    # background is mirrored (a mirrored face never shows: it would sit a head away).
    source = cv2.copyMakeBorder(rgb, pad[0], pad[1], 0, 0, cv2.BORDER_REPLICATE)
    source = cv2.copyMakeBorder(source, 0, 0, pad[2], pad[3], cv2.BORDER_REFLECT_101)
    crop = source[
        top_px + pad[0] : top_px + pad[0] + box_h_px,
        left_px + pad[2] : left_px + pad[2] + box_w_px,
    ]
    scale = out_w / box_w_px
    out = cv2.resize(crop, (out_w, out_h), interpolation=_interp(scale))
    if any(pad):
        photo = (-left_px * scale, -top_px * scale, (w - left_px) * scale, (h - top_px) * scale)
        out = _soften_outside(out, photo)
    return Portrait(out, face.transformed(scale, -left_px * scale, -top_px * scale))


def _whole(rgb: np.ndarray, face: FaceLandmarks, size: int) -> Portrait:
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    # Even sides (H.264), never larger than asked.
    out_w = max(2, int(w * scale) // 2 * 2)
    out_h = max(2, int(h * scale) // 2 * 2)
    out = cv2.resize(rgb, (out_w, out_h), interpolation=_interp(scale))
    factors = np.array([out_w / w, out_h / h, out_w / w], dtype=np.float32)
    return Portrait(out, FaceLandmarks((face.points * factors).astype(np.float32)))


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _soften_outside(out: np.ndarray, photo: tuple[float, float, float, float]) -> np.ndarray:
    """`out` with what lies outside `photo` (the photo's box in `out`) blurred, fading in."""
    h, w = out.shape[:2]
    mask = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = (round(v) for v in photo)
    mask[max(y0, 0) : max(min(y1, h), 0), max(x0, 0) : max(min(x1, w), 0)] = 1.0
    sigma = EXTEND_BLUR * max(h, w)
    blurred = cv2.GaussianBlur(out, (0, 0), sigma).astype(np.float32)
    fade = np.maximum(cv2.GaussianBlur(mask, (0, 0), sigma / 4), mask)[..., None]
    mixed = out.astype(np.float32) * fade + blurred * (1.0 - fade)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _interp(scale: float) -> int:
    return cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC

"""The default renderer: a 2-D warp of the photo plus a drawn mouth interior, on the CPU.

Per photo, `prepare` builds one displacement field per motion channel. Per frame, the
expression fields are summed over the face region and the photo is remapped there (lips,
eyes, brows), the mouth interior is painted where the lips part, and a second, low-
resolution head field turns and tilts the head while the body and background stay still.

Only what moves is resampled: the expression warp covers the face region (whose fields reach
its edges), the head warp only the bands of rows and columns where a turn of up to
HEAD_CAP_DEGREES moves a pixel by STILL_PIXELS or more; every other pixel of a frame is the
photo's own, bit for bit. `WarpAnimator.clock` takes a `StepClock` to time each step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facecast.audio import AudioTrack
from facecast.errors import NoFaceError
from facecast.face import (
    CHEEK_SAMPLES,
    EYE_A_LOWER,
    EYE_A_UPPER,
    EYE_B_LOWER,
    EYE_B_UPPER,
    LIP_SAMPLES,
    LOWER_INNER_LIP,
    LOWER_OUTER_LIP,
    UPPER_INNER_LIP,
    UPPER_OUTER_LIP,
    FaceLandmarks,
    Portrait,
    detect_landmarks,
)
from facecast.motion import MotionFrame
from facecast.registry import Capabilities, Description
from facecast.render import closing as closing_fields
from facecast.render import fields, head_fields, lip_fields
from facecast.render.eyes import LidPainter, LidWarp, lid_geometry
from facecast.render.lips import corners_filled, draw_contact_line, tongue_off_the_lip
from facecast.render.matte import person_matte
from facecast.render.mouth import LipOutline, draw_interior, mouth_state, teeth_parting
from facecast.render.mouth_palette import (
    MouthPalette,
    palette_from,
    photo_finish,
    with_own_teeth,
)

EXPRESSION_CHANNELS = (
    "jaw",
    "width",
    "brows",
    "blink_a",
    "blink_b",
    "smile",
    "gaze_x",
    "gaze_y",
    "pressed",
    "relax",
)
"""The warp's channels: motion.CHANNELS that move the face region, and "relax", the smile
channel's negative side (a smile relaxing has its own field, not the smile's mirrored)."""
HEAD_CHANNELS = ("yaw", "pitch", "roll")
LOCAL_SHARE = 0.25
"""A channel whose field covers less than this share of the face region is added as a patch."""
SUPPORT_EPS = 1e-3
"""Offsets below this many pixels count as still."""
JAW_OPENING = 0.4
"""Inner-lip gap over mouth width that jaw = 1 opens to, as the face mesh reads the rendered
face. How far the jaw's field parts the lips in the picture differs from face to face (a
face turned away shows less of its opening, a beard or dark glasses change how the lips
read), so each rigged face is measured once..."""
JAW_LEVELS = (0.25, 0.5, 0.75, 1.0)
"""...rendered at these amounts of its jaw field, and the jaw scaled by the gain that brings
the readings' mean opening per unit of jaw to JAW_OPENING..."""
JAW_GAIN_RANGE = (0.8, 1.2)
"""...within these bounds: the mesh misreads the widest openings of some faces as narrower
than they are, and the field stretched much past its design looks torn."""
KEPT_OPENING_MIN = 0.5
"""A kept smile opens by at least this share of JAW_OPENING beyond its rest pose."""
JAW_GAIN_FROM = 0.2
"""The gain grows in over jaw values up to this: lips that barely part (the tail of a word
before a pause) stay as they were."""
JAW_RESPONSE_MIN = 0.15
"""A face whose widest measured opening stays under this keeps the plain jaw (a failed
measurement, not a mouth that cannot open)."""
STILL_PIXELS = 1 / 64
"""A sample moved by less than this lands on the same 1/32-pixel grid point of cv2.remap's
bilinear table as an unmoved one: it reads back the photo's own pixel exactly."""
HEAD_CAP_DEGREES = 6.0
"""The head bands hold every pixel that a turn of up to this much (per axis) moves; larger
turns (the motion's idle sway and nods stay under about 3 degrees) resample the whole
support."""
HEAD_BAND_ROWS = 16
"""Rows per head band: each band is resampled over its own moving columns."""
RENDER_STEPS = ("fields", "warp", "mouth", "eyes", "head", "frame")
"""What `StepClock` times: the expression offsets (GEMV, gaze and lid patches), the face
region's resampling, the mouth interior, the lids, the head's field and resampling, and
the frame's copy out of the canvas."""


@dataclass
class StepClock:
    """CPU seconds (whole process) spent in each render step, summed over frames."""

    seconds: dict[str, float]
    _mark: float = 0.0

    @classmethod
    def new(cls) -> StepClock:
        """A clock at zero for every step of RENDER_STEPS."""
        return cls(dict.fromkeys(RENDER_STEPS, 0.0))

    def start(self) -> None:
        self._mark = time.process_time()

    def lap(self, step: str) -> None:
        """Charge the time since the last mark to `step`."""
        now = time.process_time()
        self.seconds[step] += now - self._mark
        self._mark = now


class _NoClock:
    """Timing off: the render's laps cost a method call and nothing more."""

    def start(self) -> None:
        pass

    def lap(self, step: str) -> None:
        pass


NO_CLOCK = _NoClock()
OWN_LOWER_TEETH = 0.85
"""A kept smile whose upper teeth reach this share of the way to the lower lip shows no lower
teeth of its own: drawn ones rise behind the lower lip as the jaw opens."""
NEUTRAL_SMILE = -0.6
"""With expression = neutral the smile channel stays at or below this: a smiling photo's
corners relax at rest."""


class WarpAnimator:
    """A photo rigged for the warp renderer."""

    def __init__(self, portrait: Portrait, expression: str = "keep") -> None:
        rgb = np.ascontiguousarray(portrait.rgb)
        lm = portrait.landmarks
        h, w = rgb.shape[:2]
        self._shape = (w, h)
        self._face_height = lm.face_height
        region = fields.expression_region(lm, w, h)
        self._region = region
        anchors = fields.anchors_for(lm, w, h)
        # An open mouth is closed first; every motion starts from that rest pose. Its dark
        # corners are filled and a tongue out over the lower lip is taken off it before (the
        # closing hides what lies between the lips). A smile over teeth is an expression:
        # with expression = keep it stays as the rest pose, the upper teeth with the upper
        # jaw and the lower lip and teeth with the lower.
        photo_mouth = fields.mouth_geometry(lm)
        self._kept = False
        self._lower_teeth = True
        press: closing_fields.Closing | None = None
        if photo_mouth.rest_gap.any():
            lips = _lip_outline(lm, photo_mouth)
            state = mouth_state(rgb, lips, lip_fields.smile_degree(lm), _skin(rgb, lm))
            self._kept = expression == "keep" and state == "smile"
            if self._kept:
                # On a bilabial the kept smile's lips close as an open photo's are closed
                # at rest: the "pressed" channel, from the smile to shut and back.
                press = closing_fields.close_field(lm, photo_mouth, region, anchors)
                closed_seam = photo_mouth.upper_inner
                parting = teeth_parting(rgb, lips)
                photo_mouth = fields.parted_geometry(lm, parting)
                # The photo's lower teeth, if it shows them, go down with the jaw; drawn
                # ones only where it shows none.
                self._lower_teeth = float(np.median(parting[2:-2])) >= OWN_LOWER_TEETH
            else:
                rgb, lower_inner = tongue_off_the_lip(corners_filled(rgb, lips), lips)
                points = lm.points.copy()
                points[list(LOWER_INNER_LIP), :2] = lower_inner
                lm = FaceLandmarks(points)
                photo_mouth = fields.mouth_geometry(lm)
        self._smile_cap = NEUTRAL_SMILE if expression == "neutral" else None
        closing = closing_fields.close_field(lm, photo_mouth, region, anchors)
        self._rgb = rgb
        self._closed_by_warp = closing is not None
        rest = lm if closing is None else closing.landmarks
        mouth = photo_mouth if self._kept else fields.mouth_geometry(rest)
        seam = fields.seam_weight(mouth, region)
        jaw, jaw_up, jaw_lo = fields.jaw_field(rest, mouth, region, anchors, seam)
        if closing is not None:
            jaw = closing_fields.compose_jaw(jaw, closing, rest, mouth, region)
        width, width_travel = lip_fields.width_field(rest, mouth, region, anchors)
        brows = head_fields.brow_field(lm, region, anchors)
        smile, smile_travel = lip_fields.smile_field(
            rest, mouth, region, anchors, degree=lip_fields.smile_degree(portrait.landmarks)
        )
        lids = {
            "blink_a": lid_geometry(lm, EYE_A_UPPER, EYE_A_LOWER, rgb),
            "blink_b": lid_geometry(lm, EYE_B_UPPER, EYE_B_LOWER, rgb),
        }
        still = np.zeros((region.h, region.w, 2), np.float32)
        # Expression fields as backward sample offsets, one row per channel, for one GEMV a frame.
        offsets = [
            jaw,
            fields.backward(width),
            fields.backward(brows),
            still,  # blinks: per frame (LidWarp), not a fixed field
            still,
            fields.backward(fields.unfold(smile)),
            fields.backward(head_fields.gaze_field(lm, region, anchors, 0)),
            fields.backward(head_fields.gaze_field(lm, region, anchors, 1)),
            still if press is None else press.offsets,
            # Relaxing a smile is inverted on its own: the smile's backward offsets mirrored
            # fold the skin beside a turned face's mouth corner.
            fields.backward(fields.unfold(-smile)),
        ]
        # Channels that move a small part of the face (eyes: blinks, gaze) are kept as patches
        # and added only where they act; the rest go through one GEMV.
        self._dense: list[int] = []
        self._patches: dict[int, tuple[tuple[slice, slice], np.ndarray]] = {}
        for i, field in enumerate(offsets):
            box = _support(field)
            if box is None:
                continue
            area = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
            if area < LOCAL_SHARE * region.w * region.h:
                self._patches[i] = (box, np.ascontiguousarray(field[box], dtype=np.float32))
            else:
                self._dense.append(i)
        self._blinks = {
            EXPRESSION_CHANNELS.index(c): LidWarp(g, region.x0, region.y0, region.w, region.h)
            for c, g in lids.items()
            if g is not None
        }
        ys, xs = np.mgrid[region.y0 : region.y0 + region.h, region.x0 : region.x0 + region.w]
        base = np.stack([xs, ys], axis=-1).astype(np.float32)
        if closing is not None:
            base += closing.offsets
        self._expr_base = base.reshape(-1)
        # A smile and its relaxing never act at once: one matrix leaves out the one, the
        # other the other, so the GEMV is no longer for having both.
        smile_i, relax_i = EXPRESSION_CHANNELS.index("smile"), EXPRESSION_CHANNELS.index("relax")
        self._dense_by_sign = {
            relaxing: [i for i in self._dense if i != (smile_i if relaxing else relax_i)]
            for relaxing in (False, True)
        }
        self._expr_by_sign = {
            relaxing: np.stack([offsets[i].reshape(-1) for i in dense]).astype(
                np.float32, copy=False
            )
            for relaxing, dense in self._dense_by_sign.items()
        }
        self._relax = relax_i
        self._mouth = mouth
        self._lip_travel = {
            "jaw": (jaw_up, jaw_lo),
            "width": (width_travel, width_travel),
            "smile": (smile_travel, smile_travel),
            "relax": (-smile_travel, -smile_travel),
        }
        if press is not None:
            # Pressed, both lips of a kept smile meet where a closed photo's would.
            to_seam = closed_seam - mouth.upper_inner
            self._lip_travel["pressed"] = (to_seam, to_seam)
        finish = photo_finish(
            rgb, np.array([mouth.centre_x, mouth.upper_inner[5, 1]]), mouth.half_width
        )
        palette = palette_from(rgb, lm.xy[list(LIP_SAMPLES)], lm.xy[list(CHEEK_SAMPLES)], finish)
        skin = _skin(rgb, lm)
        self._palette: MouthPalette = with_own_teeth(
            palette,
            rgb,
            lm.xy[list(UPPER_INNER_LIP)].astype(np.float64),
            lm.xy[list(LOWER_INNER_LIP)].astype(np.float64),
            lm.face_height,
            skin,
        )
        head, support = head_fields.head_fields(lm, w, h, person_matte(rgb))
        self._head = np.stack([-head[c].reshape(-1) for c in HEAD_CHANNELS]).astype(np.float32)
        self._head_shape = head["yaw"].shape
        self._head_region = support
        gy, gx = np.mgrid[support.y0 : support.y0 + support.h, support.x0 : support.x0 + support.w]
        self._head_grid = np.stack([gx, gy], axis=-1).astype(np.float32)
        self._head_bands = _moving_bands(self._head, self._head_shape, support, self._shape)
        self.clock: StepClock | _NoClock = NO_CLOCK
        """Set a StepClock to time each step of `render` (bench/render.py does)."""
        self._canvas = rgb.copy()
        self._lids = {c: LidPainter(rgb, g) for c, g in lids.items() if g is not None}
        self._jaw_gain = 1.0
        self._jaw_gain = measured_jaw_gain(self.render, self._region, self._kept)
        self._canvas = rgb.copy()

    @property
    def size(self) -> tuple[int, int]:
        return self._shape

    def moving_mask(self) -> np.ndarray:
        """True where a frame may differ from the photo (the face region, where the mouth
        and lids are painted too, and the head bands); elsewhere a frame is the photo."""
        w, h = self._shape
        mask = np.zeros((h, w), bool)
        rows, cols = self._region.slices
        mask[rows, cols] = True
        support = self._head_region
        for y0, y1, x0, x1 in self._head_bands:
            mask[support.y0 + y0 : support.y0 + y1, support.x0 + x0 : support.x0 + x1] = True
        return mask

    def render(self, values: dict[str, float]) -> np.ndarray:
        """One frame for the given channel values (see motion.CHANNELS): a new array."""
        clock = self.clock
        clock.start()
        jaw = values.get("jaw", 0.0)
        if self._jaw_gain != 1.0 and jaw > 0.0:
            gain = 1.0 + (self._jaw_gain - 1.0) * min(jaw / JAW_GAIN_FROM, 1.0)
            values = {**values, "jaw": jaw * gain}
        if self._smile_cap is not None:
            values = {**values, "smile": min(values.get("smile", 0.0), self._smile_cap)}
        if values.get("smile", 0.0) < 0.0:
            values = {**values, "relax": -values["smile"], "smile": 0.0}
        region = self._region
        weights = np.array([values.get(c, 0.0) for c in EXPRESSION_CHANNELS], np.float32)
        relaxing = bool(weights[self._relax] > 0.0)
        offsets = weights[self._dense_by_sign[relaxing]] @ self._expr_by_sign[relaxing]
        offsets += self._expr_base
        maps = offsets.reshape(region.h, region.w, 2)
        for i, (box, patch) in self._patches.items():
            if weights[i] != 0.0:
                maps[box] += weights[i] * patch
        for i, lid in self._blinks.items():
            if weights[i] > 0.0:
                rows, cols = lid.box
                maps[rows, cols, 1] += lid.offsets(float(weights[i]))
        clock.lap("fields")
        canvas = self._canvas
        rows, cols = region.slices
        canvas[rows, cols] = cv2.remap(
            self._rgb, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        clock.lap("warp")
        self._paint_mouth(canvas, values)
        clock.lap("mouth")
        self._paint_lids(canvas, values)
        clock.lap("eyes")
        return self._turn_head(canvas, values)

    def render_batch(self, frames: Sequence[MotionFrame], audio: AudioTrack) -> list[np.ndarray]:
        """Frames one by one from their channel values (the warp gains nothing from batching;
        the motion already follows the audio)."""
        return [self.render(dict(frame.values)) for frame in frames]

    def _paint_lids(self, canvas: np.ndarray, values: dict[str, float]) -> None:
        """The closing lids and their lash lines over the warped eyes."""
        for channel, painter in self._lids.items():
            painter.paint(canvas, values.get(channel, 0.0))

    def _paint_mouth(self, canvas: np.ndarray, values: dict[str, float]) -> None:
        upper = self._mouth.upper_inner.copy()
        lower = self._mouth.lower_inner.copy()
        for channel, (up_travel, lo_travel) in self._lip_travel.items():
            amount = values.get(channel, 0.0)
            upper += amount * up_travel
            lower += amount * lo_travel
        if self._closed_by_warp:
            draw_contact_line(canvas, upper, lower, self._palette)
        elif self._kept and values.get("pressed", 0.0) > 0.0:
            # A kept smile's lips never met in the photo: where they are pressed together
            # they meet on a line of their own.
            draw_contact_line(canvas, upper, lower, self._palette, values["pressed"])
        draw_interior(
            canvas,
            upper,
            lower,
            self._palette,
            self._face_height,
            tongue=values.get("tongue", 0.0),
            # A kept smile's own teeth frame the opening: only the cavity between them.
            teeth=not self._kept,
            lower_teeth=self._lower_teeth,
        )

    def _turn_head(self, canvas: np.ndarray, values: dict[str, float]) -> np.ndarray:
        clock = self.clock
        radians = np.radians([values.get(c, 0.0) for c in HEAD_CHANNELS]).astype(np.float32)
        if not radians.any():
            frame = canvas.copy()
            clock.lap("frame")
            return frame
        small = (radians @ self._head).reshape(self._head_shape)
        support = self._head_region
        offsets = cv2.resize(small, (support.w, support.h), interpolation=cv2.INTER_LINEAR)
        offsets += self._head_grid
        clock.lap("head")
        frame = canvas.copy()
        clock.lap("frame")
        bands = self._head_bands
        if np.abs(radians).max() > np.radians(HEAD_CAP_DEGREES):
            w, h = self._shape
            bands = [(0, min(support.h, h - support.y0), 0, min(support.w, w - support.x0))]
        # Only the bands where the head moves are resampled; the body and background are the
        # canvas's (the photo's) own pixels.
        for y0, y1, x0, x1 in bands:
            frame[support.y0 + y0 : support.y0 + y1, support.x0 + x0 : support.x0 + x1] = cv2.remap(
                canvas,
                offsets[y0:y1, x0:x1],
                None,
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
        clock.lap("head")
        return frame


def _skin(rgb: np.ndarray, lm: FaceLandmarks) -> np.ndarray:
    """The mean colour of the cheeks (CHEEK_SAMPLES)."""
    h, w = rgb.shape[:2]
    pts = lm.xy[list(CHEEK_SAMPLES)]
    ys = np.clip(pts[:, 1].round().astype(int), 0, h - 1)
    xs = np.clip(pts[:, 0].round().astype(int), 0, w - 1)
    return np.asarray(rgb[ys, xs].astype(np.float64).mean(axis=0))


def _lip_outline(lm: FaceLandmarks, mouth: fields.MouthGeometry) -> LipOutline:
    """The photo's four lip edges as the mouth interior's helpers take them."""

    def edge(ids: tuple[int, ...]) -> np.ndarray:
        return lm.xy[list(ids)].astype(np.float64)

    return LipOutline(
        edge(UPPER_INNER_LIP),
        edge(UPPER_OUTER_LIP),
        edge(LOWER_INNER_LIP),
        edge(LOWER_OUTER_LIP),
        mouth.centre_x,
        mouth.half_width,
    )


def _moving_bands(
    head: np.ndarray, shape: tuple[int, ...], support: fields.Region, size: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) boxes in the head support, inside the frame, holding every pixel that
    a turn of up to HEAD_CAP_DEGREES on each axis moves by STILL_PIXELS or more."""
    reach = np.zeros((support.h, support.w), np.float32)
    for per_radian in head:  # yaw, pitch, roll: a pixel moves at most the sum of the three
        full = cv2.resize(
            per_radian.reshape(shape), (support.w, support.h), interpolation=cv2.INTER_LINEAR
        )
        reach += np.abs(full).sum(axis=-1)
    w, h = size
    moving = reach[: h - support.y0, : w - support.x0] * np.radians(HEAD_CAP_DEGREES)
    moving = moving >= STILL_PIXELS
    bands = []
    for y0 in range(0, moving.shape[0], HEAD_BAND_ROWS):
        y1 = min(y0 + HEAD_BAND_ROWS, moving.shape[0])
        cols = np.flatnonzero(moving[y0:y1].any(axis=0))
        if len(cols):
            bands.append((y0, y1, int(cols[0]), int(cols[-1]) + 1))
    return bands


def _support(field: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of a field's non-zero offsets (None if it moves nothing)."""
    moving = np.argwhere(np.abs(field).max(axis=-1) > SUPPORT_EPS)
    if len(moving) == 0:
        return None
    (y0, x0), (y1, x1) = moving.min(axis=0), moving.max(axis=0) + 1
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


class WarpRenderer:
    """Registry entry for the warp renderer: nothing to load, everything per photo."""

    name = "warp"
    capabilities = Capabilities()

    def load(self) -> None:
        """No models: the warp needs only the landmarks."""

    def prepare(self, portrait: Portrait, *, expression: str = "keep") -> WarpAnimator:
        return WarpAnimator(portrait, expression)


DESCRIPTION: Description[WarpRenderer] = Description(
    WarpRenderer.name,
    "renderer",
    lambda _models_dir: WarpRenderer(),
    licence="Apache-2.0 (facecast)",
    preference=0,
)


def measured_jaw_gain(
    render: Callable[[dict[str, float]], np.ndarray], region: fields.Region, kept: bool
) -> float:
    """The gain on the jaw that opens this face's lips as far as JAW_OPENING says,
    measured with the face mesh on frames of the rigged face (1 if it cannot tell)."""
    levels: list[float] = []
    readings: list[float] = []
    # Only the rigged face's neighbourhood: another person in the photo is not measured.
    rows, cols = region.slices
    # A kept smile is open at rest: the jaw is measured by how far it opens beyond that.
    rest = 0.0
    if kept:
        try:
            rest = detect_landmarks(np.ascontiguousarray(render({})[rows, cols])).mouth_opening
        except NoFaceError:
            return 1.0
    for level in JAW_LEVELS:
        frame = np.ascontiguousarray(render({"jaw": level})[rows, cols])
        try:
            opening = detect_landmarks(frame).mouth_opening
        except NoFaceError:
            break
        # A reading under the last one is the mesh losing the lips, not the mouth closing.
        if readings and opening <= readings[-1]:
            break
        levels.append(level)
        readings.append(opening)
    if len(readings) < 2 or readings[-1] - rest < JAW_RESPONSE_MIN:
        return 1.0
    # Every level counts alike: small openings matter as much as the widest ones.
    per_unit = float(np.mean((np.asarray(readings) - rest) / np.asarray(levels)))
    # A kept smile's widest opening is a wide one in all, not its smile plus one: a broad
    # smile opened by a full jaw read as a shout.
    beyond = max(JAW_OPENING - rest, KEPT_OPENING_MIN * JAW_OPENING)
    return float(np.clip(beyond / per_unit, *JAW_GAIN_RANGE))

"""Captions drawn into the video's frames, readable on any background.

White bold text (DejaVu Sans Bold, bundled with matplotlib: no font is fetched) with a dark
outline, on a rounded translucent dark box, centred near the bottom; the word being spoken
may be coloured. Each cue's picture is drawn once per highlighted word and blended into the
frames it covers, so burning costs a small alpha blend per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facecast.captions import MAX_LINES, Cue, cues
from facecast.speech import WordEvent

FONT_FILE = "DejaVuSans-Bold.ttf"
FONT_SHARE = 0.06
"""Font size as a share of the frame's shorter side (31 px in a 512 px video)."""
MIN_FONT_PX = 12
TEXT_WIDTH_SHARE = 0.88
"""The widest a caption line may be, as a share of the frame width."""
BOTTOM_MARGIN_SHARE = 0.05
"""Distance of the box from the bottom edge, as a share of the frame height."""
PAD_SHARE = 0.35
"""Box padding around the text, as a share of the font size."""
LINE_SPACING_SHARE = 0.2
STROKE_SHARE = 0.08
"""Outline width as a share of the font size."""
BOX_RGBA = (0, 0, 0, 170)
"""About two thirds opaque: white text on it keeps a contrast above 4.5:1 on a white photo."""
TEXT_RGB = (255, 255, 255)
OUTLINE_RGB = (0, 0, 0)
HIGHLIGHT_RGB = (255, 214, 0)
"""The spoken word: a warm yellow, still bright on the dark box."""
AVERAGE_TEXT = "Die neue Öffnungszeit gilt ab Montag, the quick brown fox"
"""Sample text for a line's average character width."""


def font_path() -> Path:
    """The caption font inside matplotlib's data (an installed dependency)."""
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONT_FILE


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


@dataclass(frozen=True)
class Overlay:
    """A cue's picture: premultiplied RGB and alpha for the box at (`x`, `y`)."""

    x: int
    y: int
    rgb: np.ndarray
    """float32 (h, w, 3), already multiplied by alpha."""
    alpha: np.ndarray
    """float32 (h, w, 1) in 0..1."""


def line_chars(width: int, font_px: int) -> int:
    """How many characters of average text fit on a caption line of a `width` px frame."""
    font = _font(font_px)
    average = font.getlength(AVERAGE_TEXT) / len(AVERAGE_TEXT)
    return max(8, int(width * TEXT_WIDTH_SHARE / average))


def font_size(width: int, height: int) -> int:
    """The caption font size for a frame."""
    return max(MIN_FONT_PX, round(min(width, height) * FONT_SHARE))


def draw_cue(cue: Cue, spoken: int | None, width: int, height: int) -> Overlay:
    """The picture of `cue` for a `width` x `height` frame, word `spoken` (an index into
    `cue.words`) highlighted; the font shrinks for a line that would not fit."""
    size = font_size(width, height)
    font = _font(size)
    widest = max(font.getlength(line) for line in cue.lines)
    if widest > width * TEXT_WIDTH_SHARE:
        size = max(MIN_FONT_PX, int(size * width * TEXT_WIDTH_SHARE / widest))
        font = _font(size)
    stroke = max(1, round(size * STROKE_SHARE))
    pad = round(size * PAD_SHARE)
    ascent, descent = font.getmetrics()
    line_h = ascent + descent + stroke * 2
    gap = round(size * LINE_SPACING_SHARE)
    widths = [font.getlength(line) + stroke * 2 for line in cue.lines]
    box_w = min(width, round(max(widths)) + 2 * pad)
    box_h = min(height, len(cue.lines) * line_h + (len(cue.lines) - 1) * gap + 2 * pad)
    image = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, box_w - 1, box_h - 1), radius=pad, fill=BOX_RGBA)
    index = 0
    space = font.getlength(" ")
    for row, (words, line_w) in enumerate(zip(cue.rows, widths, strict=True)):
        x = (box_w - line_w) / 2 + stroke
        y = pad + row * (line_h + gap) + stroke
        for word in words:
            colour = HIGHLIGHT_RGB if index == spoken else TEXT_RGB
            draw.text(
                (x, y), word.word, font=font, fill=colour, stroke_width=stroke,
                stroke_fill=OUTLINE_RGB,
            )  # fmt: skip
            x += font.getlength(word.word) + space
            index += 1
    rgba = np.asarray(image, dtype=np.float32) / 255.0
    alpha = rgba[..., 3:4]
    left = (width - box_w) // 2
    top = max(0, height - box_h - round(height * BOTTOM_MARGIN_SHARE))
    return Overlay(left, top, rgba[..., :3] * alpha * 255.0, alpha)


def blend(frame: np.ndarray, overlay: Overlay) -> np.ndarray:
    """A copy of the RGB uint8 `frame` with `overlay` laid over it."""
    out = frame.copy()
    h, w = overlay.alpha.shape[:2]
    region = out[overlay.y : overlay.y + h, overlay.x : overlay.x + w].astype(np.float32)
    mixed = overlay.rgb + region * (1.0 - overlay.alpha)
    out[overlay.y : overlay.y + h, overlay.x : overlay.x + w] = np.clip(mixed + 0.5, 0, 255)
    return out


class CaptionBurner:
    """Draws the cue of each frame's moment into it: `burner(frame, index)`."""

    def __init__(
        self,
        words: Sequence[WordEvent],
        fps: int,
        width: int,
        height: int,
        highlight: bool = True,
    ) -> None:
        self.fps = fps
        self.size = (width, height)
        self.highlight = highlight
        chars = line_chars(width, font_size(width, height))
        self.cues = cues(words, max_chars=chars, max_lines=MAX_LINES)
        self._drawn: tuple[tuple[int, int | None], Overlay] | None = None

    def state(self, seconds: float) -> tuple[int, int | None] | None:
        """(cue index, highlighted word index) at `seconds`; None between cues."""
        for number, cue in enumerate(self.cues):
            if cue.start <= seconds < cue.end:
                if not self.highlight:
                    return number, None
                spoken = [i for i, w in enumerate(cue.words) if w.start <= seconds]
                return number, (spoken[-1] if spoken else 0)
        return None

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        """`frame` (the `index`-th of the video) with its caption, if one is showing."""
        state = self.state(index / self.fps)
        if state is None:
            return frame
        if self._drawn is None or self._drawn[0] != state:
            height, width = frame.shape[:2]
            self._drawn = (state, draw_cue(self.cues[state[0]], state[1], width, height))
        return blend(frame, self._drawn[1])

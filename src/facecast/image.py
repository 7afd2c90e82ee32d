"""Photo bytes in, a bounded RGB working copy out: formats, orientation, size caps and bombs.

Every photo is inspected before a pixel is decoded: format, declared size, aspect ratio and
what the decode will cost. Then it is decoded at reduced scale where the format allows (JPEG
draft mode: 1/2, 1/4 or 1/8 while decoding), reduced further by whole-pixel boxes, turned
upright by its EXIF orientation, and scaled to at most MAX_WORKING_SIDE. Memory of a decode
is bounded by DECODE_BUDGET_BYTES, whatever the input's shape.

`inspect` is what the API runs on an upload: no pixel buffer at all (JPEG: the marker
structure up to EOI; PNG: every chunk's CRC and the inflated size of the image data).
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facecast import isobmff
from facecast.errors import InvalidImageError

MAX_WORKING_SIDE = 2048
"""Photos are scaled down to this longer side before anything else looks at them."""
MAX_PIXELS = 200_000_000
"""Default cap on declared pixels (FACECAST_MAX_IMAGE_PIXELS in the service)."""
MAX_EDGE = 20_000
"""Longest accepted side in pixels (a 200 MP photo at 16:9 is 18,856 px wide)."""
MAX_ASPECT = 4.0
"""Longest side / shortest side: portraits, not panoramas or pixel strips."""
DECODE_BUDGET_BYTES = 256 * 1024 * 1024
"""Most memory one decode may hold for pixels or JPEG coefficients."""
BOMB_MIN_PIXELS = 4_000_000
"""Above this size a file must carry at least 1/MAX_PIXELS_PER_BYTE bytes per pixel."""
MAX_PIXELS_PER_BYTE = 250
"""A real photo of N pixels takes far more than N/250 bytes (even a flat-grey JPEG, at
about 64 pixels per byte); a tiny file declaring huge dimensions is a decompression bomb."""
MAX_JPEG_SCANS = 64
"""Progressive JPEGs have about 10 scans; hundreds make each decode pass the image again."""
MAX_SCAN_PIXELS = 1_200_000_000
"""Scans x pixels of a JPEG: what its decode costs (about 1 ns per pixel and scan)."""
COEFFICIENT_BYTES = 128
"""A progressive JPEG keeps every 8 x 8 block's coefficients (64 x int16) until its end."""
INFLATE_CHUNK = 1 << 20
FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic", "AVIF": "avif"}
"""Accepted formats (Pillow's names) and the extension a stored upload gets."""
FORMAT_ALIASES = {"MPO": "JPEG"}
"""Phones' multi-picture JPEGs (a second image after the first's end) are JPEGs."""
STORED_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
"""Bytes Pillow stores per pixel for the modes that take less than 4 (RGB and LA take 4:
Pillow keeps them in 32-bit pixels)."""
CONVERTED_BYTES_PER_PIXEL = {"1": 1, "P": 4, "PA": 4, "I;16": 4, "I;16B": 4, "I;16L": 4}
"""Modes converted at full size before they can be reduced, and the bytes the copy takes."""
DECODER_BYTES_PER_PIXEL = {"WEBP": 12, "HEIF": 4, "AVIF": 6}
"""Buffers the decoding library holds besides Pillow's (measured on 4000 x 4000 photos:
WebP 16 bytes a pixel in all, HEIC 7.7, AVIF 9.1, PNG 4)."""
WORKING_BYTES_PER_PIXEL = 14
"""What the working copy (at most the working side squared) costs per pixel: conversion to
RGB, flattening onto white, the array."""
FLATTEN_BYTES_PER_PIXEL = 16
"""More per working-copy pixel for modes with transparency (flattened onto white)."""
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "P"})
"""Modes that may carry transparency (a palette's is known only once decoded)."""
REDUCED_BYTES_PER_PIXEL = 4
"""The whole-pixel reduction's output, per pixel of it."""
RESIZABLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "I", "F"})
"""Modes Pillow resizes directly (palette, bilevel and 16-bit ones are converted first)."""
MAX_JPEG_SEGMENTS = 512
"""Marker segments in a JPEG (a phone photo has about 20; ICC profiles and XMP split into
pieces add a few dozen). Pillow keeps every APPn segment, so millions of empty ones cost
seconds and hundreds of MiB before a pixel is decoded."""
MAX_FILL_BYTES = 1024
"""0xFF fill bytes between a JPEG's segments, in all (encoders write none or a few)."""
MAX_PNG_CHUNKS = 8192
"""Chunks in a PNG (15 MB of image data in libpng's 8 KiB chunks is about 1,900); more
means a flood of tiny or private chunks that each decode step walks one at a time."""
MAX_RIFF_CHUNKS = 256
"""Chunks in a WebP (a still photo has at most 6)."""
CODED_SIZE_MARGIN = 64
"""Pixels a codec may pad a declared size by (HEVC codes whole 8-64 px blocks)."""
ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})
"""EXIF orientations that swap width and height."""
EXIF_ORIENTATION = 0x0112
TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""How to turn a photo with each EXIF orientation upright (as Pillow's exif_transpose does)."""
UNREADABLE = "The file is not an image that can be read (JPEG, PNG, WebP, HEIC or AVIF)."
DAMAGED = "The image file is damaged or truncated."
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
"""PNG interlace passes: x start, y start, x step, y step."""
JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""A marker after entropy-coded data: 0xFF not followed by stuffing, a restart or fill."""
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


@dataclass(frozen=True)
class PhotoInfo:
    """What a photo declares, checked against the limits; nothing decoded yet."""

    format: str
    width: int
    height: int
    mode: str
    file_bytes: int
    orientation: int = 1

    @property
    def extension(self) -> str:
        """File extension for a stored copy."""
        return FORMATS[self.format]

    @property
    def upright_size(self) -> tuple[int, int]:
        """Width and height once the EXIF orientation is applied."""
        if self.orientation in ROTATED_ORIENTATIONS:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class Photo:
    """A decoded photo: the RGB working copy and the size of the upright original."""

    rgb: np.ndarray  # (H, W, 3) uint8, longer side <= MAX_WORKING_SIDE
    width: int
    height: int
    format: str

    @property
    def scale(self) -> float:
        """Working-copy pixels per original pixel (1.0 when the photo was small enough)."""
        return self.rgb.shape[1] / self.width


@lru_cache(maxsize=1)
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif), once per process."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def _open(data: bytes) -> Image.Image:
    """Image.open for the accepted formats, without Pillow's process-wide pixel limit.

    The limits in `inspect` apply instead; they are tighter where decoding costs memory and
    let a 200 MP JPEG through, which Pillow's fixed 179 MP limit would not.
    """
    _register_heif()
    Image.init()
    recognised = False
    for name in FORMATS:
        factory, accept = Image.OPEN[name]
        if accept is not None and not accept(data[:16]):
            continue
        recognised = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error, EOFError):
            continue
        except (OSError, ValueError, RuntimeError):
            raise InvalidImageError(DAMAGED) from None
    if recognised:  # the signature of a format, but its headers do not parse
        raise InvalidImageError(DAMAGED)
    raise InvalidImageError(UNREADABLE)


def _read(source: str | Path | bytes) -> bytes:
    data = Path(source).read_bytes() if isinstance(source, str | Path) else source
    if not data:
        raise InvalidImageError("The image file is empty.")
    return data


def _check_structure(data: bytes) -> JpegLayout | None:
    """Walk the container before Pillow parses it (Pillow's own header walk keeps every
    segment and goes one byte at a time): refuse too many segments, chunks or boxes, fill
    runs, and broken nesting. The JPEG's layout, for the later checks."""
    if data[:2] == b"\xff\xd8":
        return jpeg_layout(data)
    if data[:8] == PNG_SIGNATURE:
        _walk_png(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        _check_riff(data)
    elif data[4:8] == b"ftyp":
        try:
            isobmff.count_boxes(data)
        except isobmff.BoxError:
            raise InvalidImageError(DAMAGED) from None
    return None


def inspect(source: str | Path | bytes, *, max_pixels: int = MAX_PIXELS) -> PhotoInfo:
    """Check a photo without decoding its pixels; InvalidImageError says what is wrong.

    Refused: formats other than JPEG/PNG/WebP/HEIC/AVIF, more than `max_pixels` or MAX_EDGE,
    an aspect ratio beyond MAX_ASPECT, tiny files declaring huge sizes, JPEGs whose scans
    would cost too much time or memory, PNGs whose chunks are cut or damaged, and photos
    that a decode could not scale down within DECODE_BUDGET_BYTES.
    """
    data = _read(source)
    layout = _check_structure(data)
    with _open(data) as image:
        info = PhotoInfo(
            format=FORMAT_ALIASES.get(str(image.format), str(image.format)),
            width=image.width,
            height=image.height,
            mode=image.mode,
            file_bytes=len(data),
        )
        _check_dimensions(info, max_pixels)
        info = replace(info, orientation=_orientation(image))
    if info.format == "JPEG":
        _check_jpeg(layout or jpeg_layout(data), info)
    else:
        _check_full_decode(info)
        if info.format == "PNG":
            _check_png(data)
        elif info.format in ("HEIF", "AVIF"):
            _check_boxes(data)
            _check_coded_size(data, info)
    return info


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, read from the headers only.

    Pillow's PNG `getexif()` decodes the whole image to look for an eXIf chunk after the
    pixels (a 60000 x 60000 bomb took 14 GB that way): for PNG only a chunk before them counts.
    """
    try:
        if image.format == "PNG":
            raw = image.info.get("exif")
            exif = Image.Exif()
            if isinstance(raw, bytes):
                exif.load(raw)
        else:
            exif = image.getexif()
        value = exif.get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, struct.error):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_dimensions(info: PhotoInfo, max_pixels: int) -> None:
    width, height = info.width, info.height
    pixels = width * height
    if width < 1 or height < 1:
        raise InvalidImageError(DAMAGED)
    if pixels > max_pixels:
        raise InvalidImageError(
            f"The image is {width} x {height} pixels; at most {max_pixels:,} pixels are accepted."
        )
    if max(width, height) > MAX_EDGE:
        raise InvalidImageError(
            f"The image is {width} x {height} pixels; its longer side may be at most "
            f"{MAX_EDGE:,} pixels."
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InvalidImageError(
            f"The image is {width} x {height} pixels; a photo's longer side may be at most "
            f"{MAX_ASPECT:g} times its shorter side. Crop it around the face."
        )
    if pixels > BOMB_MIN_PIXELS and pixels > MAX_PIXELS_PER_BYTE * info.file_bytes:
        raise InvalidImageError(
            f"The image declares {width} x {height} pixels in only {info.file_bytes:,} bytes; "
            "that is not a photo (a decompression bomb)."
        )


def decode_cost(info: PhotoInfo, working_side: int = MAX_WORKING_SIDE) -> int:
    """Bytes a full-size decode of `info` holds at its peak, as the decoders allocate: Pillow's
    pixels, the decoding library's own buffer, a full-size conversion where the mode needs
    one before reducing, and the working copy made from the reduced image."""
    pixels = info.width * info.height
    per_pixel = (
        STORED_BYTES_PER_PIXEL.get(info.mode, 4)
        + DECODER_BYTES_PER_PIXEL.get(info.format, 0)
        + CONVERTED_BYTES_PER_PIXEL.get(info.mode, 0)
    )
    factor = max(info.width, info.height) // working_side
    reduced = pixels // (factor * factor) * REDUCED_BYTES_PER_PIXEL if factor >= 2 else 0
    working = WORKING_BYTES_PER_PIXEL + (FLATTEN_BYTES_PER_PIXEL if info.mode in ALPHA_MODES else 0)
    return pixels * per_pixel + reduced + working_side * working_side * working


def _check_full_decode(info: PhotoInfo) -> None:
    """Formats decoded at full size must fit the decode budget."""
    cost = decode_cost(info)
    if cost > DECODE_BUDGET_BYTES:
        limit = info.width * info.height * DECODE_BUDGET_BYTES // cost
        raise InvalidImageError(
            f"The {info.format} image is {info.width} x {info.height} pixels; photos in this "
            f"format are decoded at full size and may have at most about {limit:,} pixels. "
            "Send it as JPEG (up to 200 megapixels) or scale it down."
        )


def _check_coded_size(data: bytes, info: PhotoInfo) -> None:
    """Every image the codec headers describe fits the size the file declares (`ispe`)."""
    try:
        sizes = isobmff.coded_sizes(data)
    except isobmff.BoxError:
        raise InvalidImageError(DAMAGED) from None
    side = max(info.width, info.height) + CODED_SIZE_MARGIN
    for width, height in sizes:
        if width > side or height > side:
            raise InvalidImageError(
                f"The {info.format} image declares {info.width} x {info.height} pixels but "
                f"holds a {width} x {height} image; the file is damaged or forged."
            )


@dataclass(frozen=True)
class JpegLayout:
    """What a JPEG's markers say: frame type, block counts, scans, and whether it ends."""

    progressive: bool
    blocks: int
    scans: int
    complete: bool


def jpeg_layout(data: bytes) -> JpegLayout:
    """Walk a JPEG's markers (no decoding): SOF, every SOS, and the final EOI."""
    if data[:2] != b"\xff\xd8":
        raise InvalidImageError(UNREADABLE)
    pos, scans, blocks, progressive = 2, 0, 0, False
    segments = fills = 0
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise InvalidImageError(DAMAGED)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            fills += 1
            if fills > MAX_FILL_BYTES:
                raise InvalidImageError(
                    f"The JPEG has more than {MAX_FILL_BYTES} fill bytes between its "
                    "segments; that is not a photo an encoder wrote."
                )
            pos += 1
            continue
        if marker == 0xD9:
            return JpegLayout(progressive, blocks, scans, complete=True)
        segments += 1
        if segments > MAX_JPEG_SEGMENTS or scans > MAX_JPEG_SCANS:
            raise InvalidImageError(
                f"The JPEG has more than {MAX_JPEG_SEGMENTS} marker segments or "
                f"{MAX_JPEG_SCANS} scans; reading it would take too long. Save it again."
            )
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(segment) != length - 2:
            break
        if marker in SOF_MARKERS:
            progressive = marker in PROGRESSIVE_SOF
            blocks = _jpeg_blocks(segment)
        pos += 2 + length
        if marker == 0xDA:
            scans += 1
            found = JPEG_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return JpegLayout(progressive, blocks, scans, complete=False)


def _jpeg_blocks(sof: bytes) -> int:
    """8 x 8 blocks over all components, from a SOF segment's size and sampling factors."""
    if len(sof) < 6:
        raise InvalidImageError(DAMAGED)
    height, width, count = struct.unpack(">HHB", sof[1:6])
    factors = [(sof[7 + 3 * i] >> 4, sof[7 + 3 * i] & 15) for i in range(count)]
    if len(sof) < 6 + 3 * count or not factors or min(min(f) for f in factors) < 1:
        raise InvalidImageError(DAMAGED)
    h_max, v_max = max(f[0] for f in factors), max(f[1] for f in factors)
    return sum(
        math.ceil(width * h / h_max / 8) * math.ceil(height * v / v_max / 8) for h, v in factors
    )


def _check_jpeg(layout: JpegLayout, info: PhotoInfo) -> None:
    if not layout.complete or layout.scans == 0:
        raise InvalidImageError(DAMAGED)
    pixels = info.width * info.height
    if layout.scans > MAX_JPEG_SCANS or layout.scans * pixels > MAX_SCAN_PIXELS:
        raise InvalidImageError(
            f"The JPEG has {layout.scans} scans over {info.width} x {info.height} pixels; "
            "decoding it would take too long. Save it again as a baseline JPEG."
        )
    if layout.progressive and layout.blocks * COEFFICIENT_BYTES > DECODE_BUDGET_BYTES:
        raise InvalidImageError(
            f"The progressive JPEG is {info.width} x {info.height} pixels; decoding it needs "
            "more memory than a photo may take. Save it as a baseline JPEG or scale it down."
        )


def _walk_png(data: bytes) -> list[tuple[bytes, int, int]]:
    """Every chunk whole with a correct CRC, IHDR first, at most MAX_PNG_CHUNKS of them, up to
    IEND: (type, body start, body end) of each."""
    pos = len(PNG_SIGNATURE)
    chunks: list[tuple[bytes, int, int]] = []
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != int.from_bytes(crc):
            raise InvalidImageError(DAMAGED)
        if not chunks and kind != b"IHDR":
            raise InvalidImageError(DAMAGED)
        chunks.append((kind, pos + 8, pos + 8 + length))
        if len(chunks) > MAX_PNG_CHUNKS:
            raise InvalidImageError(
                f"The PNG has more than {MAX_PNG_CHUNKS} chunks; save it again with an "
                "ordinary encoder."
            )
        if kind == b"IEND":
            return chunks
        pos += 12 + length
    raise InvalidImageError(DAMAGED)


def _check_png(data: bytes) -> None:
    """Image data that inflates to the full size the header declares (counted, not kept)."""
    chunks = _walk_png(data)
    inflater, inflated = zlib.decompressobj(), 0
    expected = _png_data_size(data[chunks[0][1] : chunks[0][2]])
    for kind, start, end in chunks:
        if kind == b"IDAT":
            inflated += _inflated_size(inflater, data[start:end], expected - inflated)
    if inflated < expected:
        raise InvalidImageError(DAMAGED)


def _png_data_size(ihdr: bytes) -> int:
    """Bytes the image data inflates to: filter byte plus packed samples, per row and pass."""
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr[:13])
    bits = depth * PNG_CHANNELS.get(color, 4)
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        cols, rows = max(0, -(-(width - x0) // dx)), max(0, -(-(height - y0) // dy))
        if cols and rows:
            total += rows * (1 + -(-cols * bits // 8))
    return total


def _inflated_size(inflater: zlib._Decompress, chunk: bytes, room: int) -> int:
    """Inflate one IDAT chunk in bounded pieces; count the bytes instead of keeping them."""
    count = 0
    try:
        while chunk:
            count += len(inflater.decompress(chunk, INFLATE_CHUNK))
            chunk = inflater.unconsumed_tail
            if count > room + INFLATE_CHUNK:
                raise InvalidImageError(DAMAGED)  # more data than the header declares
    except zlib.error:
        raise InvalidImageError(DAMAGED) from None
    return count


def _check_riff(data: bytes) -> None:
    """A WebP file is a RIFF container that says how long it is, of at most MAX_RIFF_CHUNKS
    whole chunks."""
    if len(data) < 12 or data[:4] != b"RIFF":
        raise InvalidImageError(DAMAGED)
    (size,) = struct.unpack("<I", data[4:8])
    if len(data) < size + 8:
        raise InvalidImageError(DAMAGED)
    pos, end, count = 12, size + 8, 0
    while pos + 8 <= end:
        count += 1
        if count > MAX_RIFF_CHUNKS:
            raise InvalidImageError(f"The WebP has more than {MAX_RIFF_CHUNKS} chunks.")
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        pos += 8 + length + (length & 1)
    if pos > end + 1:  # a chunk runs past the file (one pad byte forgiven)
        raise InvalidImageError(DAMAGED)


def _check_boxes(data: bytes) -> None:
    """HEIF and AVIF files are ISO BMFF boxes that must end exactly with the file."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4])
        if size == 1:  # a 64-bit size follows the type
            size = int.from_bytes(data[pos + 8 : pos + 16])
        elif size == 0:  # the last box runs to the end of the file
            return
        if size < 8:
            break
        pos += size
    if pos != len(data):
        raise InvalidImageError(DAMAGED)


def load_photo(
    source: str | Path | bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    working_side: int = MAX_WORKING_SIDE,
) -> Photo:
    """Decode a photo upright, scaled down while decoding, longer side at most `working_side`."""
    data = _read(source)
    info = inspect(data, max_pixels=max_pixels)
    long_side = max(info.width, info.height)
    try:
        with _open(data) as image:
            if info.format == "JPEG" and long_side > working_side:
                factor = working_side / long_side
                image.draft(
                    "RGB", (math.ceil(info.width * factor), math.ceil(info.height * factor))
                )
            image.load()
            reduced = _reduce(image, working_side)
            method = TRANSPOSE_FOR_ORIENTATION.get(info.orientation)
            upright = reduced if method is None else reduced.transpose(method)
    except InvalidImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, RuntimeError):
        # RuntimeError: libheif's refusals (security limits, sizes that do not match).
        raise InvalidImageError(DAMAGED) from None
    rgb = _to_rgb(upright)
    side = max(rgb.shape[:2])
    if side > working_side:
        scale = working_side / side
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    width, height = info.upright_size
    return Photo(np.ascontiguousarray(rgb), width, height, info.format)


def _reduce(image: Image.Image, working_side: int) -> Image.Image:
    """Whole-pixel box reduction, then a box resize to the working side, before any mode
    conversion, so conversions (transparency onto white, grey or 16 bit to RGB) work on the
    small copy whatever the photo's size (modes Pillow cannot resize are converted first)."""
    factor = max(image.size) // working_side
    if factor >= 2 or (max(image.size) > working_side and image.mode not in RESIZABLE_MODES):
        if image.mode == "1":
            image = image.convert("L")
        elif image.mode in ("P", "PA"):
            image = image.convert("RGBA")
        if image.mode in ("I;16", "I;16B", "I;16L"):
            image = image.convert("I")
        if factor >= 2:
            image = image.reduce(factor)
    side = max(image.size)
    if side > working_side and image.mode in RESIZABLE_MODES:
        scale = working_side / side
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return image


def load_image(source: str | Path | bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The RGB working copy of a photo (see `load_photo`)."""
    return load_photo(source, max_pixels=max_pixels).rgb


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any PIL mode to RGB; transparency is flattened onto white, as a viewer would show it."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        arr = (arr / max(float(arr.max()), 1.0) * 255.0).astype(np.uint8)
        return np.stack([arr] * 3, axis=-1)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)

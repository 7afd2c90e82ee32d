"""The coded sizes inside a HEIF/AVIF file, read from its boxes without decoding.

A HEIF file states each image's size twice: in its `ispe` property (what Pillow reports and
every size check sees) and in the codec's own headers (HEVC: the sequence parameter set in
`hvcC`; AV1: the sequence header OBU at the start of the item's data). The decoder allocates
for the second. `coded_sizes` reads the second so a caller can refuse a file whose codec
sizes exceed the size it declares (a 100 x 100 `ispe` over a 10000 x 10000 image).
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_BOXES = 4096
"""Boxes walked in one file (a phone HEIC with a 48-tile grid has about 200)."""
MAX_OBUS = 8
"""OBUs read at the start of an AV1 item before its sequence header must have come."""
OBU_SEQUENCE_HEADER = 1
OBU_LEADING_TYPES = frozenset({1, 2, 5, 15})
"""Sequence header, temporal delimiter, metadata, padding: what may precede the frame."""
HEVC_SPS = 33
CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0}
"""Boxes holding boxes, with the bytes of version/flags before their children."""


class BoxError(ValueError):
    """The boxes do not parse, or there are too many."""


class _Bits:
    """MSB-first bit reader over bytes; BoxError when it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BoxError("header ends early")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def golomb(self) -> int:
        """Exp-Golomb ue(v) (HEVC)."""
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
            if zeros > 31:
                raise BoxError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.read(zeros)

    def uvlc(self) -> int:
        """AV1 uvlc()."""
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.read(zeros) + (1 << zeros) - 1


def _boxes(
    data: bytes, start: int, end: int, budget: list[int]
) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, body end) of the boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        budget[0] -= 1
        if budget[0] < 0:
            raise BoxError(f"more than {MAX_BOXES} boxes")
        size, kind = int.from_bytes(data[pos : pos + 4]), data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8 : pos + 16]), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise BoxError("a box runs past its parent")
        yield kind, pos + header, pos + size
        pos += size


def _walk(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Every box of interest: the top level, and inside meta/iprp/ipco."""
    budget = [MAX_BOXES]
    stack = [(0, len(data))]
    while stack:
        start, end = stack.pop()
        for kind, body, stop in _boxes(data, start, end, budget):
            yield kind, body, stop
            if kind in CONTAINERS:
                stack.append((body + CONTAINERS[kind], stop))


def count_boxes(data: bytes) -> int:
    """How many boxes the walk visits; BoxError past MAX_BOXES or on broken nesting."""
    return sum(1 for _ in _walk(data))


def _hevc_sps_size(nal: bytes) -> tuple[int, int]:
    """Width and height of an HEVC sequence parameter set NAL unit."""
    rbsp = nal[2:].replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention
    bits = _Bits(rbsp)
    bits.read(4)  # sps_video_parameter_set_id
    sub_layers = bits.read(3)
    bits.read(1)
    bits.read(88 + 8)  # general profile (88 bits) and level
    flags = [(bits.read(1), bits.read(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.read(2 * (8 - sub_layers))
    for profile, level in flags:
        bits.read(88 * profile + 8 * level)
    bits.golomb()  # sps_seq_parameter_set_id
    if bits.golomb() == 3:  # chroma_format_idc 4:4:4
        bits.read(1)
    return bits.golomb(), bits.golomb()


def _hvcc_sizes(body: bytes) -> Iterator[tuple[int, int]]:
    """The sizes of every SPS in an hvcC box's NAL arrays."""
    if len(body) < 23:
        raise BoxError("short hvcC")
    pos, arrays = 23, body[22]
    for _ in range(arrays):
        kind, count = body[pos] & 0x3F, int.from_bytes(body[pos + 1 : pos + 3])
        pos += 3
        for _ in range(count):
            length = int.from_bytes(body[pos : pos + 2])
            nal = body[pos + 2 : pos + 2 + length]
            if len(nal) != length:
                raise BoxError("hvcC NAL runs past the box")
            if kind == HEVC_SPS:
                yield _hevc_sps_size(nal)
            pos += 2 + length


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise BoxError("OBU size runs past the data")
        value |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return value, pos + i + 1
    raise BoxError("OBU size too long")


def _av1_sequence_size(payload: bytes) -> tuple[int, int]:
    """Maximum frame width and height of an AV1 sequence header OBU payload."""
    bits = _Bits(payload)
    bits.read(3)  # seq_profile
    bits.read(1)  # still_picture
    if bits.read(1):  # reduced_still_picture_header
        bits.read(5)
    else:
        model_info, delay_length = False, 0
        if bits.read(1):  # timing_info_present_flag
            bits.read(64)
            if bits.read(1):  # equal_picture_interval
                bits.uvlc()
            model_info = bool(bits.read(1))
            if model_info:
                delay_length = bits.read(5) + 1
                bits.read(32 + 5 + 5)
        display_delay = bits.read(1)
        for _ in range(bits.read(5) + 1):  # operating points
            bits.read(12)
            if bits.read(5) > 7:
                bits.read(1)
            if model_info and bits.read(1):
                bits.read(2 * delay_length + 1)
            if display_delay and bits.read(1):
                bits.read(4)
    width_bits, height_bits = bits.read(4) + 1, bits.read(4) + 1
    return bits.read(width_bits) + 1, bits.read(height_bits) + 1


def _av1_item_size(data: bytes, start: int) -> tuple[int, int] | None:
    """The sequence header's size at the start of an AV1 item; None when the item does not
    start with AV1 OBUs (Exif, XMP and other items)."""
    pos = start
    for _ in range(MAX_OBUS):
        if pos >= len(data):
            return None
        header = data[pos]
        kind, extension, sized = (header >> 3) & 0xF, header & 0x4, header & 0x2
        if header & 0x80 or not sized or kind not in OBU_LEADING_TYPES:
            return None
        size, body = _leb128(data, pos + 1 + (1 if extension else 0))
        if kind == OBU_SEQUENCE_HEADER:
            return _av1_sequence_size(data[body : body + size])
        pos = body + size
    return None


def _item_starts(data: bytes, body: int, end: int) -> Iterator[int]:
    """File offsets where each item's data starts, from an `iloc` box (file-offset items)."""
    box = data[body:end]
    version = box[0]
    sizes = box[4] if len(box) > 5 else 0
    offset_size, length_size = sizes >> 4, sizes & 0xF
    base_size, index_size = box[5] >> 4, (box[5] & 0xF) if version in (1, 2) else 0
    wide = version == 2
    pos = 6
    count = int.from_bytes(box[pos : pos + (4 if wide else 2)])
    pos += 4 if wide else 2
    for _ in range(min(count, MAX_BOXES)):
        pos += 4 if wide else 2  # item_ID
        method = 0
        if version in (1, 2):
            method = int.from_bytes(box[pos : pos + 2]) & 0xF
            pos += 2
        pos += 2  # data_reference_index
        base = int.from_bytes(box[pos : pos + base_size])
        pos += base_size
        extents = int.from_bytes(box[pos : pos + 2])
        pos += 2
        first = None
        for _ in range(min(extents, MAX_BOXES)):
            pos += index_size
            offset = int.from_bytes(box[pos : pos + offset_size])
            pos += offset_size + length_size
            first = base + offset if first is None else first
        if pos > len(box):
            raise BoxError("iloc runs past its box")
        if method == 0 and first is not None:
            yield first


def coded_sizes(data: bytes) -> list[tuple[int, int]]:
    """Width and height of every image the codec headers describe (HEVC SPS in `hvcC`, AV1
    sequence headers at each item's start); BoxError when the boxes do not parse."""
    sizes: list[tuple[int, int]] = []
    try:
        for kind, body, end in _walk(data):
            if kind == b"hvcC":
                sizes.extend(_hvcc_sizes(data[body:end]))
            elif kind == b"iloc":
                for start in _item_starts(data, body, end):
                    size = _av1_item_size(data, start)
                    if size is not None:
                        sizes.append(size)
    except IndexError as exc:
        raise BoxError("a box ends early") from exc
    return sizes

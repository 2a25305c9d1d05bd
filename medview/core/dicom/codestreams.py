"""The image size a compressed frame's codestream declares, read from its first bytes without a decoder.

A decoder trusts its codestream: a JPEG 2000 SIZ or a JPEG frame header declaring 20000 x 20000 pixels makes
it allocate and decode that (gigabytes, minutes of CPU) before the result is found not to fit the header's
Rows and Columns. Reading the declared size first lets such a frame be refused at once.
"""

from __future__ import annotations

import struct
from typing import Iterator

SOI = b"\xff\xd8"  # where a JPEG or JPEG-LS stream begins
J2K_SIZ = b"\xff\x4f\xff\x51"  # SOC then SIZ: where a JPEG 2000 (and HTJ2K) codestream begins
_JP2_SEARCH = 1 << 16  # a JP2-wrapped codestream follows its header boxes (an ICC profile at most, usually)
# JPEG frame headers (SOF0-3, 5-7, 9-11, 13-15) and JPEG-LS's SOF55: P, Y, X follow the length
_FRAME_HEADERS = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}) | {0xF7}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: markers without a length


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG, JPEG-LS or JPEG 2000 / HTJ2K codestream (raw or in JP2 boxes) declares; None
    where its first bytes do not say (another format, a size left to a later marker, cut short)."""
    if data[:2] == SOI:
        return _jpeg_size(data)
    at = data.find(J2K_SIZ, 0, _JP2_SEARCH)
    if at < 0 or at + 24 > len(data):
        return None
    x, y, x0, y0 = struct.unpack_from(">IIII", data, at + 8)
    return (y - y0, x - x0) if x > x0 and y > y0 else None


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset of its 0xFF) of each marker segment of a JPEG or JPEG-LS stream after its SOI, in
    order, fill bytes and markers without a length skipped; ends where the bytes stop being markers."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        yield marker, pos
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    for marker, pos in jpeg_segments(data):
        if marker in _FRAME_HEADERS:
            if pos + 9 > len(data):
                return None
            rows, columns = struct.unpack_from(">HH", data, pos + 5)
            return (rows, columns) if rows else None  # 0 lines: given after the first scan (DNL)
        if marker == 0xDA:  # a scan before any frame header
            return None
    return None

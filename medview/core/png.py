"""A tiny PNG writer and reader (ISO/IEC 15948, W3C PNG 2nd edition) for 8-bit grey and RGB images.

zlib + struct + numpy only: `render` must start fast and needs neither Qt nor Pillow. Rows are written with
the "Up" filter (PNG 9.2, filter type 2), which compresses medical images well and is vectorised; the reader
(used by tests and tools) reads 8-bit grey/RGB PNGs with the None, Sub and Up filters.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from medview.core.atomic import write_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2}  # samples per pixel -> PNG colour type (0 greyscale, 2 truecolour)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """PNG bytes of a uint8 (H, W) grey or (H, W, 3) RGB image.

    Raises
    ------
    ValueError
        Another dtype or shape.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"PNG writer needs uint8 pixels, not {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in _COLOUR_TYPES or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"PNG writer needs (H, W) or (H, W, 3) pixels, not {np.shape(image)}")
    height, width, samples = img.shape
    rows = np.ascontiguousarray(img).reshape(height, width * samples)
    filtered = np.empty((height, width * samples + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # Up: each byte minus the byte above it, modulo 256
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[samples], 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike, image: np.ndarray, level: int = 6) -> None:
    """Write `image` (uint8 grey or RGB) to `path` atomically: a temporary file in the same folder, renamed."""
    write_atomic(path, encode_png(image, level))


def decode_png(data: bytes) -> np.ndarray:
    """A uint8 (H, W) or (H, W, 3) array from PNG bytes: bit depth 8, colour type 0 or 2, no interlace,
    row filters None, Sub or Up (PNG 9.2).

    Raises
    ------
    ValueError
        Not a PNG, a broken chunk (CRC), or a kind of PNG this reader does not handle.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, idat, header = len(PNG_SIGNATURE), [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"PNG chunk {kind!r} has a bad CRC")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _comp, _filt, interlace = header
    if depth != 8 or colour not in (0, 2) or interlace:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {colour}, interlace {interlace})")
    samples = 1 if colour == 0 else 3
    stride = width * samples
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, stride + 1)
    kinds = raw[:, 0]
    if np.any(kinds > 2):
        raise ValueError(f"PNG filter types {sorted(set(kinds.tolist()))}: only None, Sub and Up are read")
    out = raw[:, 1:].copy()
    sub = kinds == 1
    if sub.any():  # Sub: running sum modulo 256 along each row, per sample
        rows = out[sub].reshape(int(sub.sum()), width, samples)
        out[sub] = np.cumsum(rows, axis=1, dtype=np.uint8).reshape(int(sub.sum()), stride)
    for y in np.flatnonzero(kinds == 2):  # Up: depends on the finished row above
        if y > 0:
            out[y] += out[y - 1]
    return out.reshape(height, width) if samples == 1 else out.reshape(height, width, 3)


def read_png(path: str | os.PathLike) -> np.ndarray:
    """`decode_png` of a file."""
    with open(path, "rb") as fh:
        return decode_png(fh.read())

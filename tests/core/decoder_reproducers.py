"""Real compressed files that take the process down in the native decoders, made from pydicom's test files.

Found by mutating the codestreams and headers of pydicom's compressed test files and decoding each in a
child process; each change below is the one byte (or run of bytes, or header value) that is enough. Decoded
in-process, these abort the interpreter (SIGABRT: an uncaught C++ exception thrown inside python-gdcm's
codecs, CharLS's `std::length_error` among them):

- `jpeg_ls_crash`: MR_small_jpeg_ls_lossless.dcm whose JPEG-LS frame header (SOF-55) declares 32-bit samples;
- `jpeg_ls_huge`: the same file whose SOF-55 declares 65535 x 65535 samples;
- `jpeg2000_crash`: examples_jpeg2k.dcm whose SIZ marker declares 69-bit samples for the first component;
- `ybr_rct_as_monochrome1`: US1_J2KR.dcm (a YBR_RCT JPEG 2000 stream) labelled MONOCHROME1;
- `jpeg_lossless_crash`: JPEG-LL.dcm whose Huffman table marker (FFC4) lost its 0xFF byte;
- `jpeg_bits_allocated_64`: SC_rgb_jpeg_dcmtk.dcm (JPEG baseline) declaring Bits Allocated 64.

`rle_panic` (rtdose_rle_1frame.dcm with 64 bytes of its RLE segments zeroed) raises pyo3's `PanicException`
in pylibjpeg-rle, a BaseException that passes `except Exception`. `jpeg_cut_short` (a JPEG fragment cut to 10
bytes) only raises: an ordinary decode error.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Callable

import pydicom
from pydicom.encaps import encapsulate, generate_frames

from tests.factories import copy_testdata


def _with_frame(name: str, dest: str | os.PathLike, change: Callable[[bytes], bytes], frame: int = 0,
                **tags) -> Path:
    """A copy of pydicom test file `name` with one frame's compressed bytes changed by `change`."""
    path = copy_testdata(name, dest, **tags)
    ds = pydicom.dcmread(path)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
    frames[frame] = change(frames[frame])
    ds.PixelData = encapsulate([f + b"\0" * (len(f) % 2) for f in frames])
    ds.save_as(path, enforce_file_format=False)
    return path


def _set_byte(data: bytes, at: int, value: int) -> bytes:
    changed = bytearray(data)
    changed[at] = value
    return bytes(changed)


def jpeg_ls_crash(dest, name: str = "MR_small_jpeg_ls_lossless.dcm", frame: int = 0, **tags) -> Path:
    """JPEG-LS: the SOF-55 sample precision (4 bytes after its marker) set to 32 bits."""
    return _with_frame(name, dest, lambda f: _set_byte(f, f.index(b"\xff\xf7") + 4, 32), frame, **tags)


def jpeg2000_crash(dest, **tags) -> Path:
    """JPEG 2000: Ssiz of the first component (40 bytes after the SIZ marker) set to 0x44 (69 bits)."""
    return _with_frame("examples_jpeg2k.dcm", dest, lambda f: _set_byte(f, f.index(b"\xff\x51") + 40, 0x44),
                       **tags)


def jpeg_lossless_crash(dest, **tags) -> Path:
    """JPEG lossless: the first byte of the DHT marker (FF C4) replaced by 0x24."""
    return _with_frame("JPEG-LL.dcm", dest, lambda f: _set_byte(f, f.index(b"\xff\xc4"), 0x24), **tags)


def rle_panic(dest, **tags) -> Path:
    """RLE: bytes 100 to 163 of the frame (inside its segments) zeroed."""
    return _with_frame("rtdose_rle_1frame.dcm", dest, lambda f: f[:100] + bytes(64) + f[164:], **tags)


def jpeg_ls_huge(dest, **tags) -> Path:
    """JPEG-LS: the SOF-55 lines and columns (5 and 7 bytes after its marker) set to 65535."""
    def huge(f: bytes) -> bytes:
        at = f.index(b"\xff\xf7")
        return f[:at + 5] + b"\xff\xff\xff\xff" + f[at + 9:]

    return _with_frame("MR_small_jpeg_ls_lossless.dcm", dest, huge, **tags)


def jpeg2000_huge(dest, size: int = 20000, **tags) -> Path:
    """A colour JPEG 2000 frame whose SIZ declares `size` x `size` pixels (the image and its tile): OpenJPEG
    would decode that much (minutes, gigabytes) before pydicom finds it is not the header's 640 x 480."""
    def huge(f: bytes) -> bytes:
        at = f.index(b"\xff\x51") + 2
        changed = bytearray(f)
        struct.pack_into(">II", changed, at + 4, size, size)   # Xsiz, Ysiz
        struct.pack_into(">II", changed, at + 20, size, size)  # XTsiz, YTsiz
        return bytes(changed)

    return _with_frame("US1_J2KI.dcm", dest, huge, **tags)


def ybr_rct_as_monochrome1(dest, **tags) -> Path:
    """A colour (YBR_RCT) JPEG 2000 stream whose header says MONOCHROME1."""
    return copy_testdata("US1_J2KR.dcm", dest, PhotometricInterpretation="MONOCHROME1", **tags)


def jpeg_bits_allocated_64(dest, **tags) -> Path:
    """A JPEG baseline image whose header declares Bits Allocated 64."""
    return copy_testdata("SC_rgb_jpeg_dcmtk.dcm", dest, BitsAllocated=64, **tags)


def jpeg_cut_short(dest, **tags) -> Path:
    """A JPEG baseline fragment cut to its first 10 bytes."""
    return _with_frame("SC_rgb_jpeg_dcmtk.dcm", dest, lambda f: f[:10], **tags)

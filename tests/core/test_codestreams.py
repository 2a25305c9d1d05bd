"""`codestreams.declared_size`: the size a compressed frame declares, read without a decoder, and the refusal
of a frame that declares more pixels than its header before any decoder runs."""

from __future__ import annotations

import struct

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames

from medview.core.dicom import pixels
from medview.core.dicom.codestreams import declared_size
from medview.core.errors import DicomReadError
from tests.core.decoder_reproducers import jpeg2000_huge, jpeg_ls_huge


def _first_frame(name: str) -> tuple[bytes, int, int]:
    ds = pydicom.dcmread(get_testdata_file(name))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return next(generate_frames(ds.PixelData, number_of_frames=frames)), int(ds.Rows), int(ds.Columns)


@pytest.mark.parametrize("name", [
    "JPEG2000.dcm",                    # JPEG 2000, monochrome
    "US1_J2KI.dcm",                    # JPEG 2000, colour (YBR_ICT)
    "MR_small_jpeg_ls_lossless.dcm",   # JPEG-LS (SOF55)
    "SC_rgb_jpeg_dcmtk.dcm",           # JPEG baseline (SOF0), after APP segments
    "JPEG-LL.dcm",                     # JPEG lossless (SOF3)
    "JPGExtended.dcm",                 # JPEG extended (SOF1)
    "emri_small_jpeg_2k_lossless.dcm",  # multi-frame JPEG 2000
])
def test_the_size_real_codestreams_declare_is_their_headers(name):
    data, rows, columns = _first_frame(name)
    assert declared_size(data) == (rows, columns)


def test_a_codestream_in_jp2_boxes_is_read_past_them():
    data, rows, columns = _first_frame("JPEG2000.dcm")
    signature = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    file_type = struct.pack(">I4s4sI4s", 20, b"ftyp", b"jp2 ", 0, b"jp2 ")
    codestream = struct.pack(">I4s", 8 + len(data), b"jp2c") + data
    assert declared_size(signature + file_type + codestream) == (rows, columns)


def test_what_does_not_say_its_size_is_none():
    data, _, _ = _first_frame("SC_rgb_jpeg_dcmtk.dcm")
    sof = data.index(b"\xff\xc0")
    dnl = bytearray(data)
    dnl[sof + 5:sof + 7] = b"\0\0"  # 0 lines: the number follows the first scan (a DNL marker)
    for data in (b"", b"\xff\xd8", data[:sof + 6], bytes(dnl), b"\xff\xd8\xff\xda\x00\x02", b"RLE segments",
                 _first_frame("JPEG2000.dcm")[0][:20]):
        assert declared_size(data) is None


@pytest.mark.parametrize("make, declared, header", [
    (jpeg2000_huge, "20000 x 20000", "640 x 480"),
    (jpeg_ls_huge, "65535 x 65535", "64 x 64"),
])
def test_a_frame_declaring_more_pixels_than_its_header_is_refused_before_any_decoder(
        tmp_path, monkeypatch, make, declared, header):
    path = make(tmp_path / "huge.dcm")
    ds = pixels.read_dataset(path)
    monkeypatch.setattr("pydicom.pixels.pixel_array", lambda *a, **k: pytest.fail("a decoder was called"))
    with pytest.raises(DicomReadError) as refused:
        pixels.stored_frame(ds, 0)
    assert str(refused.value) == (f"{path}: the compressed data is damaged or not what the header declares "
                                  f"(a {declared} image, the header {header})")


def test_a_frame_declaring_its_headers_size_still_decodes(tmp_path):
    ds = pixels.read_dataset(get_testdata_file("US1_J2KI.dcm"))
    assert pixels.stored_frame(ds, 0).shape == (480, 640, 3)

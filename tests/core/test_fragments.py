"""Compressed frames decoded straight from their fragments (the decoder pool's fast path): the same values as
pydicom's route wherever it applies, and no answer (pydicom's route then) wherever the file is not plain.

Only valid streams are decoded here, in this process; broken ones are the decoder pool's tests
(`test_decoder_pool`), whose workers run this path first."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from medview.core.dicom import fragments, pixels

# files the fast path decodes: JPEG 2000 (lossless, lossy, multi-frame), lossless JPEG-LS (single, multi-frame)
PLAIN = ["MR_small_jp2klossless.dcm", "JPEG2000.dcm", "MR2_J2KR.dcm", "RG1_J2KI.dcm", "emri_small_jpeg_2k_lossless.dcm",
         "MR_small_jpeg_ls_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm"]
# files it leaves to pydicom: a codestream whose sign disagrees with the header, colour, near-lossless JPEG-LS,
# JPEG and RLE (no fast decoder here)
NOT_PLAIN = ["J2K_pixelrep_mismatch.dcm", "US1_J2KR.dcm", "SC_rgb_gdcm_KY.dcm", "JPEGLSNearLossless_16.dcm",
             "SC_rgb_jls_lossy_line.dcm", "JPEG-LL.dcm", "MR_small_RLE.dcm"]


def _syntax(path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


@pytest.mark.parametrize("name", PLAIN)
def test_plain_frames_are_decoded_to_pydicoms_values(name):
    path = get_testdata_file(name)
    ds = pixels.read_dataset(path)
    for frame in range(int(ds.get("NumberOfFrames", 1) or 1)):
        values = fragments.stored_frame(path, frame, _syntax(path))
        assert values is not None, f"frame {frame} not decoded by the fast path"
        expected = pixels.stored_frame(ds, frame)
        assert values.dtype == expected.dtype
        np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("name", NOT_PLAIN)
def test_files_that_are_not_plain_are_left_to_pydicom(name):
    path = get_testdata_file(name)
    assert fragments.stored_frame(path, 0, _syntax(path)) is None


def test_frames_of_several_fragments_are_found_through_the_offset_table(tmp_path):
    """Two fragments per frame: the Basic Offset Table says where each frame starts."""
    source = get_testdata_file("emri_small_jpeg_2k_lossless.dcm")
    ds = pydicom.dcmread(source)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    ds.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=True)
    path = tmp_path / "two_fragments_per_frame.dcm"
    ds.save_as(path, enforce_file_format=True)
    reference = pixels.read_dataset(source)
    for frame in range(len(frames)):
        values = fragments.stored_frame(str(path), frame, _syntax(path))
        assert values is not None
        np.testing.assert_array_equal(values, pixels.stored_frame(reference, frame))
    assert fragments.stored_frame(str(path), len(frames), _syntax(path)) is None  # past the last frame


def test_htj2k_frames_are_decoded_to_pydicoms_values(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs", reason="the HTJ2K encoder (OpenJPH) comes with imagecodecs")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = encapsulate([imagecodecs.htj2k_encode(ds.pixel_array)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"  # HTJ2K lossless
    path = tmp_path / "htj2k.dcm"
    ds.save_as(path, enforce_file_format=True)
    values = fragments.stored_frame(str(path), 0, "1.2.840.10008.1.2.4.201")
    assert values is not None
    np.testing.assert_array_equal(values, pixels.stored_frame(pixels.read_dataset(path), 0))

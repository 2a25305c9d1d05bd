"""Every image of pydicom's test files and of pydicom-data through medview's display pipeline.

What pydicom itself decodes must render to uint8 of the right shape; the rest must fail with a DicomReadError
(never another exception). Files that carry a window are compared with pydicom's own apply_modality_lut +
apply_voi_lut (+ inversion for MONOCHROME1 / INVERSE), mapped to 0..255: within one grey level.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from medview.core.dicom import pixels as px
from medview.core.errors import DicomReadError

pytestmark = pytest.mark.slow


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    files = tuple(sorted(f for f in get_testdata_files() if os.path.isfile(f)))
    assert any("data_store" in f for f in files), "pydicom-data files are not in the corpus"
    return files


def _pydicom_decodes(path: str) -> bool:
    try:
        ds = pydicom.dcmread(path, force=True)
        ds.pixel_array
    except Exception:
        return False
    return True


@pytest.fixture(autouse=True)
def _quiet():
    level = logging.getLogger("pydicom").level
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.getLogger("pydicom").setLevel(level)


def test_every_corpus_file_renders_or_fails_clearly():
    rendered, refused, problems = 0, 0, []
    for path in corpus():
        name = os.path.relpath(path, os.path.dirname(os.path.dirname(path)))
        decodable = _pydicom_decodes(path)
        try:
            ds = px.read_dataset(path)
            frames = px.number_of_frames(ds)
            img = px.display_frame(ds, 0)
            if frames > 1:
                assert px.display_frame(ds, frames - 1).shape == img.shape
        except DicomReadError as exc:
            refused += 1
            if decodable:
                problems.append(f"{name}: pydicom decodes it, medview refused: {exc}")
            elif not str(exc).startswith(path + ": ") or len(str(exc)) <= len(path) + 5:
                problems.append(f"{name}: message does not name the file and a reason: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            problems.append(f"{name}: {type(exc).__name__} instead of DicomReadError: {exc}")
            continue
        rendered += 1
        rows, cols = int(ds.Rows), int(ds.Columns)
        colour = (int(ds.get("SamplesPerPixel", 1)) == 3 or ds.PhotometricInterpretation == "PALETTE COLOR"
                  or px.supplemental_palette(ds) is not None)
        expected = (rows, cols, 3) if colour else (rows, cols)
        if img.dtype != np.uint8 or img.shape != expected:
            problems.append(f"{name}: {img.dtype} {img.shape}, expected uint8 {expected}")
    assert not problems, "\n".join(problems)
    assert rendered >= 150, f"only {rendered} corpus images rendered"
    assert refused >= 20  # the non-image and broken files of the corpus


def _reference(ds) -> np.ndarray:
    """pydicom's own pipeline for the first frame, windowed by the file's first window, mapped to 0..255."""
    ref_ds = copy.deepcopy(ds)
    if "RescaleSlope" not in ds and "ModalityLUTSequence" not in ds:
        # enhanced multi-frame: pydicom reads rescale only at the top level, so give it the functional group's
        for group in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
            seq = ds.get(group)
            if seq and "PixelValueTransformationSequence" in seq[0]:
                item = seq[0].PixelValueTransformationSequence[0]
                ref_ds.RescaleSlope, ref_ds.RescaleIntercept = item.RescaleSlope, item.RescaleIntercept
                break
    arr = ref_ds.pixel_array
    if px.number_of_frames(ds) > 1:
        arr = arr[0]
    values = apply_modality_lut(arr, ref_ds).astype(np.float64)
    out = apply_voi_lut(values, ref_ds, prefer_lut=False)
    bits = int(ds.BitsStored)
    if "ModalityLUTSequence" in ds:
        y_min, y_max = 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    elif int(ds.PixelRepresentation) == 0:
        y_min, y_max = 0.0, 2.0**bits - 1
    else:
        y_min, y_max = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    if "RescaleSlope" in ref_ds and "ModalityLUTSequence" not in ds:
        slope, intercept = float(ref_ds.RescaleSlope), float(ref_ds.RescaleIntercept)
        y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
    grey = (out - y_min) / (y_max - y_min) * 255.0
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if ds.PhotometricInterpretation == "MONOCHROME1" or inverse:  # PS3.3 C.7.6.3.1.2, C.11.6.1
        grey = 255.0 - grey
    return grey


def test_windowed_corpus_images_match_pydicom():
    compared, problems = 0, []
    for path in corpus():
        try:
            ds = px.read_dataset(path)
            if px.is_colour(ds) or "WindowCenter" not in ds or px.file_window(ds) is None:
                continue
            ds.pixel_array
        except Exception:
            continue
        ours = px.display_frame(ds, 0).astype(np.float64)
        diff = np.abs(ours - _reference(ds)).max()
        compared += 1
        if diff > 1.0:
            problems.append(f"{os.path.basename(path)}: differs from pydicom by {diff:.2f} grey levels")
    assert not problems, "\n".join(problems)
    assert compared >= 50, f"only {compared} windowed files compared"


def test_enhanced_ct_rescale_from_functional_groups_is_applied():
    """eCT_Supplemental.dcm keeps Rescale Intercept -1024 only in the shared functional groups."""
    ds = px.read_dataset(pydicom.data.get_testdata_file("eCT_Supplemental.dcm"))
    stored = px.stored_frame(ds, 1)
    np.testing.assert_allclose(px.modality_lut(stored, ds, 1), stored.astype(np.float32) - 1024.0)


def test_modality_lut_sequence_file_matches_pydicom():
    ds = px.read_dataset(pydicom.data.get_testdata_file("mlut_18.dcm"))
    stored = px.stored_frame(ds)
    np.testing.assert_array_equal(px.modality_lut(stored, ds), apply_modality_lut(stored, ds))
    assert px.display_frame(ds).shape == (int(ds.Rows), int(ds.Columns))


def test_voi_lut_sequence_file_matches_pydicom():
    ds = px.read_dataset(pydicom.data.get_testdata_file("vlut_04.dcm"))
    assert px.file_window(ds) is None and isinstance(px.display_voi(ds), px.VoiLut)
    stored = px.stored_frame(ds)
    reference = apply_voi_lut(apply_modality_lut(stored, ds), ds).astype(np.float64)
    lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
    top = 2.0 ** int(lut.max()).bit_length() - 1  # the bits the entries use (descriptor says 16)
    assert np.abs(px.display_frame(ds).astype(np.float64) - reference * 255.0 / top).max() <= 0.5 + 1e-9

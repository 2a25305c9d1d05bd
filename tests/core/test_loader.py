"""Loading stacks: the fast path gives pydicom's values, first frame first, cancel, per-file errors."""

from __future__ import annotations

import os
import threading

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, RLELossless

from medview.core.dicom.loader import fast_path, load_stack
from medview.core.dicom.model import Stack
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from tests.factories import make_zip, truncate, write_image, write_series


def _single(inst) -> Stack:
    return Stack(inst.series_uid, inst.modality, "", None, [inst], [None])


def _pydicom_frames(path) -> np.ndarray:
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if ds.original_encoding[0]
                                          else ExplicitVRBigEndian)
    arr = ds.pixel_array
    return arr if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else arr[None]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(transfer_syntax=ImplicitVRLittleEndian, signed=True),
        dict(transfer_syntax=ExplicitVRBigEndian, signed=True),
        dict(preamble=False, transfer_syntax=ExplicitVRBigEndian),
        dict(preamble=False),
        dict(bits_allocated=8),
        dict(bits_allocated=32, signed=True),
        dict(transfer_syntax=ExplicitVRBigEndian, bits_allocated=32),
        dict(samples_per_pixel=3, bits_allocated=8),
        dict(samples_per_pixel=3, bits_allocated=8, planar_configuration=1, frames=2),
        dict(samples_per_pixel=3, bits_allocated=16, transfer_syntax=ExplicitVRBigEndian),
        dict(frames=4, rows=7, cols=5),
        dict(transfer_syntax=RLELossless, frames=3),
    ],
)
def test_loaded_values_equal_pydicoms(tmp_path, kwargs):
    path = write_image(tmp_path / "img", **kwargs)
    (inst,) = scan([str(path)], use_cache=False).instances
    assert fast_path(inst) == (kwargs.get("transfer_syntax") != RLELossless)
    volume = load_stack(_single(inst))
    assert not volume.errors and volume.loaded.all()
    expected = _pydicom_frames(path)
    assert volume.array.dtype == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(volume.array, expected)


@pytest.mark.parametrize("signed", [False, True])
def test_bits_stored_masked_and_sign_extended_like_pydicom(tmp_path, signed):
    """12 bits stored in 16 with garbage (overlay-like) bits above: only the 12 bits count."""
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 1 << 16, size=(16, 16), dtype=np.uint16)
    path = write_image(tmp_path / "x.dcm", pixels=raw.view(np.int16) if signed else raw, bits_stored=12,
                       signed=signed)
    (inst,) = scan([str(path)], use_cache=False).instances
    volume = load_stack(_single(inst))
    expected = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(volume.array[0], expected)
    low = raw & 0x0FFF
    assert np.array_equal(volume.array[0], np.where(low >= 2048, low.astype(np.int32) - 4096, low) if signed else low)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fast_path_matches_pydicom_on_real_files():
    roots = [os.path.dirname(get_testdata_file("CT_small.dcm"))]
    import data_store

    roots.append(os.path.dirname(data_store.__file__))
    checked = 0
    for inst in scan(roots, use_cache=False).instances:
        if not inst.has_pixels or not fast_path(inst):
            continue
        volume = load_stack(_single(inst))
        assert not volume.errors, inst.ref.display()
        try:
            expected = _pydicom_frames(inst.ref.path)
        except Exception:  # pydicom itself cannot (e.g. NumberOfFrames "1A"): nothing to compare with
            continue
        np.testing.assert_array_equal(volume.array, expected.reshape(volume.array.shape), inst.ref.display())
        checked += 1
    assert checked > 40


def test_first_frame_first_then_the_rest_and_one_volume(tmp_path):
    write_series(tmp_path, 6)
    (study,) = build_studies(scan([str(tmp_path)], use_cache=False).instances)
    stack = study.series[0].stacks[0]
    events = []
    volume = load_stack(stack, first=4, on_frame=lambda k: events.append(("frame", k)),
                        on_volume=lambda v: events.append(("volume", v)))
    assert events[0] == ("volume", volume) and events[1] == ("frame", 4)
    assert [k for kind, k in events[1:]] == [4, 0, 1, 2, 3, 5]
    assert volume.array.shape == (6, 16, 16) and volume.loaded.all()
    assert volume.frames == [(i, 0) for i in range(6)]


def test_cancel_between_frames(tmp_path):
    write_series(tmp_path, 10)
    (study,) = build_studies(scan([str(tmp_path)], use_cache=False).instances)
    cancel = threading.Event()

    def on_frame(k):
        if k == 2:
            cancel.set()

    volume = load_stack(study.series[0].stacks[0], on_frame=on_frame, cancel=cancel)
    assert volume.cancelled
    assert volume.loaded.tolist() == [True, True, True] + [False] * 7
    assert not volume.array[3:].any()


def test_a_file_broken_after_indexing_is_an_error_and_the_rest_loads(tmp_path):
    paths = write_series(tmp_path, 4, rows=32, cols=32)
    (study,) = build_studies(scan([str(tmp_path)], use_cache=False).instances)
    truncate(paths[2], 1000)
    paths[1].unlink()
    volume = load_stack(study.series[0].stacks[0])
    assert volume.loaded.tolist() == [True, False, False, True]
    reasons = {os.path.basename(e.file): e.error for e in volume.errors}
    assert set(reasons) == {paths[1].name, paths[2].name}
    assert "cut short" in reasons[paths[2].name]
    assert "cannot be read" in reasons[paths[1].name]
    np.testing.assert_array_equal(volume.array[3], pydicom.dcmread(paths[3]).pixel_array)


def test_stack_from_a_zip_and_multiframe_frames(tmp_path):
    src = write_image(tmp_path / "src" / "mf.dcm", frames=3, rows=8, cols=9)
    zip_path = make_zip(tmp_path / "a.zip", [src], tmp_path / "src")
    (inst,) = scan([str(zip_path)], use_cache=False).instances
    volume = load_stack(_single(inst), first=2)
    assert volume.frames == [(0, 0), (0, 1), (0, 2)]
    np.testing.assert_array_equal(volume.array, pydicom.dcmread(src).pixel_array)


def test_load_uses_one_preallocated_array(tmp_path):
    """Peak memory stays near the stored bytes: frames are read in place, not stacked from copies."""
    import tracemalloc

    write_series(tmp_path, 40, rows=128, cols=128)
    (study,) = build_studies(scan([str(tmp_path)], use_cache=False).instances)
    tracemalloc.start()
    volume = load_stack(study.series[0].stacks[0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert volume.array.nbytes == 40 * 128 * 128 * 2
    assert peak < 1.15 * volume.array.nbytes


def test_stack_frames_walk_multiframe_instances_in_turn_and_the_loader_uses_them(tmp_path):
    """`Stack.frames` is the one (instance index, frame index) walk: the loader's volume maps images with it."""
    paths = [write_image(tmp_path / "a.dcm", rows=8, cols=9),
             write_image(tmp_path / "b.dcm", frames=3, rows=8, cols=9),
             write_image(tmp_path / "c.dcm", rows=8, cols=9)]
    by_name = {os.path.basename(inst.ref.path): inst for inst in scan([str(tmp_path)], use_cache=False).instances}
    instances = [by_name[p.name] for p in paths]
    stack = Stack(instances[0].series_uid, instances[0].modality, "", None, instances, [None] * 3)
    assert stack.frames == [(0, 0), (1, 0), (1, 1), (1, 2), (2, 0)]
    assert len(stack.frames) == stack.frame_count
    assert load_stack(stack).frames == stack.frames

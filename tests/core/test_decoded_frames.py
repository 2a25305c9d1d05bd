"""A compressed frame decoded once for the screen is not decoded again for the model: the frame reader (the
AI worker's and scoring's) takes the frames of a stack the viewer has loaded, and only those, while it lives."""

from __future__ import annotations

import gc
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medview.core.dicom import decoded, pixels
from medview.core.dicom.frame_reader import FrameReader
from medview.core.dicom.loader import load_stack
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies

FRAMES = 10


@pytest.fixture(params=["emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm", "emri_small_RLE.dcm"])
def stack(request, tmp_path):
    """The one stack of a 10-frame compressed MR (a copy of pydicom's, so no other test's load is found)."""
    path = tmp_path / request.param
    shutil.copy(get_testdata_file(request.param), path)
    (study,) = build_studies(scan([str(path)], use_cache=False).instances)
    return study.series[0].stacks[0]


@pytest.fixture()
def decodes(monkeypatch) -> list:
    """(file, frame) of each frame the frame reader sends to the decoder pool."""
    sent = []
    real = FrameReader._start

    def start(self, key, layout, transfer_syntax):
        sent.append(key)
        return real(self, key, layout, transfer_syntax)

    monkeypatch.setattr(FrameReader, "_start", start)
    return sent


def _read_all(stack) -> list[np.ndarray]:
    inst = stack.instances[0]
    ds = pixels.read_dataset(inst.ref, stop_before_pixels=False)
    with FrameReader() as reader:
        reader.plan((inst.ref, frame, inst) for frame in range(FRAMES))
        return [reader.stored_frame(ds, inst.ref, frame) for frame in range(FRAMES)]


def test_frames_the_viewer_decoded_are_taken_not_decoded_again(stack, decodes):
    volume = load_stack(stack)
    assert volume.loaded.all() and not volume.errors
    frames = _read_all(stack)
    assert decodes == []
    expected = pydicom.dcmread(stack.instances[0].ref.path).pixel_array
    for frame, values in enumerate(frames):
        assert np.array_equal(values, expected[frame]) and values.dtype == volume.array.dtype
        assert not np.shares_memory(values, volume.array)  # a copy: the viewer's volume is its own


def test_frames_not_loaded_yet_and_volumes_let_go_are_decoded(stack, decodes):
    volume = load_stack(stack)
    ref = stack.instances[0].ref
    volume.loaded[[2, 7]] = False  # as while the stack is still loading
    frames = _read_all(stack)
    assert sorted(frame for _, frame in decodes) == [2, 7]
    assert all(np.array_equal(values, volume.array[frame]) for frame, values in enumerate(frames))
    assert decoded.is_decoded(ref, 0)
    del volume
    gc.collect()
    assert not decoded.is_decoded(ref, 0)
    decodes.clear()
    _read_all(stack)
    assert sorted(frame for _, frame in decodes) == list(range(FRAMES))

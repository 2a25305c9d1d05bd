"""A compressed frame decoded once for the screen is not decoded again for the model: the frame reader (the
AI worker's and scoring's) takes the frames of a stack the viewer has loaded, waits for those a running load
has still to decode, and decodes the rest itself."""

from __future__ import annotations

import gc
import shutil
import threading
import time

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medview.core.dicom import decoded, pixels
from medview.core.dicom.frame_reader import FrameReader
from medview.core.dicom.loader import StackVolume, load_stack
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
    assert decoded.is_coming(ref, 0)
    del volume
    gc.collect()
    assert not decoded.is_coming(ref, 0)
    decodes.clear()
    _read_all(stack)
    assert sorted(frame for _, frame in decodes) == list(range(FRAMES))


def test_a_frame_a_running_load_has_still_to_decode_is_waited_for(stack, decodes):
    """The AI worker asks for the open case while the viewer decodes it: the frame comes from the viewer's load
    once there; a load that stops without it (cancelled: another case opened) hands it back at once. The
    screen's own readers (thumbnails) wait for no load: they decode it themselves."""
    inst = stack.instances[0]
    expected = pydicom.dcmread(inst.ref.path).pixel_array
    volume = StackVolume(stack, np.zeros_like(expected), stack.frames, np.zeros(FRAMES, bool))
    decoded.publish(volume)
    layout = (expected.shape[1:], expected.dtype)
    assert decoded.is_coming(inst.ref, 4, layout) and not decoded.is_coming(inst.ref, 4, ((7, 7), expected.dtype))

    def viewer_decodes() -> None:
        volume.array[4] = expected[4]
        volume.loaded[4] = True

    later = threading.Timer(0.2, viewer_decodes)
    later.start()
    assert np.array_equal(decoded.frame_when_ready(inst.ref, 4, layout), expected[4])
    later.join()
    with FrameReader() as thumbnails:
        assert np.array_equal(thumbnails.stored_frame(pixels.read_dataset(inst.ref), inst.ref, 6), expected[6])
    assert decodes == [(inst.ref, 6)]
    stop = threading.Timer(0.2, decoded.finished, (volume,))
    stop.start()
    assert decoded.frame_when_ready(inst.ref, 5, layout, wait_s=600) is None
    stop.join()
    assert not decoded.is_coming(inst.ref, 5, layout) and decoded.is_coming(inst.ref, 4, layout)


def test_a_decode_already_started_gives_way_to_the_viewers_frame(stack, tmp_path):
    """The AI worker's decode of a frame started before the viewer's load (the pool's decoder here waits at a
    gate that never opens): once the viewer's load has the frame, the reader takes it and drops its own."""
    from medview.core.dicom.decoder_pool import DecoderPool
    from tests.core import gated_decoder

    inst = stack.instances[0]
    ds = pixels.read_dataset(inst.ref)
    expected = pydicom.dcmread(inst.ref.path).pixel_array
    pool = DecoderPool(1, decode="tests.core.gated_decoder:decode")
    try:
        with FrameReader(pool) as reader:
            volume = StackVolume(stack, np.zeros_like(expected), stack.frames, np.zeros(FRAMES, bool))

            def viewer_decodes() -> None:
                deadline = time.monotonic() + 60
                while not gated_decoder.lines(tmp_path, "start") and time.monotonic() < deadline:
                    time.sleep(0.01)  # the reader's own decode has started
                decoded.publish(volume)
                volume.array[3] = expected[3]
                volume.loaded[3] = True

            viewer = threading.Thread(target=viewer_decodes)
            viewer.start()
            values = reader.stored_frame(ds, inst.ref, 3)
            viewer.join()
        assert np.array_equal(values, expected[3])
        assert gated_decoder.lines(tmp_path, "start") and not gated_decoder.lines(tmp_path, "done")
    finally:
        pool.shutdown()

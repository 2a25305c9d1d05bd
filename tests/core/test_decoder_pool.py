"""The decoder pool: compressed frames decoded in worker processes into shared memory, pydicom's values,
crashing decoders that cost only their file (real reproducers, `decoder_reproducers`), decode order
outward from the shown frame, cancel, and `render` / `infer` on folders holding such files."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medview.cli import main
from medview.core.dicom import pixels
from medview.core.dicom.decoder_pool import DecoderPool, SharedFrames, codec_name
from medview.core.dicom.frame_reader import FrameReader
from medview.core.dicom.loader import FrameFocus, load_stack
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.dicom.source import SourceRef
from medview.core.errors import DicomReadError
from medview.core.png import read_png
from tests.core import gated_decoder
from tests.core.decoder_reproducers import (
    jpeg2000_crash,
    jpeg2000_huge,
    jpeg_bits_allocated_64,
    jpeg_cut_short,
    jpeg_lossless_crash,
    jpeg_ls_crash,
    jpeg_ls_huge,
    rle_panic,
    ybr_rct_as_monochrome1,
)
from tests.factories import copy_testdata, write_image

# pydicom's and pydicom-data's compressed test files: every codec, colour, palette, multi-frame
CORPUS = [
    # JPEG-LS
    "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "SC_rgb_jls_lossy_line.dcm", "emri_small_jpeg_ls_lossless.dcm",
    # JPEG 2000
    "JPEG2000.dcm", "MR_small_jp2klossless.dcm", "US1_J2KR.dcm", "US1_J2KI.dcm", "693_J2KI.dcm",
    "J2K_pixelrep_mismatch.dcm", "GDCMJ2K_TextGBR.dcm", "SC_rgb_gdcm_KY.dcm", "emri_small_jpeg_2k_lossless.dcm",
    # RLE
    "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_32bit.dcm",
    "OBXXXX1A_rle_2frame.dcm", "emri_small_RLE.dcm", "rtdose_rle.dcm",
    # JPEG baseline, lossless; a 12-bit extended one python-gdcm cannot decode (an error both ways)
    "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_jpeg_no_color_transform.dcm",
    "examples_ybr_color.dcm", "SC_rgb_small_odd_jpeg.dcm", "JPEG-LL.dcm", "SC_rgb_jpeg_gdcm.dcm",
    "JPGExtended.dcm",
]


@pytest.fixture(scope="module")
def pool():
    pool = DecoderPool(2)
    yield pool
    pool.shutdown()


def _stack_of(*paths):
    found = scan([str(p) for p in paths], use_cache=False)
    (study,) = build_studies(found.instances)
    (stack,) = study.stacks
    return stack


def _in_process(path, frame: int = 0) -> np.ndarray:
    return pixels.stored_frame(pixels.read_dataset(path), frame)


@pytest.mark.parametrize("name", CORPUS)
def test_stack_decoded_in_the_pool_equals_pydicoms_values(pool, name):
    path = get_testdata_file(name)
    stack = _stack_of(path)
    (inst,) = stack.instances
    assert inst.encapsulated
    volume = load_stack(stack, pool=pool)
    try:
        expected = np.stack([_in_process(path, f) for f in range(max(1, inst.frames))])
    except DicomReadError as exc:  # what pydicom cannot decode here is the same reason from the pool
        assert [e.error for e in volume.errors] == [str(exc).split(": ", 1)[1]]
        assert not volume.loaded.any()
        return
    assert not volume.errors and volume.loaded.all()
    assert volume.array.dtype == expected.dtype
    np.testing.assert_array_equal(volume.array, expected)


def test_frame_reader_decodes_only_the_frame_asked_for(pool):
    multi = SourceRef(get_testdata_file("emri_small_jpeg_ls_lossless.dcm"))
    colour = SourceRef(get_testdata_file("examples_ybr_color.dcm"))
    with FrameReader(pool) as reader:
        reader.plan([(multi, 3, None), (colour, 7, None)])
        for ref, frame in ((multi, 3), (colour, 7)):
            ds = pixels.read_dataset(ref)
            np.testing.assert_array_equal(reader.stored_frame(ds, ref, frame), pixels.stored_frame(ds, frame))


def test_shared_frames_outlive_their_owner_while_a_view_is_used():
    frames = SharedFrames((3, 4, 5), np.int16)
    view = frames.array[1]
    view[...] = 7
    frames.unlink()
    del frames
    assert view.sum() == 7 * 20  # the memory is still mapped: the view keeps its owner alive


def test_a_worker_attaches_to_a_segment_without_registering_it_with_the_resource_tracker(monkeypatch):
    """The parent created and registered the segment and unlinks it; a worker's own registration could reach
    the tracker after that and be reported, at exit, as a leaked segment that no longer exists."""
    from multiprocessing import resource_tracker

    from medview.core.dicom._decoder_process import _Segments
    from medview.core.dicom.decoder_pool import DecodeTask

    frames = SharedFrames((2, 4, 5), np.uint16)
    if frames.segment[0] != "shm":
        pytest.skip("/dev/shm has no room here: the frames are a mapped file")
    registered = []

    def recorder(name, rtype):
        registered.append((name, rtype))

    monkeypatch.setattr(resource_tracker, "register", recorder)
    segments = _Segments()
    task = DecodeTask(1, "x.dcm", None, 1, "", frames.segment, frames.shape, frames.dtype.str, 1)
    segments.slot(task)[...] = 7
    assert frames.array[1].sum() == 7 * 20 and frames.array[0].sum() == 0
    assert registered == []
    assert resource_tracker.register is recorder  # put back once attached
    segments.close(frames.segment)
    frames.unlink()


def _broken_folder(folder):
    """The reproducers beside good compressed and uncompressed files."""
    broken = {
        "jls.dcm": (jpeg_ls_crash, "the JPEG-LS decoder crashed on this file"),
        "jls_huge.dcm": (jpeg_ls_huge, "the compressed data is damaged or not what the header declares "
                                       "(a 65535 x 65535 image, the header 64 x 64)"),
        "j2k_huge.dcm": (jpeg2000_huge, "the compressed data is damaged or not what the header declares "
                                        "(a 20000 x 20000 image, the header 640 x 480)"),
        "j2k.dcm": (jpeg2000_crash, "the JPEG 2000 decoder crashed on this file"),
        "rct_mono1.dcm": (ybr_rct_as_monochrome1, "the JPEG 2000 decoder crashed on this file"),
        "jll.dcm": (jpeg_lossless_crash, "the JPEG lossless decoder crashed on this file"),
        "jpeg64.dcm": (jpeg_bits_allocated_64, "the JPEG baseline decoder crashed on this file"),
        "rle.dcm": (rle_panic, "the RLE decoder failed on this file (PanicException: "),
        "jpeg_cut.dcm": (jpeg_cut_short, "cannot decode the compressed pixel data (JPEG Baseline (Process 1))"),
    }
    for name, (make, _) in broken.items():
        make(folder / name)
    good = [copy_testdata(name, folder / name) for name in
            ("MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm")]
    good.append(write_image(folder / "plain.dcm", rows=16, cols=12))
    return {name: reason for name, (_, reason) in broken.items()}, good


@pytest.mark.slow
@pytest.mark.parametrize("make", [jpeg_ls_crash, jpeg2000_crash, ybr_rct_as_monochrome1, jpeg_lossless_crash,
                                  jpeg_bits_allocated_64])
def test_the_reproducers_abort_a_process_that_decodes_them_itself(tmp_path, make):
    """What the pool protects from is real: pydicom's decoders, in-process, kill the interpreter."""
    import signal
    import subprocess
    import sys

    path = make(tmp_path / "crash.dcm")
    code = "import sys; from medview.core.dicom import pixels; pixels.stored_frame(pixels.read_dataset(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGABRT, done.stderr[-300:]


def test_a_crashing_decoder_costs_its_file_only_and_the_pool_goes_on(pool, tmp_path):
    reasons, good = _broken_folder(tmp_path)
    crashes = pool.crashes
    refs = [SourceRef(str(tmp_path / name)) for name in sorted(os.listdir(tmp_path))]
    got, failed = {}, {}
    with FrameReader(pool) as reader:
        reader.plan((ref, 0, None) for ref in refs)
        for ref in refs:
            ds = pixels.read_dataset(ref)
            try:
                got[os.path.basename(ref.path)] = reader.stored_frame(ds, ref, 0)
            except DicomReadError as exc:
                failed[os.path.basename(ref.path)] = str(exc)
    assert set(failed) == set(reasons)
    for name, reason in reasons.items():
        assert failed[name].startswith(f"{tmp_path / name}: {reason}")
    assert pool.crashes == crashes + 5  # the aborts; the PanicException was caught in its worker
    for path in good:
        np.testing.assert_array_equal(got[path.name], _in_process(path))
    # the pool replaced its workers and decodes as before
    again = get_testdata_file("US1_J2KR.dcm")
    np.testing.assert_array_equal(load_stack(_stack_of(again), pool=pool).array[0], _in_process(again))


def test_a_crashing_file_in_a_stack_is_one_error_and_the_other_slices_load(pool, tmp_path):
    for i in range(5):
        tags = dict(SOPInstanceUID=f"1.2.826.0.1.3680043.8.498.{i + 1}", InstanceNumber=i + 1,
                    ImagePositionPatient=[0, 0, float(i)])
        make = jpeg_ls_crash if i == 2 else copy_testdata
        if make is copy_testdata:
            copy_testdata("MR_small_jpeg_ls_lossless.dcm", tmp_path / f"s{i}.dcm", **tags)
        else:
            jpeg_ls_crash(tmp_path / f"s{i}.dcm", **tags)
    stack = _stack_of(tmp_path)
    volume = load_stack(stack, pool=pool, first=2)
    assert [(os.path.basename(e.file), e.error) for e in volume.errors] == [
        ("s2.dcm", "the JPEG-LS decoder crashed on this file")]
    assert volume.loaded.tolist() == [True, True, False, True, True]
    expected = _in_process(tmp_path / "s0.dcm")
    for k in (0, 1, 3, 4):
        np.testing.assert_array_equal(volume.array[k], expected)


def _wait_for(condition, what: str) -> None:
    end = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)


def _gated_jobs(folder, n: int):
    target = SharedFrames((n, 2, 2), np.int16)
    ref = SourceRef(str(folder / "frames.dcm"))  # only its folder matters to the gated decoder
    return target, [(k, ref, k, target, k, "1.2.840.10008.1.2.4.90", None) for k in range(n)]


def test_frames_decode_outward_from_the_focus_and_follow_it(tmp_path):
    pool = DecoderPool(1, decode="tests.core.gated_decoder:decode")
    try:
        target, jobs = _gated_jobs(tmp_path, 10)
        with pool.batch(centre=5) as batch:
            batch.submit_many(jobs)
            _wait_for(lambda: gated_decoder.lines(tmp_path, "start") == [5], "the first job")
            batch.focus(8)  # the reader moved while frame 5 was decoding (6 was queued behind it)
            (tmp_path / "gate").touch()
            results = [batch.next_result(60) for _ in range(10)]
        assert [r.key for r in results] == [5, 6, 8, 9, 7, 4, 3, 2, 1, 0]
        assert all(r.error is None for r in results)
        assert [int(target.array[k, 0, 0]) for k in range(10)] == list(range(10))  # written in place
    finally:
        pool.shutdown()


def test_cancel_drops_what_is_pending_and_the_running_frame_finishes(tmp_path):
    pool = DecoderPool(1, decode="tests.core.gated_decoder:decode")
    try:
        _, jobs = _gated_jobs(tmp_path, 6)
        with pool.batch(centre=0) as batch:
            batch.submit_many(jobs)
            _wait_for(lambda: gated_decoder.lines(tmp_path, "start") == [0], "the first job")
            assert batch.cancel() == {2, 3, 4, 5}  # 1 was queued behind the running one: it is decoded
            (tmp_path / "gate").touch()
            assert [batch.next_result(60).key, batch.next_result(60).key] == [0, 1]
            assert batch.next_result(0.5) is None
        assert gated_decoder.lines(tmp_path, "done") == [0, 1]
    finally:
        pool.shutdown()


def test_without_queued_jobs_the_order_follows_the_focus_from_the_next_frame(tmp_path):
    pool = DecoderPool(1, decode="tests.core.gated_decoder:decode", queued=0)
    try:
        _, jobs = _gated_jobs(tmp_path, 10)
        with pool.batch(centre=5) as batch:
            batch.submit_many(jobs)
            _wait_for(lambda: gated_decoder.lines(tmp_path, "start") == [5], "the first job")
            batch.focus(8)
            assert batch.cancel([0]) == {0}
            (tmp_path / "gate").touch()
            assert [batch.next_result(60).key for _ in range(9)] == [5, 8, 9, 7, 6, 4, 3, 2, 1]
    finally:
        pool.shutdown()


def test_frames_queued_behind_a_crash_go_back_and_are_decoded(tmp_path):
    """One worker: the crashing file's frame runs, the valid file's is queued behind it in the same worker;
    the crash costs the crashing file only, the queued frame is decoded by the next worker."""
    crashing = jpeg_ls_crash(tmp_path / "crash.dcm")
    valid = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    pool = DecoderPool(1)
    try:
        target = SharedFrames((2, 64, 64), np.int16)
        with pool.batch(centre=0) as batch:
            batch.submit_many([("crash", SourceRef(str(crashing)), 0, target, 0, "1.2.840.10008.1.2.4.80", 0),
                               ("valid", SourceRef(valid), 0, target, 1, "1.2.840.10008.1.2.4.80", 1)])
            results = {r.key: r for r in (batch.next_result(60), batch.next_result(60))}
        assert results["crash"].crashed and results["crash"].error == "the JPEG-LS decoder crashed on this file"
        assert results["valid"].error is None and pool.crashes == 1
        np.testing.assert_array_equal(target.array[1], _in_process(valid))
    finally:
        pool.shutdown()


def test_frame_focus_reorders_a_load_in_progress(tmp_path):
    """`load_stack` hands its FrameFocus the batch: setting it re-sorts the frames still to decode."""
    pool = DecoderPool(1, decode="tests.core.gated_decoder:decode")
    try:
        for i in range(6):
            copy_testdata("MR_small_jpeg_ls_lossless.dcm", tmp_path / f"s{i}.dcm",
                          SOPInstanceUID=f"1.2.826.0.1.3680043.8.498.{i + 1}", InstanceNumber=i + 1,
                          ImagePositionPatient=[0, 0, float(i)])
        stack = _stack_of(tmp_path)
        focus = FrameFocus(1)
        loaded = []

        def moved_once_started():
            _wait_for(lambda: gated_decoder.lines(tmp_path, "start") == [1], "the first frame")
            focus.set(4)
            (tmp_path / "gate").touch()

        mover = threading.Thread(target=moved_once_started)
        mover.start()
        volume = load_stack(stack, pool=pool, first=1, focus=focus, on_frame=loaded.append)
        mover.join()
        assert loaded == [1, 2, 4, 5, 3, 0]  # 2 was queued behind 1 when the reader moved
        assert volume.loaded.all() and [int(volume.array[k, 0, 0]) for k in range(6)] == list(range(6))
    finally:
        pool.shutdown()


def test_a_decoder_that_never_finishes_is_stopped_at_its_time_limit(tmp_path):
    """The gate never opens: the worker is killed at the job's limit, the file reported, the next job runs."""
    pool = DecoderPool(1, decode="tests.core.gated_decoder:decode", time_limit=lambda task: 1.0)
    try:
        _, jobs = _gated_jobs(tmp_path, 2)
        with pool.batch(centre=0) as batch:
            batch.submit_many(jobs[:1])
            result = batch.next_result(60)
            assert result.key == 0 and result.crashed
            assert result.error == "the JPEG 2000 decoder did not finish within 1 s on this file"
            (tmp_path / "gate").touch()
            batch.submit_many(jobs[1:])
            assert batch.next_result(60).error is None
    finally:
        pool.shutdown()


def _worker_of_one_job(pool: DecoderPool, tmp_path) -> int:
    """Runs one job with `gated_decoder.process_id`; the process id of the worker that ran it."""
    target = SharedFrames((1, 1), np.int64)
    with pool.batch() as batch:
        batch.submit(0, SourceRef(str(tmp_path / "frames.dcm")), 0, target, 0, "1.2.840.10008.1.2.4.90")
        assert batch.next_result(60).error is None
    return int(target.array[0, 0])


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_idle_workers_stop_and_the_next_job_starts_one_again(tmp_path):
    pool = DecoderPool(1, decode="tests.core.gated_decoder:process_id", idle_timeout=0)
    try:
        first = _worker_of_one_job(pool, tmp_path)
        _wait_for(lambda: pool.worker_pids() == [] and _process_gone(first), "the idle worker to stop")
        second = _worker_of_one_job(pool, tmp_path)
        assert second != first and pool.crashes == 0
    finally:
        pool.shutdown()


def test_workers_that_stop_at_once_when_idle_still_load_a_whole_stack():
    pool = DecoderPool(2, idle_timeout=0)
    try:
        path = get_testdata_file("emri_small_jpeg_2k_lossless.dcm")
        for _ in range(2):
            volume = load_stack(_stack_of(path), pool=pool)
            assert volume.loaded.all() and not volume.errors
            np.testing.assert_array_equal(volume.array, np.stack([_in_process(path, f) for f in range(10)]))
    finally:
        pool.shutdown()


def test_a_worker_within_its_idle_time_serves_the_next_job(tmp_path):
    pool = DecoderPool(1, decode="tests.core.gated_decoder:process_id", idle_timeout=None)
    try:
        first = _worker_of_one_job(pool, tmp_path)
        assert pool.worker_pids() == [first]
        assert _worker_of_one_job(pool, tmp_path) == first
    finally:
        pool.shutdown()


def test_without_room_in_dev_shm_the_frames_go_to_a_mapped_file(pool, monkeypatch):
    from medview.core.dicom import decoder_pool

    monkeypatch.setattr(decoder_pool, "_shm_room", lambda: 0)
    path = get_testdata_file("emri_small_jpeg_2k_lossless.dcm")
    volume = load_stack(_stack_of(path), pool=pool)
    assert volume.array.base.segment[0] == "file" and not os.path.exists(volume.array.base.segment[1])
    np.testing.assert_array_equal(volume.array, np.stack([_in_process(path, f) for f in range(10)]))


def test_codec_names_come_from_the_transfer_syntax():
    assert codec_name("1.2.840.10008.1.2.4.80") == "JPEG-LS"
    assert codec_name("1.2.840.10008.1.2.4.201") == "HTJ2K"
    assert codec_name("1.2.840.10008.1.2.5") == "RLE"
    assert codec_name("1.2.3") == "image"


# --------------------------------------------------------------------------------------------- commands


def test_render_reports_the_crashing_files_and_writes_the_others(tmp_path, capsys):
    folder = tmp_path / "studies"
    folder.mkdir()
    reasons, good = _broken_folder(folder)
    out = tmp_path / "out"
    rc = main(["render", str(folder), "--out-dir", str(out)])
    stdout, stderr = capsys.readouterr()
    lines = {os.path.basename(line["input"]): line for line in map(json.loads, stdout.splitlines())}
    assert rc == 1
    assert set(lines) == set(reasons) | {p.name for p in good}
    for name, reason in reasons.items():
        assert lines[name]["status"] == "error" and lines[name]["error"].startswith(reason)
    assert sorted(stderr.splitlines()) == sorted(f"{folder / name}: {lines[name]['error']}" for name in reasons)
    for path in good:
        line = lines[path.name]
        assert line["status"] == "ok"
        expected = pixels.display_frame(pixels.read_dataset(path))
        np.testing.assert_array_equal(read_png(line["output"]), expected)


def test_infer_scores_the_others_and_reports_the_crashing_file(tmp_path, capsys):
    from tests.inference_factory import make_bundle

    folder = tmp_path / "studies"
    jpeg_ls_crash(folder / "crash.dcm", Modality="DX", SOPInstanceUID="1.2.826.0.1.3680043.8.498.90")
    copy_testdata("MR_small_jpeg_ls_lossless.dcm", folder / "jls.dcm", Modality="DX",
                  SOPInstanceUID="1.2.826.0.1.3680043.8.498.91")
    copy_testdata("MR_small_jp2klossless.dcm", folder / "j2k.dcm", Modality="DX",
                  SOPInstanceUID="1.2.826.0.1.3680043.8.498.92")
    write_image(folder / "plain.dcm", modality="DX", rows=40, cols=36, sop_uid="1.2.826.0.1.3680043.8.498.93")
    model = make_bundle(tmp_path / "model")
    rc = main(["infer", str(folder), "--model", str(model), "--json", "--no-cache"])
    stdout, stderr = capsys.readouterr()
    lines = {os.path.basename(line["file"]): line for line in map(json.loads, stdout.splitlines())}
    assert rc == 1
    crash = lines["crash.dcm"]
    assert crash["status"] == "error" and crash["error"].endswith("the JPEG-LS decoder crashed on this file")
    assert str(folder) not in crash["error"]  # the line names the file; its reason does not again
    (told,) = stderr.splitlines()
    assert told == f"{folder / 'crash.dcm'}: {crash['error']}"
    assert {name: line["status"] for name, line in lines.items() if name != "crash.dcm"} == {
        "jls.dcm": "ok", "j2k.dcm": "ok", "plain.dcm": "ok"}


def test_infer_reports_each_failed_frame_in_json_and_each_reason_once_on_stderr(tmp_path, capsys):
    """A multi-frame file whose second frame crashes its decoder: the frame before it is scored; that frame and
    every later one (a file a decoder crashed on is not handed to one again) get a JSON error line saying
    which frame, and the file one stderr line, not one per frame."""
    from tests.inference_factory import make_bundle

    folder = tmp_path / "studies"
    cine = jpeg_ls_crash(folder / "cine.dcm", name="emri_small_jpeg_ls_lossless.dcm", frame=1,
                         Modality="DX", SOPInstanceUID="1.2.826.0.1.3680043.8.498.94")
    model = make_bundle(tmp_path / "model")
    rc = main(["infer", str(folder), "--model", str(model), "--json", "--no-cache"])
    stdout, stderr = capsys.readouterr()
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert rc == 1
    failed = [line for line in lines if line["status"] == "error"]
    assert [line["frame"] for line in failed] == list(range(1, 10))
    assert all(line["error"].endswith("the JPEG-LS decoder crashed on this file") for line in failed)
    assert [line["frame"] for line in lines if line["status"] == "ok"] == [0]
    assert stderr.splitlines() == [f"{cine} [frame 1]: {failed[0]['error']}"]


def test_a_compressed_segmentation_is_decoded_in_the_pool_like_an_uncompressed_one(tmp_path):
    """An RLE SEG (the usual compressed SEG, whose decoder can panic) gives the masks of the same SEG unpacked."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    from medview.core.dicom.incoming import read_incoming
    from tests.core.test_incoming import _highdicom_seg

    image = write_image(tmp_path / "cxr.dcm", modality="CR", rows=16, cols=16, position=None, orientation=None,
                        slice_thickness=None,
                        extra={"PatientBirthDate": "19500101", "PatientSex": "M", "ReferringPhysicianName": ""})
    source = pydicom.dcmread(image)
    masks = {}
    for syntax in (ExplicitVRLittleEndian, RLELossless):
        folder = tmp_path / syntax.name.split()[0]
        folder.mkdir()
        (folder / "cxr.dcm").write_bytes(image.read_bytes())
        seg = _highdicom_seg(source)
        if syntax == RLELossless:
            seg.compress(RLELossless, encoding_plugin="pydicom")
        seg.save_as(folder / "seg.dcm", enforce_file_format=True)
        assert pydicom.dcmread(folder / "seg.dcm").file_meta.TransferSyntaxUID == syntax
        found = read_incoming(build_studies(scan([str(folder)], use_cache=False).instances)[0].objects)
        assert not found.problems
        masks[syntax] = [m.mask for m in found.masks_on(source.SOPInstanceUID, 0)]
    assert len(masks[RLELossless]) == 2
    for plain, packed in zip(masks[ExplicitVRLittleEndian], masks[RLELossless]):
        np.testing.assert_array_equal(plain, packed)

"""FrameScorer, the scoring loop of the app's AI worker and `medview infer`: each file read once for all its
frames, a result per frame, per-image errors that name the file, the cache, model failures, cancelling."""

from __future__ import annotations

import pytest
from pydicom.data import get_testdata_file

from medview.core.dicom import pixels
from medview.core.dicom.source import SourceRef
from medview.core.inference.bundle import load_bundle
from medview.core.inference.cache import ResultCache
from medview.core.inference.engine import Engine
from medview.core.inference.results import ERROR, NOT_APPLICABLE, OK, InferenceJob
from medview.core.inference.scoring import FrameScorer
from tests.factories import truncate, write_image
from tests.inference_factory import count_pixel_reads, make_bundle

MULTI_FRAME = get_testdata_file("emri_small.dcm")  # pydicom-data: MR, 10 frames of 64 x 64
FRAMES = 10


@pytest.fixture()
def engine(tmp_path) -> Engine:
    """A small batch, so the ten frames span three batches."""
    bundle = load_bundle(make_bundle(tmp_path / "model", modalities=("MR", "DX")))
    return Engine(bundle, device="cpu", batch_size=4)


@pytest.fixture()
def pixel_reads(monkeypatch) -> list:
    return count_pixel_reads(monkeypatch)


def _jobs(path, frames: int, modality: str = "MR", sop: str = "1.2.3") -> list[InferenceJob]:
    return [InferenceJob("S", "S.1", sop, SourceRef(str(path)), modality, f) for f in range(frames)]


def test_a_multi_frame_file_is_read_once_and_scored_per_frame(engine, pixel_reads):
    results = list(FrameScorer(engine).score(_jobs(MULTI_FRAME, FRAMES)))
    assert len(pixel_reads) == 1
    assert [(r.status, r.job.frame) for r in results] == [(OK, f) for f in range(FRAMES)]

    ds = pixels.read_dataset(MULTI_FRAME)
    expected = engine.predict_datasets([(ds, f) for f in range(FRAMES)])
    scores = [r.prediction.scores["cardiomegaly"] for r in results]
    assert scores == pytest.approx([p.scores["cardiomegaly"] for p in expected], abs=1e-6)
    assert len({round(s, 4) for s in scores}) > 1  # each frame's own pixels, not frame 0 ten times


def test_a_file_is_kept_between_calls_until_its_last_frame(engine, pixel_reads):
    """The worker scores a multi-frame file in batches of its queue: still one read; then it is let go."""
    scorer, jobs = FrameScorer(engine), _jobs(MULTI_FRAME, FRAMES)
    for start in range(0, FRAMES, 3):
        assert all(r.status == OK for r in scorer.score(jobs[start:start + 3]))
    assert len(pixel_reads) == 1
    list(scorer.score(jobs[:1]))
    assert len(pixel_reads) == 2


def test_bad_files_are_errors_naming_them_and_the_rest_go_on(engine, tmp_path, pixel_reads):
    cut_header = truncate(write_image(tmp_path / "cut_header.dcm", modality="DX", rows=64, cols=64), 300)
    short_pixels = truncate(write_image(tmp_path / "short_pixels.dcm", modality="DX", rows=64, cols=64), -2000)
    good = write_image(tmp_path / "good.dcm", modality="DX", rows=32, cols=32)
    ct = write_image(tmp_path / "ct.dcm", modality="CT")
    jobs = (_jobs(cut_header, 3, "DX", "cut") + _jobs(tmp_path / "gone.dcm", 1, "DX", "gone")
            + _jobs(short_pixels, 1, "DX", "short") + _jobs(ct, 1, "CT", "ct") + _jobs(good, 1, "DX", "good"))
    results = {(r.job.sop_instance_uid, r.job.frame): r for r in FrameScorer(engine).score(jobs)}
    assert len(results) == len(jobs)
    for key, name in [(("cut", 0), "cut_header.dcm"), (("cut", 2), "cut_header.dcm"), (("gone", 0), "gone.dcm"),
                      (("short", 0), "short_pixels.dcm")]:
        found = results[key]
        # the result names its file (its job's); the reason says what is wrong without naming it again
        assert found.status == ERROR and found.job.ref.display().endswith(name)
        assert found.error and str(tmp_path) not in found.error
    assert pixel_reads.count(str(cut_header)) == 1  # its three frames: one attempt
    assert results[("ct", 0)].status == NOT_APPLICABLE and ct.as_posix() not in pixel_reads
    assert results[("good", 0)].status == OK


def test_cached_frames_run_neither_the_model_nor_a_read(engine, tmp_path, pixel_reads, monkeypatch):
    cache = ResultCache(tmp_path / "cache.sqlite")
    first = list(FrameScorer(engine, cache).score(_jobs(MULTI_FRAME, 3)))
    pixel_reads.clear()
    monkeypatch.setattr(engine, "predict_images", lambda images, **_: pytest.fail("the model ran on cached frames"))
    again = list(FrameScorer(engine, cache).score(_jobs(MULTI_FRAME, 3)))
    assert all(r.cached and r.status == OK for r in again) and not pixel_reads
    assert [r.prediction.scores for r in again] == [r.prediction.scores for r in first]


def test_a_failing_model_is_an_error_per_image_or_raised(engine, monkeypatch):
    def broken(images, **_):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine, "predict_images", broken)
    results = list(FrameScorer(engine).score(_jobs(MULTI_FRAME, 5)))
    assert [r.status for r in results] == [ERROR] * 5
    assert results[0].error == "the model failed on this image: out of memory"
    with pytest.raises(RuntimeError, match="out of memory"):
        list(FrameScorer(engine, raise_model_failures=True).score(_jobs(MULTI_FRAME, 5)))


def test_cancelling_stops_before_the_next_batch(engine, monkeypatch):
    """The batch the model already answered is delivered; nothing more is read or run."""
    runs = []
    real = engine.predict_images
    monkeypatch.setattr(engine, "predict_images", lambda images, **kw: runs.append(len(images)) or real(images, **kw))
    results = []
    for result in FrameScorer(engine).score(_jobs(MULTI_FRAME, FRAMES), cancelled=lambda: bool(results)):
        results.append(result)
    assert runs == [engine.batch_size]
    assert [r.job.frame for r in results] == list(range(engine.batch_size))


def test_with_several_lanes_a_cancel_runs_at_most_the_batch_queued_behind(engine, monkeypatch):
    """Several lanes take the next batch as soon as it is read; a cancel after the first batch's answers
    delivers only those, and nothing after the batch queued behind it is run."""
    runs = []
    real = engine.predict_images
    monkeypatch.setattr(engine, "predict_images", lambda images, **kw: runs.append(len(images)) or real(images, **kw))
    jobs = [job for sop in ("1.2.3", "1.2.4", "1.2.5") for job in _jobs(MULTI_FRAME, FRAMES, sop=sop)]
    results = []
    for result in FrameScorer(engine, lanes=2).score(jobs, cancelled=lambda: bool(results)):
        results.append(result)
    assert [r.job.frame for r in results] == list(range(engine.batch_size))
    assert engine.batch_size <= sum(runs) <= 2 * engine.batch_size
    assert all(n == engine.batch_size // 2 for n in runs)  # each batch shared over the two lanes


def test_lanes_give_each_image_the_answer_of_one_engine_alone_in_job_order(tmp_path):
    """With an engine built for three single-threaded ONNX Runtime calls at once, each batch is shared out
    over three lanes (each share one network call) while the next batch is read: every image gets the
    answer an engine of one call gives it, and the results come in the jobs' order, bad files included."""
    import numpy as np
    import torch

    pytest.importorskip("onnxruntime")
    bundle = load_bundle(make_bundle(tmp_path / "model", modalities=("MR", "DX"), onnx=True))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = Engine(bundle, device="cpu", batch_size=4)
        torch.set_num_threads(3)
        shared = Engine(bundle, device="cpu", batch_size=4)
    finally:
        torch.set_num_threads(threads)
    assert (alone.parallel_calls, shared.parallel_calls) == (1, 3)
    rng = np.random.default_rng(7)
    singles = [write_image(tmp_path / f"dx{i}.dcm", modality="DX", rows=48, cols=40,
                           pixels=rng.integers(0, 4096, (48, 40), dtype=np.uint16)) for i in range(5)]
    cut = truncate(write_image(tmp_path / "cut.dcm", modality="DX", rows=64, cols=64), 300)
    jobs = (_jobs(MULTI_FRAME, FRAMES) + [job for i, path in enumerate(singles[:3])
                                          for job in _jobs(path, 1, "DX", f"dx{i}")]
            + _jobs(cut, 1, "DX", "cut") + [job for i, path in enumerate(singles[3:], 3)
                                            for job in _jobs(path, 1, "DX", f"dx{i}")])
    shared.warm_up()
    calls = []
    run = shared._session.run
    shared._session.run = lambda names, feed: calls.append(len(next(iter(feed.values())))) or run(names, feed)

    expected = list(FrameScorer(alone).score(jobs))
    results = list(FrameScorer(shared).score(jobs))

    assert [(r.job.sop_instance_uid, r.job.frame, r.status) for r in results] == \
        [(r.job.sop_instance_uid, r.job.frame, r.status) for r in expected]
    assert [r.status for r in results].count(ERROR) == 1 and len(results) == len(jobs)
    for a, b in zip(results, expected):
        if b.status == OK:
            assert a.prediction.scores == b.prediction.scores
            assert np.array_equal(a.prediction.heatmap, b.prediction.heatmap)
    assert max(calls) <= 2 and sum(calls) == len(jobs) - 1  # shares of at most two images, one call each
    # the app's one lane: the engine splits each batch's network run over its calls itself
    calls.clear()
    one_lane = list(FrameScorer(shared, lanes=1).score(jobs))
    assert [r.prediction.scores for r in one_lane if r.status == OK] == \
        [r.prediction.scores for r in expected if r.status == OK]
    assert max(calls) <= 2 and sum(calls) == len(jobs) - 1


def test_compressed_frames_are_decoded_in_the_pool_and_the_viewers_header_is_not_read_again(engine, tmp_path,
                                                                                            monkeypatch):
    """Jobs with the scan's facts: a compressed file's pixel data is never read in this process (the pool
    decodes it from the file), and a header the viewer has read (and still keeps) is not parsed again."""
    import shutil

    import pydicom

    from medview.core.dicom import decoded
    from medview.core.dicom.scan import scan

    path = tmp_path / "emri_small_jpeg_2k_lossless.dcm"
    shutil.copy(get_testdata_file(path.name), path)
    (instance,) = scan([str(path)], use_cache=False).instances
    reads, parses = [], []
    read, parse = pixels.read_dataset, pydicom.dcmread
    monkeypatch.setattr(pixels, "read_dataset", lambda ref, **kw: reads.append(bool(kw.get("stop_before_pixels")))
                        or read(ref, **kw))
    monkeypatch.setattr(pydicom, "dcmread", lambda fp, *a, **kw: parses.append(fp) or parse(fp, *a, **kw))
    results = list(FrameScorer(engine).score(InferenceJob.for_instance(instance)))
    assert [r.status for r in results] == [OK] * FRAMES
    assert reads == [True]  # its header only, once for its ten frames
    assert parses == []  # by the lean walk: pydicom's reader parses nothing, the pixel data least of all
    expected = engine.predict_datasets([(pixels.read_dataset(path), f) for f in range(FRAMES)])
    assert [r.prediction.scores for r in results] == [p.scores for p in expected]

    header = pixels.read_dataset(path, stop_before_pixels=True)
    decoded.publish_header(instance.ref, header)  # as the viewer's loader does
    reads.clear()
    again = list(FrameScorer(engine).score(InferenceJob.for_instance(instance)))
    assert reads == [] and [r.prediction.scores for r in again] == [r.prediction.scores for r in results]
    del header
    assert decoded.header_of(instance.ref) is None  # a header the viewer let go is forgotten

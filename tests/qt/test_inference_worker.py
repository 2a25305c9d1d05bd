"""The AI worker thread: queue, priority of the open case, progress, cancel, per-image errors, cache, stop."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QThread

from medview.core.dicom.source import SourceRef
from medview.qt.workers.inference import ERROR, NOT_APPLICABLE, OK, InferenceJob, InferenceResult, InferenceWorker
from tests.factories import write_image
from tests.inference_factory import make_bundle


def _job(path, study, modality="DX", sop=None) -> InferenceJob:
    return InferenceJob(study, f"{study}.1", sop or f"{study}.{path.stem}", SourceRef(str(path)), modality)


def _images(folder, n, level=2000, modality="DX", size=(24, 20)):
    return [write_image(folder / f"{modality}{i}.dcm", modality=modality, bits_stored=12,
                        pixels=np.full(size, level + 10 * i, np.uint16), window=(2048, 4096))
            for i in range(n)]


class Collector:
    """Gathers the worker's signals in the GUI thread, checking they arrive there."""

    def __init__(self, worker: InferenceWorker) -> None:
        self.results: list[InferenceResult] = []
        self.progress: list[tuple[int, int]] = []
        self.in_gui_thread = True
        worker.result_ready.connect(self._result)
        worker.progress.connect(lambda done, total: self.progress.append((done, total)))

    def _result(self, result) -> None:
        self.in_gui_thread &= QThread.currentThread() is QCoreApplication.instance().thread()
        self.results.append(result)


@pytest.fixture()
def make_worker(qtbot, tmp_path):
    workers = []

    def factory(**kwargs) -> InferenceWorker:
        model = kwargs.pop("model", None) or make_bundle(tmp_path / f"model{len(workers)}")
        worker = InferenceWorker(model, "cpu", **kwargs)
        workers.append(worker)
        return worker

    yield factory
    for worker in workers:
        assert worker.stop(5000)


def test_scores_queue_with_errors_and_skips(qtbot, tmp_path, make_worker):
    worker = make_worker(batch_size=3)
    got = Collector(worker)
    dx = _images(tmp_path / "a", 5)
    ct = _images(tmp_path / "a", 1, modality="CT")[0]
    missing = tmp_path / "a" / "gone.dcm"
    jobs = [_job(p, "A") for p in dx[:2]] + [_job(missing, "A"), _job(ct, "A", "CT")] + [_job(p, "A") for p in dx[2:]]
    with qtbot.waitSignal(worker.model_ready, timeout=20000) as ready:
        worker.start()
    assert ready.args[0].ident == "tiny@0.1"
    with qtbot.waitSignal(worker.idle, timeout=20000):
        assert worker.enqueue(jobs) == len(jobs)
        assert worker.enqueue(jobs[:2]) == 0  # already queued
    status = {r.job.sop_instance_uid: r for r in got.results}
    assert len(got.results) == len(jobs) and got.in_gui_thread
    assert status["A.gone"].status == ERROR and status["A.gone"].error
    assert status["A.CT0"].status == NOT_APPLICABLE and status["A.CT0"].prediction is None
    oks = [status[f"A.DX{i}"] for i in range(5)]
    assert all(r.status == OK and not r.cached for r in oks)
    assert all(r.prediction.heatmap.shape == (1, 8, 8) for r in oks)
    assert got.progress[-1] == (len(jobs), len(jobs))
    assert [d for d, _ in got.progress] == list(range(1, len(jobs) + 1))


def test_open_case_jumps_ahead(qtbot, tmp_path, make_worker):
    worker = make_worker(batch_size=2)
    got = Collector(worker)
    a = [_job(p, "A") for p in _images(tmp_path / "a", 8)]
    b = [_job(p, "B") for p in _images(tmp_path / "b", 3)]
    worker.enqueue(a + b)
    worker.prioritise("B")
    with qtbot.waitSignal(worker.idle, timeout=30000):
        worker.start()
    order = [r.job.study_uid for r in got.results]
    assert order[:3] == ["B", "B", "B"] and order.count("A") == 8


def test_cancel_drops_the_queue_and_the_worker_goes_on(qtbot, tmp_path, make_worker):
    worker = make_worker(batch_size=1)
    got = Collector(worker)
    (big,) = _images(tmp_path / "a", 1, size=(512, 512))
    jobs = [_job(big, "A", sop=f"A.{i}") for i in range(300)]  # about a second of work
    with qtbot.waitSignal(worker.model_ready, timeout=20000):
        worker.start()
    worker.enqueue(jobs)
    qtbot.waitUntil(lambda: len(got.results) >= 1, timeout=20000)
    dropped = worker.cancel()
    assert dropped > 0 and worker.pending() == 0
    qtbot.wait(300)
    assert len(got.results) < len(jobs)
    later = [_job(p, "C") for p in _images(tmp_path / "c", 2)]
    with qtbot.waitSignal(worker.idle, timeout=20000):
        worker.enqueue(later)
    assert [r.job.study_uid for r in got.results[-2:]] == ["C", "C"]


def test_a_new_folder_ends_the_batch_being_scored(qtbot, tmp_path, make_worker, monkeypatch):
    """Opening another folder is cancel() then enqueue(): the old folder's batch in hand must stop there, not
    run on because the new jobs arrived (nothing of it is scored or shown after the cancel)."""
    import threading

    from medview.core.dicom import pixels

    worker = make_worker(batch_size=4)
    got = Collector(worker)
    old = [_job(p, "OLD") for p in _images(tmp_path / "old", 4)]
    new = [_job(p, "NEW") for p in _images(tmp_path / "new", 2)]
    reading, release = threading.Event(), threading.Event()
    read = pixels.read_dataset

    def slow_read(ref, **kwargs):  # the worker is held on the old folder's second image until the test says go
        if ref.path == old[1].ref.path:
            reading.set()
            release.wait(20)
        return read(ref, **kwargs)

    monkeypatch.setattr(pixels, "read_dataset", slow_read)
    with qtbot.waitSignal(worker.model_ready, timeout=20000):
        worker.start()
    worker.enqueue(old)
    assert reading.wait(20)
    assert worker.cancel() == 0  # all four were taken as one batch: nothing left in the queue
    worker.enqueue(new)
    with qtbot.waitSignal(worker.idle, timeout=20000):
        release.set()
    assert [r.job.study_uid for r in got.results] == ["NEW", "NEW"]
    assert got.progress[-1] == (2, 2)  # the images cut short are not counted as still to come


def test_cached_results_run_nothing(qtbot, tmp_path, make_worker):
    model = make_bundle(tmp_path / "m")
    jobs = [_job(p, "A") for p in _images(tmp_path / "a", 3)]
    first = make_worker(model=model)
    got1 = Collector(first)
    first.enqueue(jobs)
    with qtbot.waitSignal(first.idle, timeout=20000):
        first.start()
    assert first.stop(5000)
    second = make_worker(model=model)
    got2 = Collector(second)
    second.enqueue(jobs)
    with qtbot.waitSignal(second.idle, timeout=20000):
        second.start()
    assert all(r.cached for r in got2.results) and not any(r.cached for r in got1.results)
    for r1, r2 in zip(got1.results, got2.results):
        assert r1.prediction.scores["cardiomegaly"] == pytest.approx(r2.prediction.scores["cardiomegaly"])
        assert np.abs(r1.prediction.heatmap - r2.prediction.heatmap).max() < 1e-3  # stored as float16


def test_unusable_model_is_reported(qtbot, tmp_path, make_worker):
    worker = make_worker(model=tmp_path / "nothing-here")
    with qtbot.waitSignal(worker.model_failed, timeout=20000) as failed:
        worker.start()
    assert "nothing-here" in failed.args[0] and "not found" in failed.args[0]
    assert worker.wait(5000)


def test_stop_while_busy(qtbot, tmp_path, make_worker):
    worker = make_worker(batch_size=1)
    got = Collector(worker)
    (big,) = _images(tmp_path / "a", 1, size=(512, 512))
    worker.enqueue([_job(big, "A", sop=f"A.{i}") for i in range(300)])
    worker.start()
    qtbot.waitUntil(lambda: len(got.results) >= 1, timeout=20000)
    assert worker.stop(5000) and worker.isFinished()
    assert len(got.results) < 300
